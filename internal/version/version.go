// Package version holds the build's version, set by the Makefile.
package version

// Version is set at link time with -X.
var Version = "dev"
