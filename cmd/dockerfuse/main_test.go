package main

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string // substring; "" means success
	}{
		{[]string{"-id", "web", "-mount", "/mnt/web"}, ""},
		{[]string{"-i", "web", "-m", "/mnt/web", "-p", "/var/log", "-ro", "-d", "-j"}, ""},
		{[]string{"-version"}, ""},
		{[]string{"-v"}, ""},
		{[]string{"-mount", "/mnt/web"}, "-id is required"},
		{[]string{"-id", "web"}, "-mount is required"},
		{[]string{"-id", "web", "-mount", "/m", "-path", "var/log"}, `-path "var/log" is not absolute`},
		{[]string{"-id", "web", "-mount", "/m", "extra"}, `unexpected argument "extra"`},
		{[]string{"-id", "web", "-mount", "/m", "-attr-timeout", "-1s"}, "0 or more"},
		{[]string{"-id", "web", "-mount", "/m", "-attr-timeout", "soon"}, "invalid value"},
		{[]string{"-nosuchflag"}, "flag provided but not defined: -nosuchflag"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			o, err := parseFlags(tt.args, io.Discard)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("parseFlags = %v, want success", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("parseFlags = %+v, want error containing %q", o, tt.wantErr)
			}
			var ue *usageError
			if !errors.As(err, &ue) {
				t.Errorf("error %T, want *usageError (exit status 2)", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestParseFlagsDefaults(t *testing.T) {
	o, err := parseFlags([]string{"-i", "web", "-m", "/mnt"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.path != "/" || o.ro || o.daemonize || o.attrTimeout != time.Second || o.entryTimeout != time.Second {
		t.Errorf("defaults = %+v, want path / and one-second timeouts", o)
	}
}

// Every invalid value is refused with a message that names the flag, the
// value, and what would be valid.
func TestParseFlagsNamesValidChoices(t *testing.T) {
	base := []string{"-id", "web", "-mount", "/m"}
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"-attr-timeout", "soon"}, []string{"-attr-timeout", `"soon"`, "500ms, 1s or 1m"}},
		{[]string{"-entry-timeout", "-1s"}, []string{"-entry-timeout", `"-1s"`, "0 or more"}},
		{[]string{"-entry-timeout", "10"}, []string{"-entry-timeout", `"10"`, "1s"}},
		{[]string{"-ro=maybe"}, []string{"-ro", `"maybe"`, "true or false"}},
		{[]string{"-d=2"}, []string{"-d", `"2"`, "true or false"}},
		{[]string{"-allow-other=yes"}, []string{"-allow-other", `"yes"`, "true or false"}},
		{[]string{"-user", "a:b:c"}, []string{"-user", `"a:b:c"`, "NAME or UID", ":GROUP or :GID"}},
		{[]string{"-user", ":1000"}, []string{"-user", `":1000"`, "NAME or UID"}},
		{[]string{"-user", "app:"}, []string{"-user", `"app:"`, "NAME or UID"}},
		{[]string{"-user", "my user"}, []string{"-user", `"my user"`, "NAME or UID"}},
		{[]string{"-path", "tmp/../etc"}, []string{"-path", `"tmp/../etc"`, "not absolute", "like /var/log"}},
		{[]string{"-path", ""}, []string{"-path", `""`, "not absolute"}},
		{[]string{"-log", "/tmp/x.log"}, []string{"-log", "needs -daemonize"}},
		{[]string{"-streams", "0"}, []string{"-streams", `"0"`, "from 1 to 8"}},
		{[]string{"-streams", "9"}, []string{"-streams", `"9"`, "from 1 to 8"}},
		{[]string{"-streams", "all"}, []string{"-streams", `"all"`, "from 1 to 8"}},
		{[]string{"-id", ""}, []string{"-id is required", "running container"}},
		{[]string{"-mount", ""}, []string{"-mount is required", "host directory"}},
	}
	for _, tt := range tests {
		args := append(append([]string{}, base...), tt.args...)
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var usage strings.Builder
			_, err := parseFlags(args, &usage)
			if err == nil {
				t.Fatalf("parseFlags(%q) succeeded, want it refused", args)
			}
			var ue *usageError
			if !errors.As(err, &ue) {
				t.Errorf("error %T, want *usageError (exit status 2)", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error = %q, want it to mention %q", err, w)
				}
			}
		})
	}
	t.Run("unknown flag lists the flags", func(t *testing.T) {
		var usage strings.Builder
		_, err := parseFlags([]string{"-colour", "blue"}, &usage)
		if err == nil || !strings.Contains(err.Error(), "-colour") {
			t.Errorf("error = %v, want it to name -colour", err)
		}
		for _, f := range []string{"-id", "-mount", "-path", "-user", "-ro", "-attr-timeout"} {
			if !strings.Contains(usage.String(), f) {
				t.Errorf("usage printed = %q, want it to list %s", usage.String(), f)
			}
		}
	})
}

func TestParseFlagsCleansPath(t *testing.T) {
	o, err := parseFlags([]string{"-i", "web", "-m", "/mnt", "-p", "/srv/app/../data/"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.path != "/srv/data" {
		t.Errorf("-path /srv/app/../data/ = %q, want %q", o.path, "/srv/data")
	}
}
