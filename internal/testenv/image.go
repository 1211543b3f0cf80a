package testenv

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// ImageRepository is the repository of every target image; tags are
// ARCH-HASH.
const ImageRepository = "dockerfuse-test-target"

// The files of a target image besides /target. Nothing in the image can
// run a shell: passwd names /target as the shell only to be well-formed.
var imageFiles = map[string]string{
	"Dockerfile": "FROM scratch\nCOPY rootfs/ /\nENTRYPOINT [\"/target\", \"serve\"]\n",
	"rootfs/etc/passwd": "root:x:0:0:root:/:/target\n" +
		"app:x:1000:1000:app:/tmp:/target\n",
	"rootfs/etc/group": "root:x:0:\n" +
		"app:x:1000:\n",
}

var images onceMap[string]

// TargetImage returns the tag of a FROM scratch image for arch ("amd64" or
// "arm64") that holds only /target (internal/testbin/target), /etc/passwd
// and /etc/group with root and app (uid and gid 1000), and an empty /tmp
// (mode 1777). Its entrypoint is `/target serve`. The image is built at most
// once per test process and reused when a tag with the same contents exists.
func TargetImage(t testing.TB, arch string) string {
	t.Helper()
	Engine(t)
	requireCLI(t)
	switch arch {
	case "amd64":
	case "arm64":
		if _, err := os.Stat("/proc/sys/fs/binfmt_misc/qemu-aarch64"); err != nil {
			Unavailable(t, "arm64 targets need qemu-aarch64 in binfmt_misc (%v): apt-get install qemu-user-static binfmt-support; "+
				"mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc; update-binfmts --enable qemu-aarch64", err)
		}
	default:
		t.Fatalf("TargetImage: architecture %q: want amd64 or arm64", arch)
	}
	tag, err := images.do(arch, func() (string, error) { return buildImage(arch) })
	if err != nil {
		t.Fatalf("building the %s target image: %v", arch, err)
	}
	return tag
}

func buildImage(arch string) (string, error) {
	bin, err := goBuild([]string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=" + arch},
		modulePath+"/internal/testbin/target", "-trimpath", "-ldflags", "-s -w")
	if err != nil {
		return "", err
	}
	h := sha256.New()
	h.Write(bin)
	for _, name := range slices.Sorted(maps.Keys(imageFiles)) {
		fmt.Fprintf(h, "\x00%s\x00%s", name, imageFiles[name])
	}
	tag := fmt.Sprintf("%s:%s-%s", ImageRepository, arch, hex.EncodeToString(h.Sum(nil))[:12])
	if _, err := docker(nil, "image", "inspect", "--format", "{{.Id}}", tag); err == nil {
		return tag, nil
	}

	dir, err := os.MkdirTemp("", "dockerfuse-testenv-image-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	// COPY keeps modes, the sticky bit of /tmp included: set each one, as
	// the umask may have narrowed what Mkdir and WriteFile made.
	if err := writeContext(dir, bin); err != nil {
		return "", err
	}
	if _, err := docker(nil, "build", "--platform", "linux/"+arch, "--tag", tag, dir); err != nil {
		return "", err
	}
	return tag, nil
}

func writeContext(dir string, bin []byte) error {
	modes := map[string]os.FileMode{
		"rootfs":        0o755,
		"rootfs/etc":    0o755,
		"rootfs/tmp":    0o777 | os.ModeSticky,
		"rootfs/target": 0o755,
	}
	for _, d := range []string{"rootfs", "rootfs/etc", "rootfs/tmp"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "rootfs/target"), bin, 0o755); err != nil {
		return err
	}
	for name, content := range imageFiles {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err
		}
		modes[name] = 0o644
	}
	for name, mode := range modes {
		if err := os.Chmod(filepath.Join(dir, name), mode); err != nil {
			return err
		}
	}
	return nil
}
