package redteam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cordon-sandbox/cordon/policy"
	"github.com/cordon-sandbox/cordon/sandbox"
)

// Env is what a case run gets: the fixture, a session (or the wrap
// prefix) and helpers that record everything the sandbox returns.
type Env struct {
	*Fixture
	Mode   string // "fresh", "warm" or "wrap"
	WS     string // the session's workspace (the same path inside)
	P      string // the probe executable, inside and on the host
	Marker string // non-secret; argv of probes that must not survive
	Tag    string // unique name part for files of this run
	// CT is the control token: controls send it to host listeners, and
	// it never enters a session under attack, so an arrival without it
	// is the attack's (Fixture.unexpected). Host commands have it as $CT.
	CT      string
	ctlNote string   // the output of a control that did not fire
	after   []func() // run when the case ends, before its sessions close
	notRun  string   // set when a command of the case did not run (noteNotRun)
	S       *sandbox.Session
	wrap    []string
	r       *runner
	mu      sync.Mutex
	seen    []string // everything the sandbox returned
	extra   []*sandbox.Session
	extraWS []string
}

// Obs is what one call returned.
type Obs struct {
	Text string // stdout, stderr, error and denials, as one text
	Res  *sandbox.ExecResult
	Err  error
	Took time.Duration
}

func (o Obs) String() string { return o.Text }

// Has reports whether the output has a line starting with "OK " that
// contains what.
func (o Obs) OKs() []string {
	var out []string
	for _, l := range strings.Split(o.Text, "\n") {
		if strings.HasPrefix(l, "OK ") {
			out = append(out, strings.TrimPrefix(l, "OK "))
		}
	}
	return out
}

func (e *Env) record(s string) {
	e.mu.Lock()
	e.seen = append(e.seen, s)
	e.mu.Unlock()
}

// Wrapped reports whether the run goes through --wrap.
func (e *Env) Wrapped() bool { return e.wrap != nil }

// vars is the shell prelude: non-secret parameters only ($P is the probe
// copied into the workspace ws).
func (e *Env) vars(ws string) string {
	return fmt.Sprintf("P=%s; H=%s; WS=%s; M=%s; T=%s; ", shq(filepath.Join(ws, ".rt", "probe")), shq(e.H), shq(ws), shq(e.Marker), shq(e.Tag))
}

func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// Sh runs shell text in the session (or under the wrap prefix), with
// $P $H $WS $M $T set.
func (e *Env) Sh(ctx context.Context, cmd string) Obs {
	return e.ShIn(ctx, e.S, e.WS, cmd, 30*time.Second)
}

// ShIn runs shell text in the given session.
func (e *Env) ShIn(ctx context.Context, s *sandbox.Session, ws, cmd string, timeout time.Duration) Obs {
	// The command starts by saying it started and that the probe is
	// there: a wrapper that never ran it, or a view without the probe,
	// makes the case one that could not run, never one that passed.
	// (The marks are split in the text: a probe reading /proc/*/cmdline
	// sees the command line, which must not hold them whole.)
	text := e.vars(ws) + `echo "` + split(startedMark) + `"; [ -x "$P" ] || echo "` + split(probeMissing) + `" >&2; ` + cmd
	t0 := time.Now()
	var o Obs
	if e.wrap != nil {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		argv := append(e.wrapArgv(ws), "/bin/sh", "-c", text)
		c := exec.CommandContext(ctx, argv[0], argv[1:]...)
		c.Dir = ws
		out, err := c.CombinedOutput()
		o = Obs{Text: string(out), Err: err}
		if err != nil {
			o.Text += "\nerror: " + err.Error()
		}
	} else {
		res, err := s.Exec(ctx, sandbox.ExecRequest{Command: text, Timeout: timeout})
		o = Obs{Res: res, Err: err}
		o.Text = describe(res, err)
	}
	o.Took = time.Since(t0)
	switch {
	case !strings.Contains(o.Text, startedMark):
		e.noteNotRun("the command did not start: " + tail(o.Text, 300))
	case strings.Contains(o.Text, probeMissing):
		e.noteNotRun("the probe is not in the sandbox's view at " + filepath.Join(ws, ".rt", "probe") + " (exit 127 would be a missing binary, not a block)")
	}
	e.record(o.Text)
	return o
}

const (
	startedMark  = "cordon-redteam: started"
	probeMissing = "cordon-redteam: probe missing"
)

// split writes s for a double-quoted shell word so that the shell text
// does not contain s itself.
func split(s string) string { return s[:len(s)/2] + `""` + s[len(s)/2:] }

// noteNotRun records why the case could not run (the first reason).
func (e *Env) noteNotRun(why string) {
	e.mu.Lock()
	if e.notRun == "" {
		e.notRun = why
	}
	e.mu.Unlock()
}

// wrapArgv is the --wrap prefix with {WS} replaced by the workspace.
func (e *Env) wrapArgv(ws string) []string {
	argv := make([]string, len(e.wrap))
	for i, a := range e.wrap {
		argv[i] = strings.ReplaceAll(a, "{WS}", ws)
	}
	return argv
}

func describe(res *sandbox.ExecResult, err error) string {
	var b strings.Builder
	if res != nil {
		b.Write(res.Stdout)
		b.WriteString("\n")
		b.Write(res.Stderr)
		if len(res.Denials) > 0 {
			j, _ := json.Marshal(res.Denials)
			b.WriteString("\ndenials: ")
			b.Write(j)
		}
		fmt.Fprintf(&b, "\nexit=%d signal=%s limit=%s", res.ExitCode, res.Signal, res.Limit)
	}
	if err != nil {
		b.WriteString("\nerror: " + err.Error())
		var se *sandbox.Error
		if errors.As(err, &se) && len(se.Denials) > 0 {
			j, _ := json.Marshal(se.Denials)
			b.WriteString("\ndenials: ")
			b.Write(j)
		}
	}
	return b.String()
}

// Tool records a file-tool result (data and error) as returned text.
func (e *Env) Tool(what string, data []byte, err error) string {
	s := what + ": " + string(data)
	if err != nil {
		s += " error: " + err.Error()
		var se *sandbox.Error
		if errors.As(err, &se) {
			j, _ := json.Marshal(se.Denials)
			s += " denials: " + string(j)
		}
	}
	e.record(s)
	return s
}

// Host runs shell text on the host as the harness user (a control),
// with the harness's environment; nothing it prints is counted as a
// leak.
func (e *Env) Host(ctx context.Context, cmd string) Obs {
	return e.HostAs(ctx, nil, cmd)
}

// HostAs runs shell text on the host with an argv prefix (setpriv, ...).
// Host commands also have $CT (the control token) and $DECOY (the pid of
// this run's decoy process: never look a process up by name, another
// run's may be there).
func (e *Env) HostAs(ctx context.Context, prefix []string, cmd string) Obs {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	argv := append(append([]string(nil), prefix...), "/bin/sh", "-c", e.vars(e.WS)+fmt.Sprintf("CT=%s; DECOY=%d; ", shq(e.CT), e.Decoy.Process.Pid)+cmd)
	c := exec.CommandContext(ctx, argv[0], argv[1:]...)
	c.Dir = e.WS
	t0 := time.Now()
	out, err := c.CombinedOutput()
	o := Obs{Text: string(out), Err: err, Took: time.Since(t0)}
	if err != nil {
		o.Text += "\nerror: " + err.Error()
	}
	return o
}

// OpenSession opens another session (cross-session and containment
// cases) on a fresh workspace; the runner closes it.
func (e *Env) OpenSession(ctx context.Context, pol *policy.Policy) (*sandbox.Session, string, error) {
	return e.openSession(ctx, pol, "")
}

// openControl opens a control session: its proxy's lookups carry the
// control token in the resolver's record.
func (e *Env) openControl(ctx context.Context, pol *policy.Policy) (*sandbox.Session, string, error) {
	return e.openSession(ctx, pol, e.CT)
}

func (e *Env) openSession(ctx context.Context, pol *policy.Policy, tag string) (*sandbox.Session, string, error) {
	ws, err := e.r.workspace("extra")
	if err != nil {
		return nil, "", err
	}
	s, err := e.r.openTagged(ctx, ws, pol, tag)
	if err != nil {
		return nil, "", err
	}
	e.extra = append(e.extra, s)
	e.extraWS = append(e.extraWS, ws)
	return s, ws, nil
}

// CloseSession closes a session opened with OpenSession now.
func (e *Env) CloseSession(s *sandbox.Session) error {
	for i, x := range e.extra {
		if x == s {
			e.extra = append(e.extra[:i], e.extra[i+1:]...)
		}
	}
	return s.Close()
}

type runner struct {
	cfg  Config
	fx   *Fixture
	warm *sandbox.Session
	wsN  int
}

func (r *runner) workspace(kind string) (string, error) {
	r.wsN++
	ws := filepath.Join(r.fx.Base, fmt.Sprintf("ws-%d-%s", r.wsN, kind))
	if err := os.Mkdir(ws, 0o755); err != nil {
		return "", err
	}
	if _, err := copyProbe(r.fx.Probe, ws); err != nil {
		return "", err
	}
	return ws, nil
}

// Select returns the cases cfg selects, in catalog order.
func Select(cfg Config) []*Case {
	var out []*Case
	for _, c := range Cases() {
		if len(cfg.Classes) > 0 && !hasClass(cfg.Classes, c.Class) {
			continue
		}
		if len(cfg.Cases) > 0 && !hasString(cfg.Cases, c.ID) {
			continue
		}
		out = append(out, c)
	}
	return out
}

func hasClass(l []Class, c Class) bool {
	for _, x := range l {
		if x == c {
			return true
		}
	}
	return false
}

func hasString(l []string, s string) bool {
	for _, x := range l {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// Run runs the selected cases and returns the report. An error means the
// harness itself could not start. The network cases run first, in the
// fake-internet child (runNetCases); the rest in this process.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	t0 := time.Now()
	selected := Select(cfg)
	if len(selected) == 0 {
		return nil, fmt.Errorf("no case matches the selection")
	}
	var here, there []*Case
	for _, c := range selected {
		if c.Needs&NeedNet != 0 && !cfg.inNet {
			there = append(there, c)
		} else {
			here = append(here, c)
		}
	}
	var results []Result
	if len(there) > 0 {
		var ids []string
		for _, c := range there {
			ids = append(ids, c.ID)
		}
		net, err := runNetCases(ctx, cfg, ids)
		if err != nil {
			return nil, fmt.Errorf("running the network cases: %w", err)
		}
		results = append(results, net.Results...)
	}
	fx, err := setupFixture(cfg.inNet)
	if err != nil {
		return nil, fmt.Errorf("setting up the fixture: %w", err)
	}
	defer fx.Close()
	r := &runner{cfg: cfg, fx: fx}
	rep := &Report{Root: fx.Root, Wrap: strings.Join(cfg.Wrap, " ")}
	modes := []string{"fresh", "warm"}
	if len(cfg.Wrap) > 0 {
		modes = []string{"wrap"}
	} else if len(here) > 0 {
		ws, err := r.workspace("warm")
		if err != nil {
			return nil, err
		}
		r.warm, err = r.open(ctx, ws, nil)
		if err != nil {
			return nil, fmt.Errorf("opening the warm session: %w", err)
		}
		defer r.warm.Close()
		// The warm session has run calls before the cases come.
		for _, c := range []string{"echo warm > warm.txt", "ls -la /", "cat warm.txt; sleep 0.1 &"} {
			if _, err := r.warm.Exec(ctx, sandbox.ExecRequest{Command: c}); err != nil {
				return nil, fmt.Errorf("warming the session: %w", err)
			}
		}
	}
	for _, c := range here {
		for _, mode := range modes {
			if mode == "warm" && c.FreshOnly {
				continue
			}
			res, seen := r.runCase(ctx, c, mode)
			results = append(results, res)
			if cfg.Progress != nil {
				fmt.Fprintf(cfg.Progress, "%-4s %-5s %-16s %s (%s)\n", res.ID, res.Mode, res.Status, res.Title, res.Duration.Round(time.Millisecond))
				if cfg.Verbose {
					for _, t := range seen {
						fmt.Fprintf(cfg.Progress, "    | %s\n", strings.ReplaceAll(strings.TrimSpace(t), "\n", "\n    | "))
					}
				}
			}
		}
	}
	// Scorecard order: the order of the cases, each case's modes in the
	// order they ran.
	order := map[string]int{}
	for i, c := range selected {
		order[c.ID] = i
	}
	sort.SliceStable(results, func(i, j int) bool { return order[results[i].ID] < order[results[j].ID] })
	rep.Results = results
	rep.Duration = time.Since(t0)
	rep.score()
	return rep, nil
}

// open opens a session for the suite: the case's policy (in the fake
// internet, the network cases' policy when it sets none) and the
// harness's resolver, so that no session's proxy ever asks a real DNS.
func (r *runner) open(ctx context.Context, ws string, pol *policy.Policy) (*sandbox.Session, error) {
	return r.openTagged(ctx, ws, pol, "")
}

// openTagged opens a session whose lookups the resolver records with tag.
func (r *runner) openTagged(ctx context.Context, ws string, pol *policy.Policy, tag string) (*sandbox.Session, error) {
	if pol == nil && r.cfg.inNet {
		pol = netPolicy(nil)
	}
	return sandbox.Open(ctx, sandbox.Options{Workspace: ws, Policy: pol, Resolve: r.fx.dns.resolveAs(tag)})
}

// runCase runs c in mode; seen is everything the sandbox returned.
func (r *runner) runCase(ctx context.Context, c *Case, mode string) (res Result, seen []string) {
	t0 := time.Now()
	res = Result{ID: c.ID, Class: c.Class, Title: c.Title, Mode: mode}
	defer func() { res.Duration = time.Since(t0) }()
	if mode == "wrap" && c.Needs&NeedAPI != 0 {
		res.Status, res.Reason = NotApplicable, "needs cordon's API (file tools, sessions, teardown)"
		return res, nil
	}
	if c.Needs&NeedRoot != 0 && !r.fx.RootPlanted {
		res.Status, res.Reason = NotApplicable, "the fixture needs host root (run as root, or rootless with "+RootPrepEnv+" from PrepareRootless)"
		return res, nil
	}
	e := &Env{Fixture: r.fx, Mode: mode, r: r, Marker: "cordonrt-" + randHex(6), Tag: strings.ToLower(c.ID) + "-" + randHex(4), CT: "ctl-" + randHex(8)}
	var err error
	switch mode {
	case "warm":
		e.S, e.WS = r.warm, r.warm.Workspace()
	default:
		if e.WS, err = r.workspace(strings.ToLower(c.ID)); err != nil {
			res.Status, res.Reason = CouldNotRun, "workspace: "+err.Error()
			return res, nil
		}
		if mode == "wrap" {
			e.wrap = r.cfg.Wrap
			break
		}
		var pol *policy.Policy
		if c.Policy != nil {
			pol = c.Policy()
		}
		if e.S, err = r.open(ctx, e.WS, pol); err != nil {
			res.Status, res.Reason = CouldNotRun, "opening the session: "+err.Error()
			return res, nil
		}
	}
	e.P = filepath.Join(e.WS, ".rt", "probe")
	before := homeManifest(r.fx.H)
	mark := r.fx.mark()

	o := func() (o Outcome) {
		defer func() {
			if p := recover(); p != nil {
				o = Outcome{CouldNotRun: fmt.Sprintf("case panicked: %v", p)}
			}
		}()
		return c.Run(ctx, e)
	}()

	// Teardown: what the case started, then its sessions (the warm one
	// lives on).
	for i := len(e.after) - 1; i >= 0; i-- {
		e.after[i]()
	}
	for _, s := range e.extra {
		_ = s.Close()
	}
	if mode == "fresh" && e.S != nil {
		if err := e.S.Close(); err != nil && o.CouldNotRun == "" && !c.FreshOnly {
			o.CouldNotRun = "closing the session: " + err.Error()
		}
	}
	// The oracles every case shares: a canary in anything returned, a
	// write in the host home, a byte at a host listener that the case
	// did not expect from its control, a marker process alive after
	// teardown.
	var ev []string
	if leak := r.fx.C.Leak(strings.Join(e.seen, "\n")); len(leak) > 0 {
		ev = append(ev, "canary in session output: "+strings.Join(leak, ","))
	}
	if d := manifestDiff(before, homeManifest(r.fx.H)); len(d) > 0 {
		ev = append(ev, "host home changed: "+strings.Join(d, " "))
	}
	if got := r.fx.unexpected(mark, e.CT); len(got) > 0 {
		ev = append(ev, "host listener received bytes without the control token: "+strings.Join(got, "; "))
	}
	if left := hostIPCLeft(); len(left) > 0 {
		ev = append(ev, "left in the harness's IPC namespace or user keyring: "+strings.Join(left, ", "))
	}
	if mode != "warm" {
		time.Sleep(50 * time.Millisecond)
		if p := markerProcs(e.Marker); len(p) > 0 {
			ev = append(ev, "marker process alive after teardown: "+strings.Join(p, "; "))
		}
	}
	if len(ev) > 0 {
		o.Attacked = true
		if o.Evidence != "" {
			ev = append([]string{o.Evidence}, ev...)
		}
		o.Evidence = strings.Join(ev, " | ")
	}
	if e.notRun != "" && !o.Attacked && o.NotApplicable == "" && o.CouldNotRun == "" {
		o.CouldNotRun = e.notRun
	}
	res.Status = o.Verdict()
	res.Evidence, res.Control, res.Metrics = o.Evidence, o.ControlEvidence, o.Metrics
	switch res.Status {
	case NotApplicable:
		res.Reason = o.NotApplicable
	case CouldNotRun:
		res.Reason = o.CouldNotRun
	case Broken:
		res.Reason = "the control did not fire"
		if e.ctlNote != "" {
			res.Control += " | control output: " + e.ctlNote
		}
	}
	return res, e.seen
}

// arrived is a control's evidence: l got the control token since mark m.
func (e *Env) arrived(l *Listener, m int) []string {
	if l.arrived(m, e.CT) {
		return []string{l.Network + " " + l.Addr + " got the control token"}
	}
	return nil
}

// hostCtl is how a control runs a probe on the host: as root, "$P
// redteam probe " + root. When the harness is not root, a control that
// needs root runs in a user namespace of its own (unshare -Ur plus the
// namespace flags in ns), where it holds every capability over what it
// created, with user (root if empty); plain runs it as is either way.
type hostCtl struct {
	root, ns, user string
	plain          bool
	// fired, when set, picks the control's evidence from its OK lines
	// (the case's own filter otherwise).
	fired func(string) bool
}

// Control runs c.
func (e *Env) Control(ctx context.Context, c hostCtl) Obs {
	if e.Root || c.plain {
		return e.Host(ctx, `"$P" redteam probe `+c.root)
	}
	args := c.user
	if args == "" {
		args = c.root
	}
	return e.HostAs(ctx, []string{"unshare", "-Ur" + c.ns}, `"$P" redteam probe `+args)
}

// unprivileged is the argv prefix that runs a host command as an
// unprivileged user: setpriv to uid 65534 when the harness is root,
// nothing when it already is one.
func (e *Env) unprivileged() []string {
	if e.Root {
		return []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"}
	}
	return nil
}

// rootGated are the syscalls of the sweep the kernel refuses (EPERM) to
// every caller without a capability in the initial user namespace, so a
// control without host root cannot show them reached.
var rootGated = map[string]bool{"userfaultfd": true, "syslog": true, "acct": true, "swapon": true, "swapoff": true, "reboot": true, "fanotify_init": true}
