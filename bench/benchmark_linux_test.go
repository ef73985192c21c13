package bench

import (
	"context"
	"os"
	"path/filepath"
	"testing"
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
