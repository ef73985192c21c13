package grants_test

import (
	"strings"
	"testing"

	"github.com/cordon-sandbox/cordon/grants"
	"github.com/cordon-sandbox/cordon/policy"
)

func TestCheckCapability(t *testing.T) {
	for name, want := range map[string]string{
		"net.connect:github.com":            "net.connect:github.com",
		"net.connect:GitHub.com:443":        "net.connect:github.com:443",
		"net.connect:10.0.0.1:8080":         "net.connect:10.0.0.1:8080",
		"net.connect:[2001:db8::1]:443":     "net.connect:[2001:db8::1]:443",
		"fs.read:/opt/data":                 "fs.read:/opt/data",
		"fs.write:/home/me/.cache/go-build": "fs.write:/home/me/.cache/go-build",
		"proc.ptrace":                       "proc.ptrace",
		"limit.memory:8GiB":                 "limit.memory:8GiB",
		"limit.pids:4096":                   "limit.pids:4096",
		"limit.timeout:1h30m":               "limit.timeout:1h30m",
		"limit.disk_free:512MiB":            "limit.disk_free:512MiB",
		"limit.disk_free:0":                 "limit.disk_free:0",
		"limit.disk_free_inodes:1000":       "limit.disk_free_inodes:1000",
		"limit.disk_free_inodes:0":          "limit.disk_free_inodes:0",
	} {
		got, err := grants.CheckCapability(name)
		if err != nil || got != want {
			t.Errorf("CheckCapability(%q) = %q, %v; want %q", name, got, err, want)
		}
	}
	for _, bad := range []string{
		"", "net.connect", "net.connect:*.github.com", "net.connect:a..b", "net.connect:a.com:0",
		"net.listen:a.com", "fs.read", "fs.read:rel", "fs.exec:/bin/sh", "proc.ptrace:1", "proc.kill",
		"limit.memory", "limit.memory:0", "limit.memory:-1GiB", "limit.memory:lots", "limit.pids:0",
		"limit.pids:007", "limit.pids:+5", "limit.pids:99999999", "limit.timeout:0s", "limit.timeout:-1m",
		"limit.timeout:10", "limit.cpu:2", "net.connect:\u212aa.com",
		"limit.disk_free", "limit.disk_free:-1MiB", "limit.disk_free:lots", "limit.disk_free_inodes",
		"limit.disk_free_inodes:-1", "limit.disk_free_inodes:1k", "limit.disk_free_inodes:007",
	} {
		if got, err := grants.CheckCapability(bad); err == nil {
			t.Errorf("CheckCapability(%q) accepted as %q", bad, got)
		}
	}
}

func FuzzCheckCapability(f *testing.F) {
	for _, s := range []string{"net.connect:GitHub.com:443", "fs.read:/opt", "proc.ptrace", "limit.pids:12", "limit.memory:1.5GiB", "limit.timeout:1h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		got, err := grants.CheckCapability(name)
		if err != nil {
			return
		}
		again, err := grants.CheckCapability(got)
		if err != nil || again != got {
			t.Fatalf("%q -> %q -> %q, %v", name, got, again, err)
		}
		if !strings.EqualFold(got, name) || len(got) != len(name) {
			t.Fatalf("%q recorded as %q", name, got)
		}
		if err := policy.CheckCapability(got); err != nil {
			t.Fatalf("%q accepted but policy says %v", got, err)
		}
	})
}
