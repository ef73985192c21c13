package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cordon-sandbox/cordon/audit"
)

// auditLog writes a log of n records and returns its path and the heads
// after each record (heads[0] is the empty log's).
func auditLog(t *testing.T, n int) (string, []audit.Head) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := audit.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	heads := []audit.Head{l.Head()}
	for i := range n {
		r := audit.Record{Kind: audit.GrantRequest, Session: "s1", Grant: fmt.Sprintf("g%d", i), Capability: "proc.ptrace", Scope: "session", DecidedBy: "uid:1000", Reason: fmt.Sprintf("debug %d", i), PolicyHash: strings.Repeat("0", 64)}
		if _, err := l.Append(r); err != nil {
			t.Fatal(err)
		}
		heads = append(heads, l.Head())
	}
	return path, heads
}

func TestAuditVerify(t *testing.T) {
	path, heads := auditLog(t, 3)
	data, _ := os.ReadFile(path)
	lines := bytes.SplitAfter(data, []byte("\n"))
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	edited := write("edited.jsonl", bytes.Join([][]byte{lines[0], bytes.Replace(lines[1], []byte("debug 1"), []byte("debug 7"), 1), lines[2]}, nil))
	truncated := write("truncated.jsonl", data[:len(data)-4])
	lastGone := write("last-gone.jsonl", bytes.Join(lines[:2], nil))
	empty := write("empty.jsonl", nil)

	cases := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"good", []string{path}, 0, fmt.Sprintf("ok: 3 records, head %s\n", heads[3].Hash), ""},
		{"good with its head", []string{path, "--head", heads[3].Hash}, 0, "ok: 3 records", ""},
		{"good with an older head", []string{path, "--head", heads[1].Hash}, 0, "ok: 3 records", ""},
		{"empty", []string{empty}, 0, "ok: 0 records, head " + audit.GenesisHash, ""},
		{"edited", []string{edited}, 1, "", edited + ":3: record seq 3: prev does not match"},
		{"truncated", []string{truncated}, 1, "", truncated + ":3: record seq 3: the last line has no newline"},
		{"last record removed", []string{lastGone, "--head", heads[3].Hash}, 1, "", lastGone + ": head not found"},
		{"last record removed, no head", []string{lastGone}, 0, "ok: 2 records", ""},
		{"missing file", []string{filepath.Join(dir, "nosuch")}, 125, "", "no such file"},
		{"bad head", []string{path, "--head", "abc"}, 125, "", "--head"},
	}
	for _, c := range cases {
		o := cordon(t, dir, "", append([]string{"audit", "verify"}, c.args...)...)
		if o.code != c.code || !strings.Contains(o.stdout, c.stdout) || !strings.Contains(o.stderr, c.stderr) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit %d, %q, %q", c.name, o.code, o.stdout, o.stderr, c.code, c.stdout, c.stderr)
		}
	}
}
