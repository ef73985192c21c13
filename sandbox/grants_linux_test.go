package sandbox_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cordon-sandbox/cordon/events"
	"github.com/cordon-sandbox/cordon/policy"
	"github.com/cordon-sandbox/cordon/sandbox"
)

// TestApplyGrants checks each capability a live session can take, with
// the same probe before the grant (refused), under it (allowed) and after
// its revocation (refused again).
func TestApplyGrants(t *testing.T) {
	ws := workspace(t)
	if err := os.WriteFile(filepath.Join(ws, "probe.py"), []byte(probe), 0o644); err != nil {
		t.Fatal(err)
	}
	pol := policy.Default()
	pol.Limits.Memory = 256 * policy.MiB
	pol.Limits.Timeout = policy.Duration(time.Second)
	s, _ := open(t, ws, pol)
	apply := func(caps ...string) {
		t.Helper()
		if err := s.ApplyGrants(caps); err != nil {
			t.Fatalf("ApplyGrants(%q): %v", caps, err)
		}
	}

	t.Run("proc.ptrace", func(t *testing.T) {
		attach := func() probeResult { return parseProbe(t, sh(t, s, "python3 probe.py ptrace").Stdout) }
		if got := attach(); got.Ret == 0 {
			t.Fatalf("ptrace of the session's own child without proc.ptrace: %+v", got)
		}
		// A call in progress keeps the executor it started on, and
		// finishes, while the grant starts a new one.
		done := make(chan *sandbox.ExecResult, 1)
		go func() {
			r, _ := s.Exec(context.Background(), sandbox.ExecRequest{Command: "sleep 0.5; echo drained"})
			done <- r
		}()
		time.Sleep(100 * time.Millisecond)
		apply("proc.ptrace")
		if got := attach(); got.Ret != 0 {
			t.Errorf("ptrace of the session's own child with proc.ptrace: %+v", got)
		}
		// Even so, the supervisor stays out of reach.
		if got := parseProbe(t, sh(t, s, "python3 probe.py ptrace 1").Stdout); got.Ret == 0 {
			t.Errorf("ptrace attached to the supervisor (PID 1) under proc.ptrace")
		}
		if r := <-done; r == nil || string(r.Stdout) != "drained\n" {
			t.Errorf("the call running across the grant: %+v", r)
		}
		// The new executor's Landlock refusals still reach the result,
		// once each, from the kernel's record as root.
		r := sh(t, s, "echo cordon-test > /proc/self/comm")
		want := "observer"
		if os.Geteuid() == 0 {
			want = "audit"
		}
		if len(r.Denials) != 1 || r.Denials[0].Layer != events.LayerLandlock || r.Denials[0].Detail["source"] != want {
			t.Errorf("a Landlock refusal in the executor a grant started: %+v", r.Denials)
		}
		apply()
		if got := attach(); got.Ret == 0 {
			t.Errorf("ptrace after the grant was revoked: %+v", got)
		}
	})

	t.Run("limit.memory", func(t *testing.T) {
		// 400MiB touched: over the policy's 256MiB, under the grant.
		const alloc = `python3 -c 'b = bytearray(400 << 20); b[::4096] = b"x" * len(b[::4096]); print("allocated")'`
		if r := sh(t, s, alloc); strings.Contains(string(r.Stdout), "allocated") {
			t.Fatalf("allocated 400MiB under a 256MiB limit")
		}
		apply("limit.memory:1GiB")
		if r := sh(t, s, alloc); !strings.Contains(string(r.Stdout), "allocated") {
			t.Errorf("400MiB under limit.memory:1GiB: exit %d %q %+v", r.ExitCode, r.Stderr, r.Denials)
		}
		apply()
		if r := sh(t, s, alloc); strings.Contains(string(r.Stdout), "allocated") {
			t.Errorf("allocated 400MiB after limit.memory was revoked")
		}
	})

	t.Run("limit.timeout", func(t *testing.T) {
		run := func() *sandbox.ExecResult {
			r, err := s.Exec(context.Background(), sandbox.ExecRequest{Command: "sleep 2; echo slept"})
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		if r := run(); !r.TimedOut {
			t.Fatalf("sleep 2 under a 1s timeout: %+v", r)
		}
		apply("limit.timeout:5s")
		if r := run(); r.TimedOut || string(r.Stdout) != "slept\n" {
			t.Errorf("sleep 2 under limit.timeout:5s: %+v", r)
		}
		if got := s.CallTimeout(); got != 5*time.Second {
			t.Errorf("CallTimeout = %v under limit.timeout:5s", got)
		}
		apply()
	})

	t.Run("fs.write", func(t *testing.T) {
		// A host directory outside the view: only root-started sessions
		// can mount one into a live session.
		dir := t.TempDir()
		os.Chmod(dir, 0o755)
		write := func() *sandbox.ExecResult { return sh(t, s, "echo granted > "+dir+"/out && cat "+dir+"/in") }
		os.WriteFile(filepath.Join(dir, "in"), []byte("host file\n"), 0o644)
		if r := write(); r.ExitCode == 0 {
			t.Fatalf("wrote %s before any grant: %q", dir, r.Stdout)
		}
		err := s.ApplyGrants([]string{"fs.write:" + dir})
		var se *sandbox.Error
		if os.Geteuid() != 0 {
			if !errors.As(err, &se) || se.Code != sandbox.CodeUnsupported {
				t.Errorf("rootless fs.write grant: %v, want unsupported", err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if r := write(); r.ExitCode != 0 || string(r.Stdout) != "host file\n" {
			t.Errorf("under fs.write:%s: exit %d %q %q", dir, r.ExitCode, r.Stdout, r.Stderr)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "out")); err != nil || string(b) != "granted\n" {
			t.Errorf("the host file written under the grant: %q %v", b, err)
		}
		apply()
		os.Remove(filepath.Join(dir, "out"))
		if r := write(); r.ExitCode == 0 {
			t.Errorf("wrote %s after the grant was revoked", dir)
		}
		if _, err := os.Stat(filepath.Join(dir, "out")); err == nil {
			t.Errorf("the revoked grant's file was written on the host")
		}
	})

	t.Run("refusals", func(t *testing.T) {
		var se *sandbox.Error
		for _, c := range []struct{ cap, code string }{
			{"fs.read:/root/.ssh", sandbox.CodeDenied}, // the default policy's never list
			{"fs.write:relative", sandbox.CodeInvalid},
			{"net.connect", sandbox.CodeInvalid},
			{"limit.memory:lots", sandbox.CodeInvalid},
			{"proc.fly", sandbox.CodeInvalid},
		} {
			err := s.ApplyGrants([]string{"proc.ptrace", c.cap})
			if !errors.As(err, &se) || se.Code != c.code {
				t.Errorf("ApplyGrants(%q): %v, want code %s", c.cap, err, c.code)
			}
		}
		// A refused set changes nothing.
		if got := s.Grants(); len(got) != 0 {
			t.Errorf("grants after refused sets: %q", got)
		}
		if d := denial(sh(t, s, "python3 probe.py ptrace"), events.LayerSeccomp, "ptrace"); d == nil {
			t.Error("ptrace allowed after a refused grant set")
		}
	})
}
