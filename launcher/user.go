package launcher

import (
	"archive/tar"
	"bufio"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/docker/docker/client"
)

// resolveUser turns a docker exec --user value ("name", "uid", "name:group",
// "uid:gid") into the numeric owner for the uploaded satellite, reading the
// target's /etc/passwd and /etc/group for names.
func resolveUser(ctx context.Context, engine client.APIClient, id, user string) (uid, gid int, err error) {
	u, g, hasGroup := strings.Cut(user, ":")
	uid, uerr := strconv.Atoi(u)
	if uerr != nil {
		uid, gid, err = lookupPasswd(ctx, engine, id, u)
		if err != nil {
			return 0, 0, err
		}
	}
	if !hasGroup {
		return uid, gid, nil
	}
	if gid, err = strconv.Atoi(g); err == nil {
		return uid, gid, nil
	}
	gid, err = lookupGroup(ctx, engine, id, g)
	return uid, gid, err
}

func lookupPasswd(ctx context.Context, engine client.APIClient, id, name string) (int, int, error) {
	var uid, gid int
	found := false
	err := scanFile(ctx, engine, id, "/etc/passwd", func(f []string) bool {
		if len(f) >= 4 && f[0] == name {
			uid, _ = strconv.Atoi(f[2])
			gid, _ = strconv.Atoi(f[3])
			found = true
		}
		return found
	})
	if err == nil && !found {
		err = fmt.Errorf("user %q is not in the container's /etc/passwd (give a numeric uid)", name)
	}
	return uid, gid, err
}

func lookupGroup(ctx context.Context, engine client.APIClient, id, name string) (int, error) {
	var gid int
	found := false
	err := scanFile(ctx, engine, id, "/etc/group", func(f []string) bool {
		if len(f) >= 3 && f[0] == name {
			gid, _ = strconv.Atoi(f[2])
			found = true
		}
		return found
	})
	if err == nil && !found {
		err = fmt.Errorf("group %q is not in the container's /etc/group (give a numeric gid)", name)
	}
	return gid, err
}

// scanFile calls line with the colon-separated fields of each line of a
// file in the container until it returns true.
func scanFile(ctx context.Context, engine client.APIClient, id, file string, line func([]string) bool) error {
	rc, _, err := engine.CopyFromContainer(ctx, id, file)
	if err != nil {
		return fmt.Errorf("read %s in the container to resolve the user: %w (give a numeric uid:gid)", file, err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	if _, err := tr.Next(); err != nil {
		return fmt.Errorf("read %s: %w", file, err)
	}
	sc := bufio.NewScanner(io.LimitReader(tr, 1<<20))
	for sc.Scan() {
		if line(strings.Split(sc.Text(), ":")) {
			return nil
		}
	}
	return sc.Err()
}
