// Package redteam is cordon's red-team suite: attack cases (read host
// secrets, write outside the workspace, escape, network, cross-session,
// denial of service) run through the real tool path, each judged by an
// oracle planted fresh on the host for every run and checked by a
// positive control that shows the oracle would fire where the attack is
// allowed.
//
// Case IDs follow ../shared/redteam/CATALOG.md; cases the catalog lacks
// have IDs from 20 upwards in their class and say "new" in Source.
package redteam

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/cordon-sandbox/cordon/policy"
)

// Class is an attack class of the catalog.
type Class string

// The classes, in scorecard order.
const (
	Read    Class = "R" // read host secrets
	Write   Class = "W" // write or persist outside the workspace
	Escape  Class = "E" // escape to the host or a privileged kernel surface
	Network Class = "N" // network exfiltration
	Cross   Class = "X" // reach another session
	Denial  Class = "D" // deny service or outlive teardown
)

// Classes lists the classes in scorecard order.
var Classes = []Class{Read, Write, Escape, Network, Cross, Denial}

// Needs says what a case needs to be meaningful.
type Needs uint

const (
	// NeedAPI marks a case that drives cordon's own API (file tools,
	// several sessions, teardown): not applicable under --wrap.
	NeedAPI Needs = 1 << iota
	// NeedRoot marks a case whose fixture needs host root (planted by
	// the harness as root, or for a rootless run by a root parent).
	NeedRoot
	// NeedNet marks a case that runs in the fake internet: a child of
	// the harness in a network namespace of its own (fakenet_linux.go).
	NeedNet
)

// Case is one attack.
type Case struct {
	ID      string
	Class   Class
	Title   string
	Probe   string // what the attack tries, for the listing
	Oracle  string // what counts as the attack succeeding
	Control string // where the same probe runs allowed, and what shows the oracle fires
	Source  string // catalog ID and public source, or "new: <layer>"
	Needs   Needs
	// Policy, when set, replaces the default policy for this case's
	// sessions (fresh mode only; the warm session keeps the default).
	Policy func() *policy.Policy
	// FreshOnly marks a case that cannot run as a later call of the
	// shared warm session (it destroys or replaces its session).
	FreshOnly bool
	Run       func(ctx context.Context, e *Env) Outcome
}

// Outcome is what one run of a case found.
type Outcome struct {
	// Attacked: the oracle fired inside the sandbox, the attack
	// succeeded.
	Attacked bool
	Evidence string
	// Control: the oracle fired where the probe was allowed.
	Control         bool
	ControlEvidence string
	// NotApplicable: the case has no meaning here (with the reason).
	NotApplicable string
	// CouldNotRun: the case should run but its fixture or probe failed.
	CouldNotRun string
	// Metrics are measurements worth reporting (latencies, bytes).
	Metrics map[string]string
}

// Status is the verdict of one run.
type Status string

const (
	Passed        Status = "passed"
	Attacked      Status = "ATTACK SUCCEEDED"
	Broken        Status = "BROKEN CONTROL"
	NotApplicable Status = "not applicable"
	CouldNotRun   Status = "COULD NOT RUN"
)

// Verdict turns an outcome into a status. Order matters: an attack that
// succeeded is reported even if the control is broken.
func (o Outcome) Verdict() Status {
	switch {
	case o.Attacked:
		return Attacked
	case o.NotApplicable != "":
		return NotApplicable
	case o.CouldNotRun != "":
		return CouldNotRun
	case !o.Control:
		return Broken
	}
	return Passed
}

// Failing reports whether the status fails the suite.
func (s Status) Failing() bool { return s == Attacked || s == Broken || s == CouldNotRun }

// Result is one run of one case in one mode.
type Result struct {
	ID       string            `json:"id"`
	Class    Class             `json:"class"`
	Title    string            `json:"title"`
	Mode     string            `json:"mode"` // fresh, warm, wrap
	Status   Status            `json:"status"`
	Evidence string            `json:"evidence,omitempty"`
	Control  string            `json:"control,omitempty"`
	Reason   string            `json:"reason,omitempty"`
	Metrics  map[string]string `json:"metrics,omitempty"`
	Duration time.Duration     `json:"duration_ns"`
}

// Report is a whole run.
type Report struct {
	Root     bool          `json:"root"`
	Wrap     string        `json:"wrap,omitempty"`
	Results  []Result      `json:"results"`
	Classes  []ClassScore  `json:"classes"`
	Duration time.Duration `json:"duration_ns"`
}

// ClassScore is one row of the scorecard.
type ClassScore struct {
	Class         Class    `json:"class"`
	Runs          int      `json:"runs"`
	Passed        int      `json:"passed"`
	Attacks       int      `json:"attacks_succeeded"`
	Broken        int      `json:"broken_controls"`
	NotApplicable int      `json:"not_applicable"`
	CouldNotRun   int      `json:"could_not_run"`
	Reasons       []string `json:"reasons,omitempty"`
}

// Failed reports whether the run fails: an attack succeeded, a control
// was broken or a case that should run could not.
func (r *Report) Failed() bool {
	for _, res := range r.Results {
		if res.Status.Failing() {
			return true
		}
	}
	return false
}

func (r *Report) score() {
	by := map[Class]*ClassScore{}
	for _, c := range Classes {
		by[c] = &ClassScore{Class: c}
	}
	for _, res := range r.Results {
		s := by[res.Class]
		s.Runs++
		switch res.Status {
		case Passed:
			s.Passed++
		case Attacked:
			s.Attacks++
		case Broken:
			s.Broken++
		case NotApplicable:
			s.NotApplicable++
			s.Reasons = appendOnce(s.Reasons, res.ID+": "+res.Reason)
		case CouldNotRun:
			s.CouldNotRun++
			s.Reasons = appendOnce(s.Reasons, res.ID+": "+res.Reason)
		}
	}
	r.Classes = nil
	for _, c := range Classes {
		r.Classes = append(r.Classes, *by[c])
	}
}

func appendOnce(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// Scorecard renders the report for a terminal.
func (r *Report) Scorecard() string {
	var b strings.Builder
	mode := "cordon sessions (fresh and warm), root=" + fmt.Sprint(r.Root)
	if r.Wrap != "" {
		mode = "wrapped by: " + r.Wrap
	}
	fmt.Fprintf(&b, "cordon red-team scorecard — %s — %s\n\n", mode, r.Duration.Round(time.Millisecond))
	fmt.Fprintf(&b, "%-5s %5s %7s %9s %7s %7s %8s\n", "class", "runs", "passed", "attacks", "broken", "n/a", "not-run")
	for _, s := range r.Classes {
		fmt.Fprintf(&b, "%-5s %5d %7d %9d %7d %7d %8d\n", s.Class, s.Runs, s.Passed, s.Attacks, s.Broken, s.NotApplicable, s.CouldNotRun)
	}
	b.WriteString("\n")
	for _, res := range r.Results {
		if res.Status == Passed {
			continue
		}
		fmt.Fprintf(&b, "%-4s %-5s %-16s %s", res.ID, res.Mode, res.Status, res.Title)
		if res.Reason != "" {
			fmt.Fprintf(&b, " — %s", res.Reason)
		}
		if res.Evidence != "" {
			fmt.Fprintf(&b, "\n      evidence: %s", res.Evidence)
		}
		if res.Status == Broken && res.Control != "" {
			fmt.Fprintf(&b, "\n      control: %s", res.Control)
		}
		b.WriteString("\n")
	}
	var metrics []string
	for _, res := range r.Results {
		keys := make([]string, 0, len(res.Metrics))
		for k := range res.Metrics {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			metrics = append(metrics, fmt.Sprintf("%s/%s %s=%s", res.ID, res.Mode, k, res.Metrics[k]))
		}
	}
	if len(metrics) > 0 {
		b.WriteString("\nmeasurements:\n")
		for _, m := range metrics {
			b.WriteString("  " + m + "\n")
		}
	}
	if r.Failed() {
		b.WriteString("\nRESULT: FAIL\n")
	} else {
		b.WriteString("\nRESULT: PASS (0 attacks succeeded, no broken control, every applicable case ran)\n")
	}
	return b.String()
}

// Listing renders the case table as Markdown.
func Listing(cases []*Case) string {
	var b strings.Builder
	b.WriteString("| ID | class | title | probe | oracle (attack succeeded if) | control | runs | source |\n|---|---|---|---|---|---|---|---|\n")
	esc := func(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", " ") }
	for _, c := range cases {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", c.ID, c.Class, esc(c.Title), esc(c.Probe), esc(c.Oracle), esc(c.Control), c.runs(), esc(c.Source))
	}
	return b.String()
}

// runs says how a case is run, for the listing.
func (c *Case) runs() string {
	var r []string
	if c.FreshOnly {
		r = append(r, "fresh")
	} else {
		r = append(r, "fresh, warm")
	}
	if c.Needs&NeedNet != 0 {
		r = append(r, "fake internet")
	}
	if c.Needs&NeedRoot != 0 {
		r = append(r, "root fixture")
	}
	if c.Needs&NeedAPI != 0 {
		r = append(r, "cordon API (n/a under --wrap)")
	}
	return strings.Join(r, "; ")
}

// Config selects what a run does.
type Config struct {
	Classes []Class  // empty: all
	Cases   []string // empty: all
	// Wrap runs the shell cases through another sandbox's command
	// prefix instead of cordon sessions.
	Wrap []string
	// Progress, when set, gets one line per finished case run.
	Progress io.Writer
	// Verbose adds, after each case run's line, everything the sandbox
	// returned to it (to Progress).
	Verbose bool

	inNet bool // this is the fake-internet child: run the network cases
}
