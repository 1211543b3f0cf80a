// Package pattern makes the deterministic file contents that the test
// target's `tree` subcommand writes, so that a test on the host can predict
// every byte without reading it back through the engine.
//
// The generator is splitmix64, written out here rather than taken from
// math/rand so that its output can never change with the Go release: the
// target inside an image and the test on the host may be built by different
// toolchains.
package pattern

import "fmt"

// Fill writes the byte stream for seed into b.
func Fill(b []byte, seed uint64) {
	x := seed
	for i := 0; i < len(b); i += 8 {
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		z ^= z >> 31
		for j := 0; j < 8 && i+j < len(b); j++ {
			b[i+j] = byte(z >> (8 * j))
		}
	}
}

// DirName is the name of directory d of a tree.
func DirName(d int) string { return fmt.Sprintf("d%03d", d) }

// FileName is the name of file f within a tree directory.
func FileName(f int) string { return fmt.Sprintf("f%04d", f) }

// TreeFile returns the contents of file f in directory d of a tree whose
// files are size bytes long.
func TreeFile(d, f, size int) []byte {
	b := make([]byte, size)
	Fill(b, uint64(d)<<32|uint64(f))
	return b
}
