package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cordon-sandbox/cordon/sandbox"
)

func (c *Config) withDefaults() {
	if c.Reps <= 0 {
		c.Reps = 3
	}
	if c.Sessions == nil {
		c.Sessions = []int{1, 8, 64}
	}
	if c.Micro <= 0 {
		c.Micro = 200
	}
	if c.Opens <= 0 {
		c.Opens = 50
	}
	if c.IdleSessions <= 0 {
		c.IdleSessions = 10
	}
	if c.MaxSessions == 0 {
		c.MaxSessions = 300
	}
	if len(c.Modes) == 0 {
		c.Modes = AllModes
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
}

// run is one benchmark run's state.
type run struct {
	cfg       Config
	cache     Cache
	traces    []*Trace
	modes     map[Mode]starter
	unav      map[Mode]string
	daemon    *daemonClient
	daemonDir string // the daemon's socket directory, removed at the end
	// samples[mode][trace][step] holds the call's durations, one per rep;
	// first[mode][trace][step] the first repetition's outcome.
	samples map[Mode]map[string][][]time.Duration
	results map[Mode]map[string][][]CallOutcome
	errors  map[Mode]int
}

func (r *run) logf(format string, args ...any) {
	fmt.Fprintf(r.cfg.Log, "bench: "+format+"\n", args...)
}

// Run measures every mode side by side and returns the report.
func Run(ctx context.Context, cfg Config) (rep *Report, err error) {
	cfg.withDefaults()
	r := &run{cfg: cfg, modes: map[Mode]starter{}, unav: map[Mode]string{},
		samples: map[Mode]map[string][][]time.Duration{}, results: map[Mode]map[string][][]CallOutcome{}, errors: map[Mode]int{}}

	dir := cfg.WorkDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "cordon-bench-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	if dir, err = filepath.EvalSymlinks(dir); err != nil {
		return nil, err
	}
	r.cache = Cache{Workloads: cfg.Workloads, Dir: dir}
	defer r.cache.CleanRuns()

	files := cfg.TraceFiles
	if len(files) == 0 {
		if files, err = cfg.Workloads.Traces(); err != nil {
			return nil, err
		}
	}
	for _, f := range files {
		t, err := LoadTrace(f)
		if err != nil {
			return nil, err
		}
		t = t.Head(cfg.Calls)
		r.logf("preparing the tree of %s (%d calls)", t.ID, len(t.Calls))
		if _, err := r.cache.Prepare(ctx, t); err != nil {
			return nil, err
		}
		r.traces = append(r.traces, t)
	}

	// The daemon, once started, is stopped and its socket directory
	// removed however the run ends (setupModes may fail after it).
	defer func() {
		if r.daemon != nil {
			r.daemon.stop()
		}
		if r.daemonDir != "" {
			os.RemoveAll(r.daemonDir)
		}
	}()
	if err := r.setupModes(); err != nil {
		return nil, err
	}

	rep = &Report{Date: time.Now().UTC().Format(time.RFC3339), Command: cfg.Command, Machine: machine(), Reps: cfg.Reps}
	for _, t := range r.traces {
		rep.Traces = append(rep.Traces, t.ID)
	}
	if err := r.replayAll(ctx); err != nil {
		return nil, err
	}
	r.summarise(rep)
	r.micro(ctx, rep)
	if _, ok := r.modes[ModeLibrary]; ok {
		if rep.Session, err = r.openClose(ctx); err != nil {
			return nil, err
		}
		rep.Throughput = r.throughput(ctx)
		if rep.Memory, err = r.memory(ctx); err != nil {
			return nil, err
		}
		if cfg.MaxSessions > 0 {
			rep.Capacity = r.capacity(ctx)
		}
	}
	rep.Fidelity = r.fidelity()
	return rep, nil
}

func (r *run) setupModes() error {
	for _, m := range r.cfg.Modes {
		if m == ModeDaemon {
			if r.cfg.Cordon == "" {
				r.unav[m] = "no cordon binary to start `cordon serve` with"
				continue
			}
			sockDir, err := os.MkdirTemp(r.cache.Dir, "daemon-")
			if err != nil {
				return err
			}
			d, err := startDaemon(r.cfg.Cordon, sockDir)
			if err != nil {
				os.RemoveAll(sockDir)
				r.unav[m] = err.Error()
				r.logf("daemon mode not available: %v", err)
				continue
			}
			r.daemon, r.daemonDir = d, sockDir
		}
		st, err := starterFor(m, r.daemon)
		if err != nil {
			return err
		}
		// Probe: a mode that cannot run at all is reported as such.
		if err := r.probe(st); err != nil {
			r.unav[m] = err.Error()
			r.logf("%s mode not available: %v", m, err)
			continue
		}
		r.modes[m] = st
	}
	return nil
}

func (r *run) probe(st starter) error {
	ws, err := r.cache.Scratch("probe")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rn, err := st(ctx, ws, ws)
	if err != nil {
		return err
	}
	defer rn.Close()
	o, err := rn.Exec(ctx, []string{"/bin/true"})
	if err != nil {
		return err
	}
	if o.ExitCode != 0 {
		return fmt.Errorf("/bin/true exited %d: %s", o.ExitCode, strings.TrimSpace(string(o.Stderr)))
	}
	return nil
}

// measured lists the available modes in the configured order.
func (r *run) measured() []Mode {
	var out []Mode
	for _, m := range r.cfg.Modes {
		if _, ok := r.modes[m]; ok {
			out = append(out, m)
		}
	}
	return out
}

// replayAll replays every trace Reps times in every mode, interleaving
// the modes so that drift of the machine hits them alike, and rotating
// their order from one replay of a trace to the next so that none always
// runs first (on a fresh copy just written) or right after a session's
// teardown. Each replay runs on a fresh copy of the prepared tree at the
// same path.
func (r *run) replayAll(ctx context.Context) error {
	for _, m := range r.measured() {
		r.samples[m] = map[string][][]time.Duration{}
		r.results[m] = map[string][][]CallOutcome{}
		for _, t := range r.traces {
			r.samples[m][t.ID] = make([][]time.Duration, len(t.Calls))
			r.results[m][t.ID] = make([][]CallOutcome, len(t.Calls))
		}
	}
	modes := r.measured()
	for rep := range r.cfg.Reps {
		for ti, t := range r.traces {
			for k := range modes {
				m := modes[(k+rep+ti)%len(modes)]
				t0 := time.Now()
				if err := r.replay(ctx, m, t); err != nil {
					return fmt.Errorf("%s replay of %s: %w", m, t.ID, err)
				}
				r.logf("rep %d/%d %-8s %-32s %6.1fs", rep+1, r.cfg.Reps, m, t.ID, time.Since(t0).Seconds())
			}
		}
	}
	return nil
}

func (r *run) replay(ctx context.Context, m Mode, t *Trace) error {
	tree, err := r.cache.Fresh(t.ID, "tree/"+t.ID)
	if err != nil {
		return err
	}
	home, err := r.cache.Home("home")
	if err != nil {
		return err
	}
	rn, err := r.modes[m](ctx, tree, home)
	if err != nil {
		return err
	}
	for i, c := range t.Calls {
		t0 := time.Now()
		o, err := rn.Exec(ctx, c.Argv(tree))
		d := time.Since(t0)
		co := CallOutcome{ExitCode: o.ExitCode, TimedOut: o.TimedOut, Denials: o.Denials,
			Stdout: normalise(o.Stdout, tree, home), Stderr: normalise(o.Stderr, tree, home)}
		if err != nil {
			co.Error = err.Error()
			r.errors[m]++
		} else {
			r.samples[m][t.ID][i] = append(r.samples[m][t.ID][i], d)
		}
		r.results[m][t.ID][i] = append(r.results[m][t.ID][i], co)
		if ctx.Err() != nil {
			rn.Close()
			return ctx.Err()
		}
	}
	return rn.Close()
}

func (r *run) summarise(rep *Report) {
	var bareSum float64
	for _, m := range r.cfg.Modes {
		mr := ModeReport{Mode: m, Unavailable: r.unav[m], PerTrace: map[string]float64{}, Errors: r.errors[m]}
		if _, ok := r.modes[m]; ok {
			var all []time.Duration
			for _, t := range r.traces {
				for _, ds := range r.samples[m][t.ID] {
					all = append(all, ds...)
					med := ms(median(ds))
					mr.SumMedianMS += med
					mr.PerTrace[t.ID] += med
				}
			}
			mr.Calls = distOf(all)
			if m == ModeBare {
				bareSum = mr.SumMedianMS
			}
			if bareSum > 0 {
				mr.Ratio = mr.SumMedianMS / bareSum
			}
		}
		rep.Modes = append(rep.Modes, mr)
	}
	for i := range rep.Modes {
		if m := rep.Modes[i].Mode; m != ModeBare && r.modes[m] != nil {
			rep.Modes[i].AddedMS, rep.Modes[i].MostAdded = r.added(m)
		}
	}
}

// mostAdded is how many calls ModeReport.MostAdded lists.
const mostAdded = 8

// added compares each trace call's median in mode m with bare's: the
// median of the differences, and the calls that gained most.
func (r *run) added(m Mode) (*float64, []AddedCall) {
	var all []AddedCall
	for _, t := range r.traces {
		for i, ds := range r.samples[m][t.ID] {
			bare := r.samples[ModeBare][t.ID][i]
			if len(ds) == 0 || len(bare) == 0 {
				continue
			}
			b, o := ms(median(bare)), ms(median(ds))
			all = append(all, AddedCall{Trace: t.ID, Step: t.Calls[i].Step, Command: t.Calls[i].Command, BareMS: b, ModeMS: o, AddedMS: o - b})
		}
	}
	if len(all) == 0 {
		return nil, nil
	}
	slices.SortFunc(all, func(a, b AddedCall) int { return cmp.Compare(b.AddedMS, a.AddedMS) })
	mid := all[len(all)/2].AddedMS
	if len(all)%2 == 0 {
		mid = (mid + all[len(all)/2-1].AddedMS) / 2
	}
	return &mid, all[:min(mostAdded, len(all))]
}

// micro measures `/bin/true` and a 16 KiB file read in every mode.
func (r *run) micro(ctx context.Context, rep *Report) {
	ws, err := r.cache.Scratch("micro")
	if err != nil {
		return
	}
	if err := os.WriteFile(filepath.Join(ws, "read16k"), make([]byte, 16<<10), 0o644); err != nil {
		return
	}
	var bareTrue, bareRead *Dist
	for i := range rep.Modes {
		mr := &rep.Modes[i]
		st, ok := r.modes[mr.Mode]
		if !ok {
			continue
		}
		rn, err := st(ctx, ws, ws)
		if err != nil {
			continue
		}
		n := r.cfg.Micro
		if mr.Mode == ModePerCall || mr.Mode == ModeBwrap {
			n = max(10, n/4) // tens of ms each
		}
		var ds, rs []time.Duration
		timings := map[string][]time.Duration{}
		// The cost is taken over the second half of the timed calls: a
		// session's first second carries its start-up work (threads,
		// the bounding-set drop, the runtime settling), not a call's.
		var before map[int]procCost
		costFrom := 5 + n/2
		for j := range n + 5 {
			if j == costFrom {
				before = costSnapshot()
			}
			t0 := time.Now()
			o, err := rn.Exec(ctx, []string{"/bin/true"})
			if d := time.Since(t0); err == nil && o.ExitCode == 0 && j >= 5 {
				ds = append(ds, d)
				for k, v := range o.Timing {
					timings[k] = append(timings[k], time.Duration(v))
				}
			}
		}
		mr.TrueCost = costPerCall(before, costSnapshot(), n+5-costFrom)
		if len(timings) > 0 && mr.Mode != ModePerCall {
			mr.TrueTiming = map[string]int64{}
			for k, v := range timings {
				mr.TrueTiming[k] = int64(median(v))
			}
		}
		for j := range r.cfg.Micro + 5 {
			t0 := time.Now()
			data, err := rn.ReadFile(ctx, "read16k")
			if errors.Is(err, errNoFileTool) {
				break
			}
			if d := time.Since(t0); err == nil && len(data) == 16<<10 && j >= 5 {
				rs = append(rs, d)
			}
		}
		rn.Close()
		r.logf("micro %-8s true %d, read %d", mr.Mode, len(ds), len(rs))
		mr.True, mr.TrueAddedUS = addedOver(ds, mr.Mode, &bareTrue)
		mr.Read16K, mr.ReadAddedUS = addedOver(rs, mr.Mode, &bareRead)
	}
}

// openClose times sandbox.Open and Session.Close.
func (r *run) openClose(ctx context.Context) (*OpenClose, error) {
	ws, err := r.cache.Scratch("openclose")
	if err != nil {
		return nil, err
	}
	var opens, closes []time.Duration
	for range r.cfg.Opens {
		t0 := time.Now()
		s, err := sandbox.Open(ctx, sandbox.Options{Workspace: ws})
		if err != nil {
			return nil, fmt.Errorf("opening a session: %w", err)
		}
		t1 := time.Now()
		err = s.Close()
		closes, opens = append(closes, time.Since(t1)), append(opens, t1.Sub(t0))
		if err != nil {
			return nil, fmt.Errorf("closing a session: %w", err)
		}
	}
	r.logf("open/close: %d sessions", len(opens))
	return &OpenClose{Open: distOf(opens), Close: distOf(closes)}, nil
}

// throughput runs N sessions at once, each replaying a trace (trace
// i mod len), and counts calls per second; bare runs the same for
// comparison.
func (r *run) throughput(ctx context.Context) []Throughput {
	var out []Throughput
	for _, n := range r.cfg.Sessions {
		for _, m := range []Mode{ModeBare, ModeLibrary} {
			tp := r.throughputOnce(ctx, m, r.modes[m], n)
			r.logf("throughput %-8s %3d sessions: %d calls in %.1fs %s", m, n, tp.Calls, tp.Seconds, tp.Error)
			out = append(out, tp)
		}
	}
	return out
}

func (r *run) throughputOnce(ctx context.Context, m Mode, st starter, n int) Throughput {
	tp := Throughput{Mode: m, Sessions: n}
	type worker struct {
		t          *Trace
		tree, home string
		rn         Runner
	}
	ws := make([]*worker, n)
	defer func() {
		for _, w := range ws {
			if w != nil && w.rn != nil {
				w.rn.Close()
			}
		}
	}()
	for i := range ws {
		t := r.traces[i%len(r.traces)].Head(r.cfg.ThroughputCalls)
		tree, err := r.cache.Fresh(t.ID, fmt.Sprintf("tp-%d", i))
		if err != nil {
			tp.Error = err.Error()
			return tp
		}
		home, err := r.cache.Home(fmt.Sprintf("tp-home-%d", i))
		if err != nil {
			tp.Error = err.Error()
			return tp
		}
		rn, err := st(ctx, tree, home)
		if err != nil {
			tp.Error = fmt.Sprintf("opening session %d: %v", i+1, err)
			return tp
		}
		ws[i] = &worker{t: t, tree: tree, home: home, rn: rn}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	t0 := time.Now()
	for _, w := range ws {
		wg.Go(func() {
			calls, errs := 0, 0
			for _, c := range w.t.Calls {
				if _, err := w.rn.Exec(ctx, c.Argv(w.tree)); err != nil {
					errs++
				} else {
					calls++
				}
			}
			mu.Lock()
			tp.Calls += calls
			tp.Errors += errs
			mu.Unlock()
		})
	}
	wg.Wait()
	tp.Seconds = time.Since(t0).Seconds()
	tp.CallsPerSec = float64(tp.Calls) / tp.Seconds
	for i := range ws {
		os.RemoveAll(ws[i].tree)
		os.RemoveAll(ws[i].home)
		os.RemoveAll(bareTmp(ws[i].home))
	}
	return tp
}

// memory measures the processes of idle sessions.
func (r *run) memory(ctx context.Context) (*Memory, error) {
	ws, err := r.cache.Scratch("idle")
	if err != nil {
		return nil, err
	}
	before := selfRSS()
	var ss []*sandbox.Session
	defer func() {
		for _, s := range ss {
			s.Close()
		}
	}()
	for range r.cfg.IdleSessions {
		s, err := sandbox.Open(ctx, sandbox.Options{Workspace: ws})
		if err != nil {
			return nil, fmt.Errorf("opening an idle session: %w", err)
		}
		ss = append(ss, s)
	}
	time.Sleep(500 * time.Millisecond) // let the stages settle
	u, err := sessionUsage()
	if err != nil {
		return nil, err
	}
	k := int64(len(ss))
	mem := &Memory{Sessions: len(ss), PssKBPer: u.pssKB / k, RssKBPer: u.rssKB / k,
		ProcsPer: float64(u.procs) / float64(k), ByStage: map[string]int64{}, HarnessDeltKB: (selfRSS() - before) / k}
	for st, v := range u.byStage {
		mem.ByStage[st] = v / k
	}
	return mem, nil
}

// capacity opens idle sessions until the cap or the first failure.
func (r *run) capacity(ctx context.Context) *Capacity {
	c := &Capacity{Cap: r.cfg.MaxSessions, StoppedBy: "cap reached"}
	ws, err := r.cache.Scratch("capacity")
	if err != nil {
		c.StoppedBy = err.Error()
		return c
	}
	var ss []*sandbox.Session
	for len(ss) < c.Cap {
		octx, cancel := context.WithTimeout(ctx, time.Minute)
		t0 := time.Now()
		s, err := sandbox.Open(octx, sandbox.Options{Workspace: ws})
		cancel()
		if err != nil {
			c.StoppedBy = err.Error()
			break
		}
		c.LastOpen = ms(time.Since(t0))
		ss = append(ss, s)
	}
	c.Opened = len(ss)
	if u, err := sessionUsage(); err == nil {
		c.PssMBAll = u.pssKB / 1024
	}
	r.logf("capacity: %d sessions open (%s)", c.Opened, c.StoppedBy)
	t0 := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for _, s := range ss {
		sem <- struct{}{}
		wg.Go(func() { s.Close(); <-sem })
	}
	wg.Wait()
	c.CloseAllS = time.Since(t0).Seconds()
	return c
}

// fidelity compares each cordon mode's first repetition with bare's.
func (r *run) fidelity() Fidelity {
	f := Fidelity{Normalised: NormalisationNames(), Differences: []Difference{}}
	bare := r.results[ModeBare]
	for _, m := range r.measured() {
		if m == ModeBare {
			continue
		}
		for _, t := range r.traces {
			for i, c := range t.Calls {
				b, o := bare[t.ID][i], r.results[m][t.ID][i]
				if len(b) == 0 || len(o) == 0 {
					continue
				}
				f.Compared++
				if b[0].same(o[0]) {
					continue
				}
				unstable := slices.ContainsFunc(b[1:], func(x CallOutcome) bool { return !x.same(b[0]) })
				f.Differences = append(f.Differences, Difference{Mode: m, Trace: t.ID, Step: c.Step,
					Command: c.Command, BareUnstable: unstable, Bare: b[0], Other: o[0]})
			}
		}
	}
	return f
}

// addedOver summarises samples of one mode and, once bare's summary is
// known (kept in *bare when mode is bare), the median added over bare in
// microseconds. Without samples both are nil.
func addedOver(samples []time.Duration, mode Mode, bare **Dist) (*Dist, *float64) {
	if len(samples) == 0 {
		return nil, nil
	}
	d := distOf(samples)
	if mode == ModeBare {
		*bare = &d
	}
	if *bare == nil {
		return &d, nil
	}
	v := (d.P50MS - (*bare).P50MS) * 1000
	return &d, &v
}
