package bench

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cordon-sandbox/cordon/sandbox"
)

func TestMain(m *testing.M) {
	sandbox.Init() // the sessions' stages re-execute this test binary
	os.Exit(m.Run())
}

// smokeWorkloads is a tiny trace with its own prepare.sh: cheap enough
// for every `go test`, shaped like the real workloads.
var smokeWorkloads = Workloads{Dir: "testdata/workloads"}

func smokeConfig(t *testing.T, modes ...Mode) Config {
	t.Helper()
	wl, err := filepath.Abs(smokeWorkloads.Dir)
	if err != nil {
		t.Fatal(err)
	}
	return Config{
		Workloads: Workloads{Dir: wl}, Modes: modes, Reps: 2, Sessions: []int{2},
		Micro: 10, Opens: 3, IdleSessions: 2, MaxSessions: 3, WorkDir: t.TempDir(),
	}
}

// checkReport fails on calls without a result and on any difference
// from bare, and checks that the figures are filled in.
func checkReport(t *testing.T, rep *Report, modes ...Mode) {
	t.Helper()
	for _, mr := range rep.Modes {
		if mr.Unavailable != "" {
			t.Errorf("%s: not available: %s", mr.Mode, mr.Unavailable)
			continue
		}
		if mr.Errors > 0 || mr.Calls.N == 0 || mr.SumMedianMS <= 0 || mr.True == nil {
			t.Errorf("%s: errors %d, calls %d, sum %.1f ms, true %v", mr.Mode, mr.Errors, mr.Calls.N, mr.SumMedianMS, mr.True)
		}
		checkAdded(t, mr)
	}
	if len(rep.Modes) != len(modes) {
		t.Errorf("report has %d modes, want %d", len(rep.Modes), len(modes))
	}
	for _, d := range rep.Fidelity.Differences {
		t.Errorf("%s differs from bare on step %d (%s):\n bare: %s\n %s: %s", d.Mode, d.Step, d.Command, d.Bare.brief(), d.Mode, d.Other.brief())
	}
	if rep.Fidelity.Compared == 0 {
		t.Error("nothing compared")
	}
}

// checkAdded checks a mode's per-call comparison with bare: none for
// bare itself; otherwise the most added calls, largest first, each a
// mode median minus a bare median, the first at least the median added.
func checkAdded(t *testing.T, mr ModeReport) {
	t.Helper()
	if mr.Mode == ModeBare {
		if mr.AddedMS != nil || mr.MostAdded != nil {
			t.Errorf("bare compared with itself: %v %v", mr.AddedMS, mr.MostAdded)
		}
		return
	}
	if mr.AddedMS == nil || len(mr.MostAdded) == 0 || len(mr.MostAdded) > mostAdded {
		t.Errorf("%s: added %v, %d most added calls", mr.Mode, mr.AddedMS, len(mr.MostAdded))
		return
	}
	for i, a := range mr.MostAdded {
		if a.Command == "" || a.AddedMS != a.ModeMS-a.BareMS || (i > 0 && a.AddedMS > mr.MostAdded[i-1].AddedMS) {
			t.Errorf("%s: most added call %d out of order or inconsistent: %+v", mr.Mode, i, a)
		}
	}
	if mr.MostAdded[0].AddedMS < *mr.AddedMS {
		t.Errorf("%s: the most added call (%+.2f ms) is below the median added (%+.2f ms)", mr.Mode, mr.MostAdded[0].AddedMS, *mr.AddedMS)
	}
}

// TestSmokeReplay replays the smoke trace bare and in a warm library
// session and runs every figure once at a tiny size.
func TestSmokeReplay(t *testing.T) {
	cfg := smokeConfig(t, ModeBare, ModeLibrary)
	var log strings.Builder
	cfg.Log = &log
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	checkReport(t, rep, ModeBare, ModeLibrary)
	if rep.Session == nil || rep.Session.Open.N != 3 {
		t.Errorf("session open/close: %+v", rep.Session)
	}
	if len(rep.Throughput) != 2 || rep.Throughput[1].Calls != 2*12 || rep.Throughput[1].Errors != 0 {
		t.Errorf("throughput: %+v", rep.Throughput)
	}
	if m := rep.Memory; m == nil || m.PssKBPer <= 0 || m.ByStage["__cordon_executor"] <= 0 || m.ByStage["__cordon_supervisor"] <= 0 {
		t.Errorf("memory: %+v", rep.Memory)
	}
	if c := rep.Capacity; c == nil || c.Opened != 3 || c.StoppedBy != "cap reached" {
		t.Errorf("capacity: %+v", rep.Capacity)
	}
	if m := rep.Modes[1]; m.Read16K == nil || m.ReadAddedUS == nil {
		t.Errorf("library read figure missing: %+v", m)
	}
	checkCost(t, rep.Modes[0], tierHost)
	checkCost(t, rep.Modes[1], tierHost, tierSupervisor, tierExecutor)
	var out strings.Builder
	rep.WriteTable(&out)
	if !strings.Contains(out.String(), "library") || !strings.Contains(out.String(), "0 differ") {
		t.Errorf("table:\n%s", out.String())
	}
	// Nothing of the run is left: the work directory holds only the cache.
	ents, _ := os.ReadDir(cfg.WorkDir)
	for _, e := range ents {
		if e.Name() != "prepared" {
			t.Errorf("left in the work directory: %s", e.Name())
		}
	}
}

// TestSmokeDaemon replays the smoke trace through `cordon serve`, built
// from this repository.
func TestSmokeDaemon(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the cordon binary; skipped in -short mode")
	}
	bin := filepath.Join(t.TempDir(), "cordon")
	build := exec.Command("go", "build", "-o", bin, "github.com/cordon-sandbox/cordon/cmd/cordon")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building cordon: %v\n%s", err, out)
	}
	cfg := smokeConfig(t, ModeBare, ModeDaemon)
	cfg.Cordon, cfg.Sessions, cfg.MaxSessions = bin, []int{}, -1
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, rep, ModeBare, ModeDaemon)
	if m := rep.Modes[1]; m.Read16K == nil {
		t.Errorf("daemon read figure missing: %+v", m)
	}
	checkCost(t, rep.Modes[1], tierHost, tierDaemon, tierSupervisor, tierExecutor)
	// The work directory is a cache kept between runs: the daemon's
	// socket directory must not pile up there.
	if left, _ := filepath.Glob(filepath.Join(cfg.WorkDir, "daemon-*")); len(left) > 0 {
		t.Errorf("the daemon's directories are left in the work directory: %v", left)
	}
}

// TestSmokeBwrapPerCall replays the smoke trace in bubblewrap and with a
// session per call.
func TestSmokeBwrapPerCall(t *testing.T) {
	if _, err := exec.LookPath("bwrap"); err != nil && os.Getenv("CORDON_BENCH_FULL") == "" {
		t.Skip("bwrap is not installed (apt-get install bubblewrap) and CORDON_BENCH_FULL is unset")
	}
	cfg := smokeConfig(t, ModeBare, ModePerCall, ModeBwrap)
	cfg.Reps, cfg.Sessions, cfg.MaxSessions = 1, []int{}, -1
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, rep, ModeBare, ModePerCall, ModeBwrap)
}

// TestFullTraces replays the real traces (prepare.sh) once in every
// mode. It needs root the first time and takes minutes: it runs when
// CORDON_BENCH_FULL is set (CORDON_BENCH_WORKDIR caches the trees).
func TestFullTraces(t *testing.T) {
	if os.Getenv("CORDON_BENCH_FULL") == "" {
		t.Skip("replays the real traces for minutes; set CORDON_BENCH_FULL=1 to run")
	}
	bin := filepath.Join(t.TempDir(), "cordon")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/cordon-sandbox/cordon/cmd/cordon").CombinedOutput(); err != nil {
		t.Fatalf("building cordon: %v\n%s", err, out)
	}
	cfg := Config{Workloads: DefaultWorkloads(), Reps: 1, Sessions: []int{}, MaxSessions: -1,
		Cordon: bin, WorkDir: os.Getenv("CORDON_BENCH_WORKDIR"), Log: testWriter{t}}
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, mr := range rep.Modes {
		if mr.Unavailable != "" || mr.Errors > 0 {
			t.Errorf("%s: unavailable %q, %d calls without a result", mr.Mode, mr.Unavailable, mr.Errors)
		}
	}
	var out strings.Builder
	rep.WriteTable(&out)
	t.Log(out.String())
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// checkCost checks that a mode's `true` calls were charged to exactly the
// tiers that serve them, and that each of those woke up for its calls.
func checkCost(t *testing.T, m ModeReport, tiers ...string) {
	t.Helper()
	var got []string
	for tier, c := range m.TrueCost {
		if c.spent() {
			got = append(got, tier)
		}
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(tiers))
	if !slices.Equal(got, want) {
		t.Errorf("%s: `true` cost charged to %v, want %v: %+v", m.Mode, got, want, m.TrueCost)
	}
	for _, tier := range tiers {
		if c := m.TrueCost[tier]; c.Switches < 0.5 {
			t.Errorf("%s: the %s did not wake up for its calls: %+v", m.Mode, tier, c)
		}
	}
}
