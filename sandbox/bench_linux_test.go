package sandbox_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cordon-sandbox/cordon/internal/linux"
	"github.com/cordon-sandbox/cordon/sandbox"
)

// BenchmarkExec measures the smallest tool call three ways, side by side:
// run bare on the host, in a warm session, and in a fresh session per call.
func BenchmarkExec(b *testing.B) {
	ws := b.TempDir()
	os.Chmod(ws, 0o755)
	ctx := context.Background()
	b.Run("bare", func(b *testing.B) {
		phases := map[string][]int64{}
		for range b.N {
			t0 := time.Now()
			cmd := exec.Command("/bin/true")
			cmd.Dir = ws
			if err := cmd.Run(); err != nil {
				b.Fatal(err)
			}
			phases["p50_us"] = append(phases["p50_us"], time.Since(t0).Microseconds())
		}
		reportPhases(b, phases)
	})
	b.Run("warm", func(b *testing.B) {
		s := warmSession(b, ws)
		// Past the session's start-up work, so that the stages' cost
		// below is a call's.
		for range 300 {
			if _, err := s.Exec(ctx, sandbox.ExecRequest{Argv: []string{"/bin/true"}}); err != nil {
				b.Fatal(err)
			}
		}
		b.ResetTimer()
		before := stageCosts(b)
		phases := map[string][]int64{}
		for range b.N {
			t0 := time.Now()
			r, err := s.Exec(ctx, sandbox.ExecRequest{Argv: []string{"/bin/true"}})
			if err != nil || r.ExitCode != 0 {
				b.Fatal(err)
			}
			phases["p50_us"] = append(phases["p50_us"], time.Since(t0).Microseconds())
			for k, v := range r.Timing {
				phases[k] = append(phases[k], v)
			}
			// What the session adds around the command's own spawn
			// and run, call by call: less noisy than a difference of
			// medians on a loaded machine.
			phases["around_us"] = append(phases["around_us"], r.Timing["total_us"]-r.Timing["spawn_us"]-r.Timing["run_us"])
		}
		b.StopTimer()
		reportPhases(b, phases)
		after := stageCosts(b)
		for _, stage := range []string{"host", "sup", "exec"} {
			b.ReportMetric(float64(after[stage].Switches-before[stage].Switches)/float64(b.N), stage+"_switches/op")
			b.ReportMetric(float64(after[stage].CPU-before[stage].CPU)/float64(time.Microsecond)/float64(b.N), stage+"_cpu_us/op")
		}
	})
	b.Run("per-call", func(b *testing.B) {
		for range b.N {
			if r, err := sandbox.Run(ctx, sandbox.Options{Workspace: ws}, sandbox.ExecRequest{Argv: []string{"/bin/true"}}); err != nil || r.ExitCode != 0 {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkObservedWrite is what the write observer costs a command: a
// call in a warm session opens a file for writing n times (the supervisor
// judges every such open before the kernel goes on) and, as the control,
// for reading (not observed). observed_us is the median difference per
// open. One open per call is the usual case (`cmd 2>/dev/null`), with
// the supervisor idle since the last call; 500 in a loop is a build or an
// import writing files back to back. /dev/null is the commonest target, a
// workspace file the commonest write (a build, a .pyc).
func BenchmarkObservedWrite(b *testing.B) {
	ws := b.TempDir()
	os.Chmod(ws, 0o755)
	loop := func(n int, redirect string) string {
		return fmt.Sprintf("i=0; while [ $i -lt %d ]; do : %s; i=$((i+1)); done", n, redirect)
	}
	for _, c := range []struct {
		name        string
		n           int
		write, read string
	}{
		{"devnull-once", 1, ">/dev/null", "</dev/null"},
		{"devnull-loop", 500, ">/dev/null", "</dev/null"},
		{"workspace-once", 1, ">>f", "<f"},
		{"workspace-loop", 500, ">>f", "<f"},
	} {
		b.Run(c.name, func(b *testing.B) {
			s := warmSession(b, ws)
			run := func(cmd string) time.Duration { return timedExec(b, s, "/bin/sh", "-c", cmd) }
			run(loop(1, c.write)) // creates f
			var diffs []time.Duration
			for range b.N {
				diffs = append(diffs, (run(loop(c.n, c.write))-run(loop(c.n, c.read)))/time.Duration(c.n))
			}
			reportMedianUS(b, diffs, "observed_us")
		})
	}
}

// BenchmarkNotifiedConnect is what the supervisor's handling of a
// connect costs a command, as BenchmarkObservedWrite does for writes: a
// bash under sh (so the caller is not the call's root process, as in
// most commands) connects to a closed loopback port once per call, or,
// as the control, reads /dev/null.
func BenchmarkNotifiedConnect(b *testing.B) {
	ws := b.TempDir()
	os.Chmod(ws, 0o755)
	s := warmSession(b, ws)
	run := func(redirect string) time.Duration {
		return timedExec(b, s, "/bin/sh", "-c", "bash -c ': "+redirect+"'; true")
	}
	var diffs []time.Duration
	for range b.N {
		diffs = append(diffs, run("</dev/tcp/127.0.0.1/9")-run("</dev/null"))
	}
	reportMedianUS(b, diffs, "connect_us")
}

// timedExec runs argv in s and returns how long the call took; a call
// that fails or exits non-zero ends the benchmark.
func timedExec(b *testing.B, s *sandbox.Session, argv ...string) time.Duration {
	b.Helper()
	t0 := time.Now()
	r, err := s.Exec(context.Background(), sandbox.ExecRequest{Argv: argv})
	if err != nil || r.ExitCode != 0 {
		b.Fatalf("%q: %v %+v", argv, err, r)
	}
	return time.Since(t0)
}

// reportMedianUS reports the median of ds in microseconds as metric name.
func reportMedianUS(b *testing.B, ds []time.Duration, name string) {
	slices.Sort(ds)
	b.ReportMetric(float64(ds[len(ds)/2])/float64(time.Microsecond), name)
}

// BenchmarkReadFile compares a file tool read with a host read.
func BenchmarkReadFile(b *testing.B) {
	ws := b.TempDir()
	os.Chmod(ws, 0o755)
	data := make([]byte, 16<<10)
	if err := os.WriteFile(filepath.Join(ws, "f"), data, 0o644); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.Run("bare", func(b *testing.B) {
		for range b.N {
			if _, err := os.ReadFile(filepath.Join(ws, "f")); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("warm", func(b *testing.B) {
		s := warmSession(b, ws)
		for range b.N {
			if _, _, err := s.ReadFile(ctx, "f"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkStat is the bare round trip of a tool call: no process, no
// payload, host → supervisor → executor and back.
func BenchmarkStat(b *testing.B) {
	ws := b.TempDir()
	os.Chmod(ws, 0o755)
	ctx := context.Background()
	s := warmSession(b, ws)
	for range b.N {
		if _, err := s.Stat(ctx, "."); err != nil {
			b.Fatal(err)
		}
	}
}

// warmSession opens a session for a benchmark, closed when it ends, and
// restarts the timer so the open is not counted.
func warmSession(b *testing.B, ws string) *sandbox.Session {
	b.Helper()
	s, err := sandbox.Open(context.Background(), sandbox.Options{Workspace: ws})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	b.ResetTimer()
	return s
}

// reportPhases adds medians to a benchmark's output: p50_us of the whole
// call as the caller sees it (the target is a median; ns/op is a
// mean that a loaded machine's outliers pull up), and of each phase of the
// session's own timing (spawn_us, queue_us, ...), so that a run shows
// where a call's time goes, not only its total.
func reportPhases(b *testing.B, phases map[string][]int64) {
	for k, v := range phases {
		slices.Sort(v)
		b.ReportMetric(float64(v[len(v)/2]), k)
	}
}

// stageCosts reads what this process (host), and the supervisor and
// executor of the one session it has open, have spent so far.
func stageCosts(b *testing.B) map[string]linux.Cost {
	b.Helper()
	out := map[string]linux.Cost{"host": linux.ReadCost(os.Getpid())}
	for sup := range linux.Children(os.Getpid()) {
		if stage(sup) != "__cordon_supervisor" {
			continue
		}
		out["sup"] = linux.ReadCost(sup)
		for x := range linux.Children(sup) {
			if stage(x) == "__cordon_executor" {
				out["exec"] = linux.ReadCost(x)
			}
		}
	}
	if len(out) != 3 {
		b.Fatalf("found %d of the host, the supervisor and the executor", len(out))
	}
	return out
}

// stage is the cordon stage a process runs, from its command line.
func stage(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	args := strings.Split(string(b), "\x00")
	if len(args) > 1 {
		return args[1]
	}
	return ""
}
