package driver

import "errors"

// Errors the driver wraps (with %w) into the messages it returns; the
// engine passes only the message on to the user, so each one is completed
// with the volume's name and a remedy.
var (
	// ErrVolumeNotFound: no volume of that name was created with this driver.
	ErrVolumeNotFound = errors.New("no such volume")
	// ErrVolumeExists: Create named an existing volume with other options.
	ErrVolumeExists = errors.New("volume already exists with different options")
	// ErrVolumeInUse: Remove named a volume that is still mounted.
	ErrVolumeInUse = errors.New("volume is in use")
	// ErrBadOption: Create was given an unknown, missing or malformed option.
	ErrBadOption = errors.New("bad volume option")
	// ErrBadName: the volume name cannot be used as a directory name.
	ErrBadName = errors.New("bad volume name")
	// ErrClosed: the driver is shutting down.
	ErrClosed = errors.New("the dockerfuse plugin is shutting down")
)
