package sandbox

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cordon-sandbox/cordon/events"
	"github.com/cordon-sandbox/cordon/internal/kaudit"
	"github.com/cordon-sandbox/cordon/internal/linux"
	"github.com/cordon-sandbox/cordon/policy"
)

// Landlock's denials of commands come from the kernel's audit log
// (package kaudit), read by one Reader per process, shared by every
// root-started session the process has open: opened by the first,
// closed by the last, which also puts the host's audit setting back as
// it was (kaudit.Open enables auditing if it was off). One reader, not
// one per session: every reader receives every record of the host, so
// per-session readers would each parse everyone's; and a process-wide
// one needs no API, so `cordon run`, the daemon and library users all
// get it. The daemon's audit setting is therefore restored whenever it
// has no session open, and at the latest when it stops.
//
// A record is tied to its session by the audit session id the session's
// supervisor gave the executor (proto.Ready.AuditSession): every process
// of the session carries it and none can change it. Where the host's own
// login uid was set (a host started from a login shell) the supervisor
// cannot do that; records are then tied by the denied process's pid
// namespace, looked up while it lives (and its parent's: short commands
// exit before their record is read), and then by the Landlock domain id
// learnt from the first. Within the session, a record is tied to its call
// by the process's ancestry (the call's process group leader, which the
// supervisor names in a spawn frame), else to the only call running.

// settleWait bounds how long a call's result waits for the kernel records
// of the Landlock refusals the supervisor's write observer foresaw in it.
const settleWait = 250 * time.Millisecond

var hostAudit auditHub

type auditHub struct {
	mu       sync.Mutex
	r        *kaudit.Reader
	users    int
	done     chan struct{} // closed when the dispatch loop ends
	bySes    map[uint32]*Session
	byDomain map[string]*Session
	sessions map[*Session]bool

	consumedMu sync.Mutex
	consumed   uint64
	progress   chan struct{} // closed (and replaced) as events are consumed
}

// acquire opens the process's reader if none is open.
func (h *auditHub) acquire() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.users > 0 {
		h.users++
		return nil
	}
	r, err := kaudit.Open(kaudit.Options{Buffer: 1024})
	if err != nil {
		return err
	}
	h.r, h.users, h.done = r, 1, make(chan struct{})
	h.bySes, h.byDomain, h.sessions = map[uint32]*Session{}, map[string]*Session{}, map[*Session]bool{}
	h.consumedMu.Lock()
	h.consumed, h.progress = 0, make(chan struct{})
	h.consumedMu.Unlock()
	go h.loop(r, h.done)
	return nil
}

// release closes the reader with its last user, which restores the
// host's audit setting.
func (h *auditHub) release() error {
	h.mu.Lock()
	h.users--
	if h.users > 0 {
		h.mu.Unlock()
		return nil
	}
	r, done := h.r, h.done
	h.r = nil
	h.mu.Unlock()
	err := r.Close()
	<-done
	if err != nil {
		return fmt.Errorf("closing the kernel audit reader: %w", err)
	}
	return nil
}

func (h *auditHub) add(s *Session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sessions[s] = true
	for id := range s.audit.sessions {
		h.bySes[id] = s
	}
}

// addSession ties another audit session id to s: that of a new executor
// a grant started (each executor takes an audit session of its own).
func (h *auditHub) addSession(s *Session, id uint32) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s.audit.sessions[id] = true
	if h.sessions[s] {
		h.bySes[id] = s
	}
}

func (h *auditHub) remove(s *Session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.sessions, s)
	for id := range s.audit.sessions {
		delete(h.bySes, id)
	}
	for d, o := range h.byDomain {
		if o == s {
			delete(h.byDomain, d)
		}
	}
}

func (h *auditHub) loop(r *kaudit.Reader, done chan struct{}) {
	defer close(done)
	for e := range r.Events() {
		if e.Denial != nil {
			if s := h.sessionOf(e.Denial); s != nil {
				s.landlockDenial(e.Denial)
			}
		}
		h.consumedMu.Lock()
		h.consumed++
		close(h.progress)
		h.progress = make(chan struct{})
		h.consumedMu.Unlock()
	}
}

// sessionOf finds the session a denial belongs to, or nil.
func (h *auditHub) sessionOf(d *kaudit.Denial) *Session {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s := h.bySes[d.AuditSession]; s != nil && d.HasSyscall {
		return s
	}
	if s := h.byDomain[d.Domain]; s != nil {
		return s
	}
	for s := range h.sessions {
		if len(s.audit.sessions) > 0 {
			continue // its records carry its ids
		}
		for _, pid := range []int{d.PID, d.PPID} {
			if pid > 0 && s.audit.inSession(pid) {
				h.byDomain[d.Domain] = s
				return s
			}
		}
	}
	return nil
}

// reader is the process's audit reader, nil while no session reads.
func (h *auditHub) reader() *kaudit.Reader {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.r
}

// settled reports, without waiting, that the dispatch loop has handled
// every record that has reached the reader (what sync waits for); false
// when it cannot tell that at once.
func (h *auditHub) settled() bool {
	r := h.reader()
	if r == nil {
		return true
	}
	n, ok := r.Quiet()
	if !ok {
		return false
	}
	h.consumedMu.Lock()
	defer h.consumedMu.Unlock()
	return h.consumed >= n
}

// sync waits, at most until ctx ends, until the dispatch loop has handled
// every record that has reached the reader.
func (h *auditHub) sync(ctx context.Context) {
	r := h.reader()
	if r == nil {
		return
	}
	n, err := r.Sync(ctx)
	if err != nil {
		return
	}
	for {
		h.consumedMu.Lock()
		got, progress := h.consumed, h.progress
		h.consumedMu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-progress:
		case <-ctx.Done():
			return
		}
	}
}

// sessionAudit is what a session needs to take its Landlock records.
type sessionAudit struct {
	// sessions are the audit session ids of the session's executors
	// (one each; none when the host's login uid kept the supervisor from
	// setting them). Guarded by the hub's mutex.
	sessions   map[uint32]bool
	supervisor int // host pid
	pidNS      unix.Stat_t

	mu         sync.Mutex
	roots      map[int]string // session pid of a call's process group leader → call
	lastSerial uint64
}

func newSessionAudit(session uint32, supervisor int) *sessionAudit {
	a := &sessionAudit{sessions: map[uint32]bool{}, supervisor: supervisor, roots: map[int]string{}}
	if session != 0 {
		a.sessions[session] = true
	}
	_ = unix.Stat("/proc/"+strconv.Itoa(supervisor)+"/ns/pid", &a.pidNS)
	return a
}

// inSession reports whether host pid lives in the session's pid
// namespace.
func (a *sessionAudit) inSession(pid int) bool {
	var st unix.Stat_t
	if a.pidNS.Ino == 0 || unix.Stat("/proc/"+strconv.Itoa(pid)+"/ns/pid", &st) != nil {
		return false
	}
	return st.Dev == a.pidNS.Dev && st.Ino == a.pidNS.Ino
}

// isExecutor reports whether host pid is one of the session's executors:
// a child of the supervisor (the executor is the session's subreaper, so
// a tool's orphans go to it, not to the supervisor; a grant may have
// started a second executor while the first drains). Read afresh each
// time: records are few, and executors change.
func (a *sessionAudit) isExecutor(pid int) bool {
	if pid == 0 {
		return false
	}
	tasks, _ := os.ReadDir("/proc/" + strconv.Itoa(a.supervisor) + "/task")
	for _, t := range tasks {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(a.supervisor) + "/task/" + t.Name() + "/children")
		for _, f := range strings.Fields(string(b)) {
			if f == strconv.Itoa(pid) {
				return true
			}
		}
	}
	return false
}

func (a *sessionAudit) spawned(call string, pid int) {
	a.mu.Lock()
	a.roots[pid] = call
	a.mu.Unlock()
}

func (a *sessionAudit) ended(call string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for pid, c := range a.roots {
		if c == call {
			delete(a.roots, pid)
		}
	}
}

// callOf finds the call of the host processes pids by their own, their
// process group's and their session's pid in the session, and returns
// the session pid of the first of them if it still lives.
func (a *sessionAudit) callOf(pids ...int) (call string, sessionPID int) {
	for i, p := range pids {
		if p <= 0 || !a.inSession(p) {
			continue
		}
		nsp := nsPID(p)
		if i == 0 {
			sessionPID = nsp
		}
		st, err := linux.ReadProcStat(p)
		if err != nil {
			continue
		}
		a.mu.Lock()
		c := a.roots[nsp]
		a.mu.Unlock()
		for _, g := range []int{st.Pgrp, st.Session} {
			if c == "" && g > 0 {
				a.mu.Lock()
				c = a.roots[nsPID(g)]
				a.mu.Unlock()
			}
		}
		if c != "" {
			return c, sessionPID
		}
	}
	return "", sessionPID
}

// nsPID is host pid p's pid in its own (innermost) pid namespace, 0 if
// it cannot be read.
func nsPID(p int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "NSpid:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, _ := strconv.Atoi(f[len(f)-1])
				return n
			}
		}
	}
	return 0
}

// landlockDenial makes the deny event of a Landlock record of the
// session and records it.
func (s *Session) landlockDenial(d *kaudit.Denial) {
	a := s.audit
	if a.isExecutor(d.PID) {
		return // a file tool: the supervisor reports it from the result
	}
	if d.HasSyscall && d.Exit >= 0 {
		// The system call succeeded: what Landlock refused on the way
		// did not stop it. An open with O_CREAT of a file that exists
		// but is not in the dentry cache asks Landlock for fs.make_reg
		// before the lookup finds it (>/dev/stderr, through
		// /proc/self/fd); the kernel logs the refusal and opens the
		// file all the same.
		return
	}
	a.mu.Lock()
	dup := d.Serial != 0 && d.Serial == a.lastSerial
	a.lastSerial = d.Serial
	a.mu.Unlock()
	if dup {
		return // the same system call refused on a second object (a rename)
	}
	call, pid := a.callOf(d.PID, d.PPID)
	if call == "" {
		s.mu.Lock()
		if len(s.pending) == 1 {
			for c := range s.pending {
				call = c
			}
		}
		s.mu.Unlock()
	}
	s.record(landlockEvent(s.id, call, pid, d))
}

// landlockEvent turns a Landlock audit record into a deny event. It names
// only what the session can see: the path as the process saw it from its
// root in the view, the process's name, its pid in the session; never a
// host pid.
func landlockEvent(session, call string, pid int, d *kaudit.Denial) *events.Event {
	ops := d.Ops()
	op := "landlock"
	if len(ops) > 0 {
		op = ops[0]
	}
	e := &events.Event{
		Time: d.Time, Session: session, Call: call, Kind: events.Deny, Layer: events.LayerLandlock,
		Op: op, Target: d.Path, Rule: "landlock.filesystem",
		Detail: map[string]any{"blockers": d.Blockers, "source": "audit"},
	}
	if d.SyscallName != "" {
		e.Detail["syscall"] = d.SyscallName
	}
	if d.Comm != "" {
		e.Detail["comm"] = d.Comm
	}
	if pid > 0 {
		e.Detail["pid"] = pid
	}
	capability := ""
	switch {
	case strings.HasPrefix(op, "scope."):
		e.Rule = "landlock.scope"
		e.Target = d.TargetComm
		if op == "scope.abstract_unix_socket" {
			e.Target = "@" + strings.TrimPrefix(d.Path, "\x00")
		}
		e.Detail["reason"] = "the session's processes may not signal, or connect to the abstract unix sockets of, processes outside the session"
	case strings.HasPrefix(op, "net."):
		e.Rule = "landlock.network"
		e.Target = fmt.Sprintf("%s:%d", d.Addr, d.Port)
		e.Detail["reason"] = "the session may not " + strings.TrimPrefix(op, "net.") + " this port"
	case op == "fs.ioctl_dev":
		e.Detail["ioctlcmd"] = d.IoctlCmd
		e.Detail["reason"] = d.Path + ": the session may use ioctls only on terminals and the harmless devices"
	case op == "fs.read", op == "fs.exec":
		e.Detail["reason"] = d.Path + " is not readable in this session"
		capability = fsCapability("fs.read", d.Path)
	default:
		what := d.Path + " is outside what this session may write (the workspace, /tmp, $HOME, /dev/shm and filesystem.write paths)"
		if strings.HasPrefix(op, "fs.make_") || strings.HasPrefix(op, "fs.remove_") || op == "fs.refer" {
			what = "the directory " + what + "; the kernel names the directory, not the entry"
		}
		e.Detail["reason"] = what
		capability = fsCapability("fs.write", d.Path)
	}
	if capability != "" {
		e.Remedy = &events.Remedy{Capability: capability}
	}
	return e
}

// fsCapability is verb:path, or "" for the session's own /proc and /dev,
// which no grant changes.
func fsCapability(verb, path string) string {
	if path == "" || !strings.HasPrefix(path, "/") {
		return ""
	}
	for _, p := range []string{"/proc", "/dev"} {
		if path == p || strings.HasPrefix(path, p+"/") {
			return ""
		}
	}
	return verb + ":" + path
}

// settle waits, before a call's result is final, for the kernel records
// of its Landlock refusals: at least until the reader has handled what
// reached it, and, when the supervisor foresaw pending refusals of
// writes, until that many have come or settleWait has passed.
func (s *Session) settle(call string, pending int) {
	// Most calls: nothing refused, nothing held. No timer for those: a
	// context with a deadline costs a timer's arming and, often, a
	// wake-up of the runtime's poller, on every call.
	if hostAudit.settled() && s.landlockSeen(call) >= pending {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), settleWait)
	defer cancel()
	for {
		hostAudit.sync(ctx)
		if s.landlockSeen(call) >= pending || ctx.Err() != nil {
			return
		}
		select {
		case <-time.After(200 * time.Microsecond):
		case <-ctx.Done():
		}
	}
}

// landlockSeen counts the Landlock refusals recorded for call so far.
func (s *Session) landlockSeen(call string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if pc := s.pending[call]; pc != nil {
		return pc.landlock
	}
	return 0
}

// allowRemedy drops a remedy that the session's policy would never
// grant: telling the agent to ask for it would only cost a turn.
func (s *Session) allowRemedy(e *events.Event) {
	if e.Remedy != nil && s.caps != nil && s.caps.Decide(e.Remedy.Capability) == policy.DecisionNever {
		e.Remedy = nil
	}
}
