package sandbox_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cordon-sandbox/cordon/sandbox"
)

// TestExecIO covers what the executor does around a command: stdin given
// whole or streamed, stdout and stderr kept apart in full past a pipe's
// and a read's size, streamed output, the request's environment over the
// policy's, exit codes and signals, a command that cannot start, and
// output held open by a background process.
func TestExecIO(t *testing.T) {
	s, _ := open(t, workspace(t), nil)
	ctx := context.Background()
	run := func(r sandbox.ExecRequest) *sandbox.ExecResult {
		t.Helper()
		if r.Timeout == 0 {
			r.Timeout = time.Minute
		}
		res, err := s.Exec(ctx, r)
		if err != nil {
			t.Fatalf("exec %q %q: %v", r.Command, r.Argv, err)
		}
		return res
	}

	in := bytes.Repeat([]byte("0123456789abcdef"), 20000) // 320 KB: more than a pipe holds
	if res := run(sandbox.ExecRequest{Argv: []string{"cat"}, Stdin: in}); res.ExitCode != 0 || !bytes.Equal(res.Stdout, in) {
		t.Errorf("stdin through cat: exit %d, %d bytes back of %d", res.ExitCode, len(res.Stdout), len(in))
	}
	if res := run(sandbox.ExecRequest{Argv: []string{"cat"}, StdinReader: bytes.NewReader(in)}); !bytes.Equal(res.Stdout, in) {
		t.Errorf("streamed stdin through cat: %d bytes back of %d", len(res.Stdout), len(in))
	}
	if res := run(sandbox.ExecRequest{Command: "head -c 100 >/dev/null; echo took", Stdin: in}); res.ExitCode != 0 || string(res.Stdout) != "took\n" {
		t.Errorf("stdin left unread: %+v", res)
	}
	if res := run(sandbox.ExecRequest{Argv: []string{"cat"}}); res.ExitCode != 0 || len(res.Stdout) != 0 {
		t.Errorf("no stdin: %+v", res)
	}

	res := run(sandbox.ExecRequest{Command: "head -c 300000 /dev/zero; head -c 200000 /dev/zero | tr '\\0' e >&2; exit 3"})
	if res.ExitCode != 3 || len(res.Stdout) != 300000 || len(res.Stderr) != 200000 || strings.Trim(string(res.Stderr), "e") != "" {
		t.Errorf("large output: exit %d, %d stdout bytes, %d stderr bytes", res.ExitCode, len(res.Stdout), len(res.Stderr))
	}
	var mu sync.Mutex
	streamed := map[string]int{}
	res = run(sandbox.ExecRequest{Command: "head -c 200000 /dev/zero; echo err >&2", Output: func(stream string, data []byte) {
		mu.Lock()
		streamed[stream] += len(data)
		mu.Unlock()
	}})
	if res.ExitCode != 0 || streamed["stdout"] != 200000 || streamed["stderr"] != 4 || len(res.Stdout) != 0 {
		t.Errorf("streamed output: exit %d, %v, %d bytes in the result", res.ExitCode, streamed, len(res.Stdout))
	}

	res = run(sandbox.ExecRequest{Command: `echo "$USER"; env | grep -c '^USER='; echo "$PWD"`, Env: map[string]string{"USER": "agent"}, Cwd: "."})
	if lines := strings.Split(strings.TrimSpace(string(res.Stdout)), "\n"); len(lines) != 3 || lines[0] != "agent" || lines[1] != "1" || lines[2] != s.Workspace() {
		t.Errorf("environment: %q", res.Stdout)
	}

	if res := run(sandbox.ExecRequest{Command: "kill -TERM $$"}); res.ExitCode != 143 || res.Signal != "SIGTERM" {
		t.Errorf("killed by a signal: exit %d, signal %q", res.ExitCode, res.Signal)
	}
	if res := run(sandbox.ExecRequest{Argv: []string{"/nonexistent/tool"}}); res.ExitCode != 127 || !strings.Contains(string(res.Stderr), "no such file") {
		t.Errorf("missing command: exit %d, %q", res.ExitCode, res.Stderr)
	}
	if res := run(sandbox.ExecRequest{Argv: []string{"no-such-tool"}}); res.ExitCode != 127 || !strings.Contains(string(res.Stderr), "not found") {
		t.Errorf("command not in PATH: exit %d, %q", res.ExitCode, res.Stderr)
	}
	if res := run(sandbox.ExecRequest{Argv: []string{"/etc/hostname"}}); res.ExitCode != 126 {
		t.Errorf("not executable: exit %d, %q", res.ExitCode, res.Stderr)
	}

	// A background process that keeps stdout open does not hold the
	// call past the grace period; what it writes later is not the call's.
	t0 := time.Now()
	res = run(sandbox.ExecRequest{Command: "(sleep 3; echo late) & echo now"})
	if d := time.Since(t0); d > 2*time.Second || string(res.Stdout) != "now\n" {
		t.Errorf("background writer: %v, %q", d, res.Stdout)
	}
}
