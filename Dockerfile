# The dockerfuse volume plugin's root filesystem. Nothing is pulled: the
# build context is staged by `make plugin` (see the Makefile) from this
# checkout and the host, so it builds without any registry:
#
#   dockerfuse-plugin  static plugin binary, satellites embedded
#   fs/usr/bin/fusermount3 and the libraries ldd names for it (bazil.org/fuse
#                      mounts through fusermount3)
#   fs/etc/fuse.conf   user_allow_other
#   fs/etc/mtab        -> /proc/self/mounts, so fusermount3 edits no file
#   fs/tmp, fs/mnt/volumes (propagatedMount), fs/state (the state bind
#   mount), fs/run/docker/plugins (the socket), fs/var/run
#
# `make plugin` then exports a container of this image into
# build/plugin/rootfs and runs `docker plugin create` with config.json.
FROM scratch
COPY fs/ /
COPY dockerfuse-plugin /usr/bin/dockerfuse-plugin
ENTRYPOINT ["/usr/bin/dockerfuse-plugin"]
