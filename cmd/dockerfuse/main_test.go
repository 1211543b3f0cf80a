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
		{[]string{"-id", "web", "-mount", "/m", "-attr-timeout", "-1s"}, "cannot be negative"},
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
