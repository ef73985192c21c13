package bench

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"
)

// benchModes are the modes the go-test benchmarks compare; the daemon
// mode is measured by `cordon bench` (it needs the built binary).
var benchModes = []Mode{ModeBare, ModeLibrary, ModePerCall, ModeBwrap}

func benchRunner(b *testing.B, m Mode, tree string) Runner {
	b.Helper()
	st, err := starterFor(m, nil)
	if err != nil {
		b.Fatal(err)
	}
	home := b.TempDir()
	rn, err := st(context.Background(), tree, home)
	if err != nil {
		b.Skipf("%s not available: %v", m, err)
	}
	b.Cleanup(func() { rn.Close() })
	return rn
}

// BenchmarkTrue is the smallest tool call, `/bin/true`, in each mode.
func BenchmarkTrue(b *testing.B) {
	ws := b.TempDir()
	os.Chmod(ws, 0o755)
	for _, m := range benchModes {
		b.Run(string(m), func(b *testing.B) {
			rn := benchRunner(b, m, ws)
			ctx := context.Background()
			for b.Loop() {
				if o, err := rn.Exec(ctx, []string{"/bin/true"}); err != nil || o.ExitCode != 0 {
					b.Fatal(err, o.ExitCode)
				}
			}
		})
	}
}

// BenchmarkSmokeTrace replays the smoke trace (12 real shell calls: ls,
// grep, sed, git, a failing command) on a fresh tree per replay
// (session open and close not timed).
func BenchmarkSmokeTrace(b *testing.B) {
	wl, _ := filepath.Abs(smokeWorkloads.Dir)
	c := Cache{Workloads: Workloads{Dir: wl}, Dir: b.TempDir()}
	os.Chmod(c.Dir, 0o755)
	tr, err := LoadTrace(filepath.Join(wl, "traces", "smoke.jsonl"))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.Prepare(ctx, tr); err != nil {
		b.Fatal(err)
	}
	for _, m := range []Mode{ModeBare, ModeLibrary} {
		b.Run(string(m), func(b *testing.B) {
			st, _ := starterFor(m, nil)
			for b.Loop() {
				b.StopTimer()
				tree, err := c.Fresh(tr.ID, "tree")
				if err != nil {
					b.Fatal(err)
				}
				home, err := c.Home("home")
				if err != nil {
					b.Fatal(err)
				}
				rn, err := st(ctx, tree, home)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				for _, call := range tr.Calls {
					if _, err := rn.Exec(ctx, call.Argv(tree)); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				rn.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*len(tr.Calls)), "µs/call")
		})
	}
}

// BenchmarkWakeup is this machine's floor under a hop of the session
// protocol: a round trip between two goroutines locked to their own OS
// threads, two wake-ups of a sleeping thread and no work. Every hop
// between the host, the supervisor and the executor costs at least one
// such wake-up. Run it as is and under `taskset -c 0` to compare a
// wake-up that may cross CPUs with one that cannot.
func BenchmarkWakeup(b *testing.B) {
	ping, pong := make(chan struct{}), make(chan struct{})
	go func() {
		runtime.LockOSThread()
		for range ping {
			pong <- struct{}{}
		}
	}()
	defer close(ping)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	rtt := make([]time.Duration, 0, b.N)
	for b.Loop() {
		t0 := time.Now()
		ping <- struct{}{}
		<-pong
		rtt = append(rtt, time.Since(t0))
	}
	slices.Sort(rtt)
	b.ReportMetric(float64(rtt[len(rtt)/2].Nanoseconds())/1e3, "p50_rtt_us")
}
