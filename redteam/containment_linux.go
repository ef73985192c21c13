package redteam

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cordon-sandbox/cordon/policy"
	"github.com/cordon-sandbox/cordon/sandbox"
)

// The bounds of the containment (D) cases. While a case's load runs in
// one session, a trivial call ("echo ok") in a second session must
// answer within SessionBound and the harness must fork and exec
// /bin/true within HostBound, at every sample (every 100 ms). An idle
// machine answers both in a few milliseconds; the bounds leave room for
// a shared 2-core machine, not for a load that escapes its session.
// Before the load, the same samples must come in under a quarter of the
// bounds: otherwise the machine is too busy to judge containment and the
// case could not run (it neither passes nor fails on someone else's
// load).
const (
	SessionBound = 2 * time.Second
	HostBound    = 1 * time.Second
)

// Responsiveness is what latencyDuring measured.
type Responsiveness struct {
	BaseSession, BaseHost   time.Duration // worst before the load
	WorstSession, WorstHost time.Duration // worst during the load (and right after)
	Samples                 int
	Failed                  string // a second-session call that failed, if any
}

func (r Responsiveness) metrics() map[string]string {
	return map[string]string{
		"second_session_worst": r.WorstSession.Round(time.Millisecond).String(),
		"second_session_base":  r.BaseSession.Round(time.Millisecond).String(),
		"host_exec_worst":      r.WorstHost.Round(time.Millisecond).String(),
		"host_exec_base":       r.BaseHost.Round(time.Millisecond).String(),
		"samples":              strconv.Itoa(r.Samples),
		"bounds":               SessionBound.String() + " session, " + HostBound.String() + " host",
	}
}

// breaches lists the bounds the measurement broke.
func (r Responsiveness) breaches() []string {
	var bad []string
	if r.Failed != "" {
		bad = append(bad, "a second session's call failed during the load: "+r.Failed)
	}
	if r.WorstSession > SessionBound {
		bad = append(bad, fmt.Sprintf("second session's call took %s (bound %s)", r.WorstSession.Round(time.Millisecond), SessionBound))
	}
	if r.WorstHost > HostBound {
		bad = append(bad, fmt.Sprintf("host fork+exec took %s (bound %s)", r.WorstHost.Round(time.Millisecond), HostBound))
	}
	if r.Samples == 0 {
		bad = append(bad, "no sample was taken during the load")
	}
	return bad
}

func hostExec(ctx context.Context) time.Duration {
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := exec.CommandContext(ctx, "/bin/true").Run(); err != nil {
		return 10 * time.Second
	}
	return time.Since(t0)
}

// latencyDuring opens a second session and samples it and the host
// before and while load runs. A non-empty busy means the machine was too
// loaded before the load to judge.
func latencyDuring(ctx context.Context, e *Env, load func()) (r Responsiveness, busy string, err error) {
	return latencyOf(ctx, e, trivialCall, load)
}

// sampleCall is the second session's call: shell text and what its
// stdout must contain.
type sampleCall struct{ cmd, want string }

var trivialCall = sampleCall{"echo ok", "ok"}

// latencyOf is latencyDuring with another sample call.
func latencyOf(ctx context.Context, e *Env, call sampleCall, load func()) (r Responsiveness, busy string, err error) {
	s2, ws2, err := e.OpenSession(ctx, nil)
	if err != nil {
		return r, "", err
	}
	sample := func() (time.Duration, error) {
		t0 := time.Now()
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		res, err := s2.Exec(cctx, sandbox.ExecRequest{Command: e.vars(ws2) + call.cmd, Timeout: 15 * time.Second})
		d := time.Since(t0)
		if err == nil && (res.ExitCode != 0 || !strings.Contains(string(res.Stdout), call.want)) {
			err = fmt.Errorf("exit %d, stdout %q, stderr %q", res.ExitCode, tail(string(res.Stdout), 200), tail(string(res.Stderr), 200))
		}
		return d, err
	}
	r, busy = measure(ctx, sample, load)
	return r, busy, nil
}

// measure samples sample and the host before load and while it runs.
func measure(ctx context.Context, sample func() (time.Duration, error), load func()) (r Responsiveness, busy string) {
	for i := 0; i < 5; i++ {
		d, err := sample()
		if err != nil {
			return r, "the second client failed before the load: " + err.Error()
		}
		r.BaseSession = max(r.BaseSession, d)
		r.BaseHost = max(r.BaseHost, hostExec(ctx))
	}
	if r.BaseSession > SessionBound/4 || r.BaseHost > HostBound/4 {
		return r, fmt.Sprintf("the machine is too busy to judge containment: before the load a second session answered in %s and the host exec'd in %s", r.BaseSession.Round(time.Millisecond), r.BaseHost.Round(time.Millisecond))
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	wg.Add(2)
	go func() {
		defer wg.Done()
		for last := false; !last; {
			select {
			case <-done:
				last = true // one more call right after the load
			case <-time.After(100 * time.Millisecond):
			}
			d, err := sample()
			mu.Lock()
			if err != nil && r.Failed == "" {
				r.Failed = err.Error()
			}
			r.WorstSession = max(r.WorstSession, d)
			r.Samples++
			mu.Unlock()
		}
	}()
	go func() {
		defer wg.Done()
		for last := false; !last; {
			select {
			case <-done:
				last = true
			case <-time.After(100 * time.Millisecond):
			}
			d := hostExec(ctx)
			mu.Lock()
			r.WorstHost = max(r.WorstHost, d)
			mu.Unlock()
		}
	}()
	load()
	close(done)
	wg.Wait()
	return r, ""
}

// dosCase runs cmd in the case's session (with pol) as the load; fired
// tells from the load's result that it ran into a limit (the control).
func dosCase(id, title, probe, oracle, control, source string, needs Needs, pol func() *policy.Policy, cmd string, timeout time.Duration, fired func(o Obs) bool) *Case {
	return dosCaseCheck(id, title, probe, oracle, control, source, needs, pol, cmd, timeout, fired, nil)
}

// dosCaseCheck is dosCase whose load's result is also judged by check
// (what it returns is the attack's evidence).
func dosCaseCheck(id, title, probe, oracle, control, source string, needs Needs, pol func() *policy.Policy, cmd string, timeout time.Duration, fired func(o Obs) bool, check func(o Obs) []string) *Case {
	return &Case{ID: id, Class: Denial, Title: title, Probe: probe, Oracle: oracle + boundsText, Control: control, Source: source, Needs: needs | NeedAPI, Policy: pol, FreshOnly: true,
		Run: func(ctx context.Context, e *Env) Outcome {
			var a Obs
			resp, busy, err := latencyDuring(ctx, e, func() { a = e.ShIn(ctx, e.S, e.WS, cmd, timeout) })
			if err != nil {
				return Outcome{CouldNotRun: err.Error()}
			}
			if busy != "" {
				return Outcome{CouldNotRun: busy, Metrics: resp.metrics()}
			}
			bad := resp.breaches()
			if check != nil {
				bad = append(bad, check(a)...)
			}
			// The session must still answer after the load, with what
			// the load started gone or nearly (a few orphans may still
			// be reaped).
			after := e.Sh(ctx, `echo alive; echo "procs $(ls -d /proc/[0-9]* | wc -l)"`)
			if !strings.Contains(after.Text, "alive") {
				bad = append(bad, "the attacked session no longer answers: "+tail(after.Text, 300))
			}
			var procs int
			fmt.Sscanf(strings.TrimPrefix(firstLine(after.Text, "procs "), "procs "), "%d", &procs)
			if procs > 16 {
				bad = append(bad, fmt.Sprintf("%d processes alive in the attacked session after the load", procs))
			}
			var ctl []string
			if fired(a) {
				ctl = append(ctl, "the load ran into its limit")
			}
			o := verdict(bad, ctl)
			if !o.Control {
				o.ControlEvidence = "load did not reach a limit: " + tail(a.Text, 300)
			}
			o.Metrics = resp.metrics()
			o.Metrics["load_took"] = a.Took.Round(time.Millisecond).String()
			return o
		}}
}

// boundsText ends the oracle of every containment case.
var boundsText = fmt.Sprintf(" (bounds: a second session's trivial call within %s and host fork+exec within %s at every 100 ms sample during the load; the case could not run if, before the load, either took over a quarter of its bound)", SessionBound, HostBound)
