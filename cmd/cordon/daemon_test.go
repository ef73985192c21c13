package main

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDaemonClients drives `cordon serve` with the CLI clients:
// session create, exec (streamed and --json), session list, session rm.
func TestDaemonClients(t *testing.T) {
	socket, _ := startServe(t)
	os.Setenv("CORDON_SOCKET", socket)
	defer os.Unsetenv("CORDON_SOCKET")

	ws := workspace(t)
	o := cordon(t, ws, "", "session", "create", "--workspace", ws)
	id := strings.TrimSpace(o.stdout)
	if o.code != 0 || id == "" {
		t.Fatalf("session create: %+v", o)
	}
	if o := cordon(t, ws, "", "exec", "--session", id, "--", "sh", "-c", "echo out; echo err >&2; exit 5"); o.code != 5 || o.stdout != "out\n" || !strings.Contains(o.stderr, "err") {
		t.Errorf("exec: %+v", o)
	}
	o = cordon(t, ws, "in\n", "exec", "--session", id, "--json", "--stdin", "--", "cat")
	var r struct {
		ExitCode int    `json:"exit_code"`
		Stdout   string `json:"stdout"`
	}
	if o.code != 0 || json.Unmarshal([]byte(o.stdout), &r) != nil || r.Stdout != "in\n" {
		t.Errorf("exec --json --stdin: %+v", o)
	}
	if o := cordon(t, ws, "", "exec", "--session", "nope", "--", "true"); o.code != exitCordon || !strings.Contains(o.stderr, "not_found") {
		t.Errorf("exec in an unknown session: %+v", o)
	}
	if o := cordon(t, ws, "", "session", "list"); !strings.Contains(o.stdout, id) || !strings.Contains(o.stdout, ws) {
		t.Errorf("session list: %+v", o)
	}
	if o := cordon(t, ws, "", "session", "rm", id); o.code != 0 {
		t.Errorf("session rm: %+v", o)
	}
	if o := cordon(t, ws, "", "session", "list"); strings.Contains(o.stdout, id) {
		t.Errorf("removed session still listed: %+v", o)
	}
}

// startServe runs `cordon serve` with args on a socket in a fresh
// directory, its audit log there too, until the test ends (then SIGTERM,
// and it must exit cleanly). It returns the socket and the audit log.
func startServe(t *testing.T, args ...string) (socket, auditLog string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "cordon-cli-daemon-")
	if err != nil {
		t.Fatal(err)
	}
	socket, auditLog = filepath.Join(dir, "d.sock"), filepath.Join(dir, "audit.jsonl")
	serve := exec.Command(os.Args[0], append([]string{"serve", "--socket", socket, "--audit", auditLog}, args...)...)
	serve.Env = append(os.Environ(), "CORDON_TEST_MAIN=1")
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		serve.Process.Signal(syscall.SIGTERM)
		if err := serve.Wait(); err != nil {
			t.Errorf("serve after SIGTERM: %v", err)
		}
		os.RemoveAll(dir)
	})
	for i := 0; i < 250; i++ {
		if c, err := net.Dial("unix", socket); err == nil {
			c.Close()
			return socket, auditLog
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("cordon serve did not start")
	return
}
