package driver

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

const (
	stateFile    = "volumes.json"
	stateVersion = 1
)

// state is the persisted form of the driver: every created volume and its
// options. Volumes are kept raw so that one bad entry can be skipped.
type state struct {
	Version int                        `json:"version"`
	Volumes map[string]json.RawMessage `json:"volumes"`
}

// loadState reads StateDir/volumes.json. A missing file is an empty state.
// A file that is not JSON at all is moved aside (so the next save does not
// destroy what a person might still recover) and also yields an empty
// state; a volume that does not decode or validate is logged and skipped.
func (d *Driver) loadState() (map[string]Volume, error) {
	file := filepath.Join(d.cfg.StateDir, stateFile)
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]Volume{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading saved volumes: %w (check %s)", err, file)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil || st.Version != stateVersion {
		if err == nil {
			err = fmt.Errorf("unknown version %d, want %d", st.Version, stateVersion)
		}
		aside := fmt.Sprintf("%s.corrupt-%s", file, time.Now().UTC().Format("20060102T150405Z"))
		if rerr := os.Rename(file, aside); rerr != nil {
			return nil, fmt.Errorf("saved volumes in %s are unreadable (%v) and could not be moved aside: %w", file, err, rerr)
		}
		d.log.Error("saved volumes are unreadable; starting with none", "file", file, "movedTo", aside, "err", err)
		return map[string]Volume{}, nil
	}
	vols := make(map[string]Volume, len(st.Volumes))
	for name, raw := range st.Volumes {
		var v Volume
		if err := json.Unmarshal(raw, &v); err != nil {
			d.log.Error("skipping saved volume", "volume", name, "err", err)
			continue
		}
		if v.Name != name {
			d.log.Error("skipping saved volume", "volume", name, "err", fmt.Sprintf("entry is named %q", v.Name))
			continue
		}
		if err := v.check(); err != nil {
			d.log.Error("skipping saved volume", "volume", name, "err", err)
			continue
		}
		vols[name] = v
	}
	return vols, nil
}

// save writes the current volumes atomically. Saves are serialized by
// saveMu, and each takes its snapshot after acquiring it, so the file
// always ends with the latest state whatever order saves race in.
func (d *Driver) save() error {
	d.saveMu.Lock()
	defer d.saveMu.Unlock()

	st := state{Version: stateVersion, Volumes: map[string]json.RawMessage{}}
	d.mu.Lock()
	for name, v := range d.vols {
		raw, err := json.Marshal(v.spec)
		if err != nil {
			d.mu.Unlock()
			return err
		}
		st.Volumes[name] = raw
	}
	d.mu.Unlock()

	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(d.cfg.StateDir, stateFile), append(b, '\n')); err != nil {
		return fmt.Errorf("saving volumes: %w (check that %s is writable)", err, d.cfg.StateDir)
	}
	return nil
}

// writeFileAtomic writes data to a temporary file beside name, syncs it and
// renames it over name, so a crash leaves either the old or the new file.
func writeFileAtomic(name string, data []byte) error {
	dir := filepath.Dir(name)
	f, err := os.CreateTemp(dir, "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // fails harmlessly once renamed
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, name); err != nil {
		return err
	}
	// Make the rename itself durable.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
