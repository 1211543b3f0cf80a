package satellite

import "golang.org/x/sys/unix"

// pseudoFS tells whether t, a statfs type, is one of the kernel's pseudo
// filesystems, whose files are interfaces rather than data (reading some
// consumes what they hold, and they change without a write), or FUSE,
// where reading can do anything.
func pseudoFS(t uint32) bool {
	switch t {
	case unix.PROC_SUPER_MAGIC, unix.SYSFS_MAGIC, unix.DEBUGFS_MAGIC, unix.TRACEFS_MAGIC,
		unix.SECURITYFS_MAGIC, unix.CGROUP_SUPER_MAGIC, unix.CGROUP2_SUPER_MAGIC,
		unix.BPF_FS_MAGIC, unix.PSTOREFS_MAGIC, unix.EFIVARFS_MAGIC, unix.SELINUX_MAGIC,
		unix.SMACK_MAGIC, unix.BINFMTFS_MAGIC, unix.NSFS_MAGIC, unix.DEVPTS_SUPER_MAGIC,
		unix.FUSE_SUPER_MAGIC, configfsMagic, fusectlMagic:
		return true
	}
	return false
}

// remoteFS tells whether t, a statfs type, is a network or cluster
// filesystem, whose files change on other machines.
func remoteFS(t uint32) bool {
	switch t {
	case unix.NFS_SUPER_MAGIC, unix.SMB_SUPER_MAGIC, unix.SMB2_SUPER_MAGIC, unix.CIFS_SUPER_MAGIC,
		unix.V9FS_MAGIC, unix.CEPH_SUPER_MAGIC, unix.AFS_FS_MAGIC, unix.CODA_SUPER_MAGIC,
		unix.OCFS2_SUPER_MAGIC, gfs2Magic:
		return true
	}
	return false
}

// Filesystem magic numbers that x/sys/unix does not name.
const (
	configfsMagic = 0x62656570
	fusectlMagic  = 0x65735543
	gfs2Magic     = 0x01161970
)
