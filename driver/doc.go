// Package driver is dockerfuse's Docker volume driver: a
// go-plugins-helpers volume.Driver whose volumes are live views of another
// container's filesystem.
//
// A volume is created with options naming the target container (see
// Volume and the Create method); nothing is started then, so the target
// need not be running yet (compose creates volumes before it starts
// services). The first Mount of a volume starts one session through the
// Mounter and FUSE-mounts it at MountRoot/<name>; every further Mount
// counts Docker's mount ID; the last Unmount stops the session. A session
// that died (its Done channel closed, for example because the target
// stopped) is replaced by the next Mount.
//
// # Errors
//
// The engine shows a user only the message, prefixed for Create, Remove
// and Get with "<op> <name>: VolumeDriver.<Op>: ", so those messages do
// not repeat the name; for Mount, Unmount and Path the engine does not
// name the volume, so the driver starts them with "mount <name>: ". Each
// message ends with what to do about it.
//
// # Parallelism
//
// Every method may be called concurrently; the engine does so. The
// driver's mutex guards only its maps and is never held across slow work:
// starting or stopping a session happens under a per-volume operation lock,
// so a slow or unresponsive target delays only its own volume, and Get and
// List never wait for a mount in progress.
//
// # Deadlocks
//
// The engine holds its container lock while it calls Mount. A Mounter must
// therefore never inspect the consumer container (the one the volume is
// being mounted into): it only talks to the target named in the options.
//
// # State
//
// Volumes and their options are persisted in StateDir/volumes.json
// (written to a temporary file and renamed, mode 0600, directory 0700) and
// restored by New. A saved volume that cannot be read is logged and
// skipped. Mount IDs are not persisted: after a restart, the consumers that
// were running keep their dead mount (ENOTCONN) until they restart, an
// Unmount for an ID the driver does not know succeeds, and FUSE mounts left
// under MountRoot by the previous process are lazily unmounted by New.
package driver
