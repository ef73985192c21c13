package supervisor

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cordon-sandbox/cordon/internal/linux"

	"github.com/cordon-sandbox/cordon/events"
	"github.com/cordon-sandbox/cordon/internal/proto"
	"github.com/cordon-sandbox/cordon/internal/seccomp"
)

// spawnWait bounds how long a notification waits for the executor's
// spawn frame that names the call a new process belongs to. The frame is
// sent right after fork/exec returns, so the wait is microseconds in
// practice.
const spawnWait = 200 * time.Millisecond

// notifier answers the executor's seccomp notifications: every notified
// syscall is refused with EPERM and becomes a deny event attributed to the
// call whose process made it.
type notifier struct {
	s  *supervisor
	x  *executor // whose seccomp filter the listener belongs to
	fd int

	mu       sync.Mutex
	roots    map[int]string // root pid of a call's process tree → call
	expected map[string]int // call → Landlock refusals its result is to wait for

	viewOnce sync.Once
	view     viewFacts // for the write observer
}

func newNotifier(s *supervisor, x *executor, fd int) *notifier {
	return &notifier{s: s, x: x, fd: fd, roots: map[int]string{}}
}

func (n *notifier) spawned(call string, pid int) {
	n.mu.Lock()
	n.roots[pid] = call
	n.mu.Unlock()
}

// end forgets the call.
func (n *notifier) end(call string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for pid, c := range n.roots {
		if c == call {
			delete(n.roots, pid)
		}
	}
}

// loop answers notifications until no process uses the filter any more
// (a retired executor and everything it started have exited); a failure
// of the listener ends the session.
func (n *notifier) loop() {
	for {
		state, err := seccomp.Poll(n.fd, -1)
		if err == nil && state == seccomp.ListenerOrphaned {
			unix.Close(n.fd)
			return
		}
		note, err := seccomp.Receive(n.fd)
		if errors.Is(err, unix.ENOENT) {
			continue // the caller died before we read it
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "cordon supervisor: seccomp notifications: %v\n", err)
			os.Exit(3)
		}
		if seccomp.ExecutorOnly(note.Nr) && !n.ofExecutor(int(note.PID)) {
			n.answer(note.ID, unix.ENOSYS)
			continue
		}
		if seccomp.Allocation(note.Nr) {
			n.allocate(note) // disk_linux.go
			continue
		}
		forbidden, deny := seccomp.Forbidden(note)
		if seccomp.Observed(note.Nr) && !deny {
			n.observe(note)
			continue
		}
		if seccomp.Watched(note.Nr) && !deny {
			// A connect finds its call only if it is refused: walking
			// the caller's ancestry through /proc costs more than most
			// connects (glibc's probe of nscd on every user lookup).
			n.connect(note)
			continue
		}
		call := n.attribute(int(note.PID))
		rule := seccomp.Explain(note)
		if deny {
			rule = forbidden
		}
		e := &events.Event{
			Time: time.Now(), Session: n.s.session(), Call: call,
			Kind: events.Deny, Layer: events.LayerSeccomp,
			Op: rule.Syscall, Target: rule.Syscall, Rule: rule.Rule,
			Detail: map[string]any{"pid": note.PID, "reason": rule.Detail},
		}
		if rule.Capability != "" {
			e.Remedy = &events.Remedy{Capability: rule.Capability}
		}
		// Report first, then answer: the caller cannot go on (and its
		// call cannot end) before the denial is on the host's record,
		// so the event frame always precedes the call's result frame.
		_ = n.s.host.Send(&proto.Response{Call: call, Kind: proto.KindEvent, Event: e})
		n.answer(note.ID, unix.EPERM)
	}
}

// answer fails notification id with errno; a failure to answer, other
// than the caller having died, ends the session.
func (n *notifier) answer(id uint64, errno unix.Errno) {
	if err := seccomp.Respond(n.fd, id, errno); err != nil && !errors.Is(err, unix.ENOENT) {
		fmt.Fprintf(os.Stderr, "cordon supervisor: answering seccomp notification: %v\n", err)
		os.Exit(3)
	}
}

// attribute finds the call a session process belongs to by walking its
// ancestry up to a call's root process (a child of the executor), falling
// back to its process group and session for processes that were
// orphaned.
func (n *notifier) attribute(pid int) string {
	deadline := time.Now().Add(spawnWait)
	for {
		call, root, known := n.lookup(pid)
		if known || root == 0 || time.Now().After(deadline) {
			return call
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// lookup returns the call of pid if known, and otherwise the pid of the
// call root it descends from (0 when there is none).
func (n *notifier) lookup(pid int) (call string, root int, known bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for p, hops := pid, 0; p > 1 && hops < 64; hops++ {
		if c, ok := n.roots[p]; ok {
			return c, p, true
		}
		st, err := linux.ReadProcStat(p)
		if err != nil {
			return "", 0, false
		}
		for _, g := range []int{st.Pgrp, st.Session} {
			if c, ok := n.roots[g]; ok {
				return c, g, true
			}
		}
		if st.PPid == n.x.pid {
			return "", p, false
		}
		p = st.PPid
	}
	return "", 0, false
}
