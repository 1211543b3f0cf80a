package pattern

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

// Tests may hard-code digests of tree files, so the stream must not change
// by accident.
func TestTreeFileIsStable(t *testing.T) {
	sum := sha256.Sum256(TreeFile(1, 2, 10))
	if got, want := hex.EncodeToString(sum[:]), "9682474e2efd2200ba104b571e8c06e01e777f2821c2472f0a8c94a4e7d402f7"; got != want {
		t.Errorf("sha256(TreeFile(1, 2, 10)) = %s, want %s", got, want)
	}
	if a, b := TreeFile(0, 1, 64), TreeFile(1, 0, 64); string(a) == string(b) {
		t.Error("files d000/f0001 and d001/f0000 are equal, want distinct contents")
	}
	if got := len(TreeFile(0, 0, 13)); got != 13 {
		t.Errorf("len = %d, want 13", got)
	}
}
