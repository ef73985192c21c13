package sandbox_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cordon-sandbox/cordon/events"
	"github.com/cordon-sandbox/cordon/internal/kaudit"
	"github.com/cordon-sandbox/cordon/policy"
	"github.com/cordon-sandbox/cordon/sandbox"
)

// denials returns the deny events of r with rule.
func denialsOf(r *sandbox.ExecResult, rule string) []*events.Event {
	var out []*events.Event
	for _, d := range r.Denials {
		if d.Kind == events.Deny && d.Rule == rule {
			out = append(out, d)
		}
	}
	return out
}

func count(e *events.Event) int {
	if n, ok := e.Detail["count"].(int); ok {
		return n
	}
	return 1
}

// TestWriteDenials: every refused write is one event, from the layer
// that refused it. Writes to read-only binds (EROFS before Landlock is
// asked) come from the supervisor's write observer; writes Landlock
// refuses on a writable mount (/proc) from the kernel's audit log when
// the test runs as root, from the observer otherwise. Each has a
// positive control in the workspace.
func TestWriteDenials(t *testing.T) {
	ws := workspace(t)
	s, _ := open(t, ws, nil)

	t.Run("read-only bind", func(t *testing.T) {
		cases := []struct{ cmd, op, target string }{
			{"echo x > /usr/cordon-test-x", "fs.make_reg", "/usr/cordon-test-x"},
			{"cd /etc && echo x > cordon-test-rel", "fs.make_reg", "/etc/cordon-test-rel"},
			{"echo x > /etc/hostname", "fs.write", "/etc/hostname"},
			{"mkdir /usr/cordon-test-dir", "fs.make_dir", "/usr/cordon-test-dir"},
			{"rm -f /usr/bin/sh", "fs.remove_file", "/usr/bin/sh"},
			{"ln -s x /usr/cordon-test-ln", "fs.make_sym", "/usr/cordon-test-ln"},
			{"touch /cordon-test-root", "fs.make_reg", "/cordon-test-root"},
			{"chmod 777 /usr/bin", "fs.chmod", "/usr/bin"},
			{"mv /usr/bin/true /usr/bin/cordon-test-mv", "fs.rename", "/usr/bin/cordon-test-mv"},
			{"ln -sf /usr/cordon-test-via-link via && echo x > via", "fs.make_reg", "/usr/cordon-test-via-link"},
			{"python3 -c 'import os; os.truncate(\"/etc/hostname\", 0)'", "fs.write", "/etc/hostname"},
		}
		for _, c := range cases {
			r := sh(t, s, c.cmd)
			ds := denialsOf(r, "policy.filesystem.read_only")
			if r.ExitCode == 0 || len(r.Denials) != 1 || len(ds) != 1 {
				t.Errorf("%q: exit %d, denials %v", c.cmd, r.ExitCode, describe(r.Denials))
				continue
			}
			d := ds[0]
			if d.Layer != events.LayerPolicy || d.Op != c.op || d.Target != c.target || d.Remedy == nil || d.Remedy.Capability != "fs.write:"+c.target {
				t.Errorf("%q: %+v remedy %+v", c.cmd, d, d.Remedy)
			}
			if !strings.Contains(r.Explanation, "fs.write:"+c.target) {
				t.Errorf("%q: explanation %q does not name fs.write:%s", c.cmd, r.Explanation, c.target)
			}
		}
		// Controls: the same writes in the workspace, reads and
		// read-only creates of existing files are no events.
		for _, cmd := range []string{
			"echo x > cordon-test-x && mkdir d && ln -s x l && chmod 600 cordon-test-x && rm l && cat /etc/hostname >/dev/null",
			"python3 -c 'import os; os.close(os.open(\"/etc/hostname\", os.O_RDONLY|os.O_CREAT))'",
			"echo x > /tmp/t && echo y > ~/h && echo z > /dev/null && echo w > /dev/shm/s",
			"mkdir -p /usr/bin /tmp && echo out > /dev/stdout && echo err > /dev/stderr && mv /tmp/t ~/t2 && ln ~/t2 ~/t3",
			"cd /usr && cat bin/true > /dev/null && test -w /usr || echo read-only",
		} {
			if r := sh(t, s, cmd); r.ExitCode != 0 || len(r.Denials) != 0 {
				t.Errorf("control %q: exit %d %q, denials %v", cmd, r.ExitCode, r.Stderr, describe(r.Denials))
			}
		}
		if _, err := os.Stat(filepath.Join(ws, "cordon-test-x")); err != nil {
			t.Errorf("control: the workspace write is not on the host: %v", err)
		}
	})

	t.Run("landlock", func(t *testing.T) {
		r := sh(t, s, "echo cordon-test > /proc/self/comm")
		ds := denialsOf(r, "landlock.filesystem")
		if r.ExitCode == 0 || len(r.Denials) != 1 || len(ds) != 1 {
			t.Fatalf("write to /proc/self/comm: exit %d %q, denials %v", r.ExitCode, r.Stderr, describe(r.Denials))
		}
		d := ds[0]
		if d.Layer != events.LayerLandlock || d.Op != "fs.write" || !strings.HasPrefix(d.Target, "/proc/") || !strings.HasSuffix(d.Target, "/comm") || d.Remedy != nil {
			t.Errorf("landlock denial %+v remedy %+v", d, d.Remedy)
		}
		if !strings.Contains(r.Explanation, "no capability can allow this") {
			t.Errorf("explanation %q", r.Explanation)
		}
		// As root the kernel's audit record is the event; rootless the
		// supervisor's observer foresees it.
		want := "observer"
		if os.Geteuid() == 0 {
			want = "audit"
		}
		if d.Detail["source"] != want {
			t.Errorf("landlock denial from %v, want %s: %v", d.Detail["source"], want, describe(r.Denials))
		}
		// Control: the same file is readable.
		if r := sh(t, s, "cat /proc/self/comm"); r.ExitCode != 0 || len(r.Denials) != 0 {
			t.Errorf("control: reading /proc/self/comm: %d %v", r.ExitCode, describe(r.Denials))
		}
	})

	t.Run("repeated", func(t *testing.T) {
		r := sh(t, s, "for i in $(seq 100); do echo x > /usr/cordon-test-x; done 2>/dev/null; true")
		ds := denialsOf(r, "policy.filesystem.read_only")
		if len(r.Denials) != 1 || len(ds) != 1 || count(ds[0]) != 100 {
			t.Fatalf("100 refused writes: %v", describe(r.Denials))
		}
		if !strings.Contains(r.Explanation, "100 times") {
			t.Errorf("explanation %q does not count", r.Explanation)
		}
	})

	t.Run("file tool", func(t *testing.T) {
		// A file tool's refusal is reported from its result, once: the
		// observer leaves the executor's own calls alone.
		pol := policy.Default()
		pol.Workspace.Access = policy.AccessRead
		ro, _ := open(t, workspace(t), pol)
		err := ro.WriteFile(context.Background(), "new-file", []byte("x"))
		var se *sandbox.Error
		if !errors.As(err, &se) || len(se.Denials) != 1 || se.Denials[0].Rule != "policy.filesystem.read_only" {
			t.Fatalf("write_file in a read-only workspace: %v %v", err, describe(denialsOfErr(err)))
		}
		if err := s.WriteFile(context.Background(), "ok-file", []byte("x")); err != nil {
			t.Fatalf("control: write_file in a writable workspace: %v", err)
		}
	})
}

func denialsOfErr(err error) []*events.Event {
	var se *sandbox.Error
	if errors.As(err, &se) {
		return se.Denials
	}
	return nil
}

func describe(es []*events.Event) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "\n  %s %s %s %s %q", e.Layer, e.Op, e.Target, e.Rule, e.Detail["source"])
		if e.Remedy != nil {
			fmt.Fprintf(&b, " remedy %s", e.Remedy.Capability)
		}
		if n, ok := e.Detail["count"]; ok {
			fmt.Fprintf(&b, " count %v", n)
		}
	}
	return b.String()
}

// auditReading is the host's audit configuration the sessions must
// leave as they found it (counters excluded: every record moves them),
// and whether no other process was reading the audit log (go test runs
// other packages' sessions at the same time): only such readings are
// compared.
type auditReading struct {
	st    kaudit.Status
	alone bool
}

func auditSettings(t *testing.T) (auditReading, bool) {
	t.Helper()
	st, alone, err := kaudit.StatusAlone()
	if err != nil {
		return auditReading{}, false
	}
	st.Lost, st.Backlog, st.BacklogWaitTimeActual = 0, 0, 0
	return auditReading{st, alone}, true
}

// differs reports that two readings taken alone differ; readings it
// cannot compare are logged.
func (a auditReading) differs(t *testing.T, b auditReading) bool {
	t.Helper()
	if !a.alone || !b.alone {
		t.Logf("another process read the audit log meanwhile (go test runs other packages' sessions at once): settings not compared")
		return false
	}
	return a.st != b.st
}

// TestLandlockAudit: as root, the kernel's audit log is read while
// sessions are open and the host's audit settings are back as they were
// once the last one closes; a session opened with KernelAuditOff does
// not touch them and still reports refused writes (from the observer).
// Nothing outlives the sessions.
func TestLandlockAudit(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("reading the kernel audit log needs root; rootless sessions are covered by TestWriteDenials")
	}
	before, ok := auditSettings(t)
	if !ok {
		t.Fatal("root cannot read the audit status on this host")
	}
	// The process's first session starts what lives as long as the
	// process (the spawner thread, the cached idmap namespace): counted
	// before, they are not this test's leftovers when it runs alone.
	warm, err := sandbox.Open(context.Background(), sandbox.Options{Workspace: workspace(t), KernelAudit: sandbox.KernelAuditOff})
	if err != nil {
		t.Fatal(err)
	}
	warm.Close()
	goroutines, fds := runtime.NumGoroutine(), fdCount(t)
	for _, mode := range []sandbox.KernelAudit{sandbox.KernelAuditAuto, sandbox.KernelAuditOff} {
		bus := events.NewBus()
		sub := bus.Subscribe(64)
		var sessions []*sandbox.Session
		for range 2 {
			s, err := sandbox.Open(context.Background(), sandbox.Options{Workspace: workspace(t), Bus: bus, KernelAudit: mode})
			if err != nil {
				t.Fatal(err)
			}
			sessions = append(sessions, s)
		}
		start := <-sub.C
		if got := start.Detail["landlock_audit"]; got != (mode == sandbox.KernelAuditAuto) {
			t.Errorf("mode %d: session.start landlock_audit %v", mode, got)
		}
		if now, _ := auditSettings(t); mode == sandbox.KernelAuditOff && now.differs(t, before) {
			t.Errorf("KernelAuditOff changed the audit settings: %+v, before %+v", now, before)
		}
		for i, s := range sessions {
			r := sh(t, s, "echo x > /proc/self/comm; echo y > /usr/cordon-test-x; echo z > ok")
			ll, ro := denialsOf(r, "landlock.filesystem"), denialsOf(r, "policy.filesystem.read_only")
			if len(r.Denials) != 2 || len(ll) != 1 || len(ro) != 1 {
				t.Errorf("mode %d session %d: %v", mode, i, describe(r.Denials))
			} else if src := ll[0].Detail["source"]; (mode == sandbox.KernelAuditAuto) != (src == "audit") {
				t.Errorf("mode %d: landlock denial from %v", mode, src)
			}
		}
		for _, s := range sessions {
			if err := s.Close(); err != nil {
				t.Errorf("closing: %v", err)
			}
		}
		if after, _ := auditSettings(t); after.differs(t, before) {
			t.Errorf("mode %d: audit settings %+v after the sessions, %+v before", mode, after, before)
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > goroutines && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > goroutines {
		t.Errorf("goroutines: %d before, %d after", goroutines, n)
	}
	if n := fdCount(t); n > fds {
		t.Errorf("descriptors: %d before, %d after", fds, n)
	}
}

// TestTmpfsLimit: a call that fills the session's /tmp or $HOME gets a
// limit event naming the limit and its size; the next call, after the
// file is gone, gets none.
func TestTmpfsLimit(t *testing.T) {
	pol := policy.Default()
	pol.Limits.Tmp = 1 * policy.MiB
	pol.Limits.Home = 2 * policy.MiB
	s, _ := open(t, workspace(t), pol)
	if r := sh(t, s, "head -c 100000 /dev/zero > /tmp/small && head -c 100000 /dev/zero > ~/small"); r.ExitCode != 0 || len(r.Denials) != 0 {
		t.Fatalf("control: writes under the size: %d %q %v", r.ExitCode, r.Stderr, describe(r.Denials))
	}
	for _, c := range []struct {
		dir, limit string
		size       int64
	}{{"/tmp", "tmp", 1 << 20}, {"~", "home", 2 << 20}} {
		r := sh(t, s, "head -c 5000000 /dev/zero > "+c.dir+"/big")
		var hit *events.Event
		for _, d := range r.Denials {
			if d.Kind == events.Limit && d.Target == c.limit {
				hit = d
			}
		}
		if r.ExitCode == 0 || hit == nil || hit.Rule != "limits."+c.limit || hit.Detail["value"] != float64(c.size) || r.Limit != c.limit {
			t.Errorf("filling %s: exit %d limit %q %v", c.dir, r.ExitCode, r.Limit, describe(r.Denials))
		}
		if !strings.Contains(r.Explanation, c.limit+" limit") {
			t.Errorf("explanation %q", r.Explanation)
		}
		if r := sh(t, s, "rm "+c.dir+"/big"); r.ExitCode != 0 || len(r.Denials) != 0 {
			t.Errorf("after removing the file: %v", describe(r.Denials))
		}
	}
}
