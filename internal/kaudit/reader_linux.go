package kaudit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ReadStatus returns the host's audit settings (AUDIT_GET). It needs
// CAP_AUDIT_CONTROL in the initial user and PID namespaces.
func ReadStatus() (Status, error) {
	fd, err := openAudit(0)
	if err != nil {
		return Status{}, classify(err)
	}
	defer unix.Close(fd)
	s, err := getStatus(fd, nextSeq())
	if err != nil {
		return Status{}, classify(err)
	}
	return statusOf(s), nil
}

// Open subscribes to the kernel's read-only copy of the audit log
// (AUDIT_NLGRP_READLOG) and starts reading Landlock's records from it.
// If auditing is disabled (Status.Enabled 0), Open enables it, and the
// last Close of this process restores it; see the package documentation
// for what that does to the host. It needs CAP_AUDIT_READ and
// CAP_AUDIT_CONTROL in the initial user namespace, and the initial PID
// and network namespaces; without them the error matches ErrNotPermitted.
func Open(opts Options) (*Reader, error) {
	opts = opts.withDefaults()
	if err := initialNetNS(); err != nil {
		return nil, err
	}
	fd, err := openReadlog()
	if err != nil {
		return nil, classify(err)
	}
	if err := hostAudit.acquire(); err != nil {
		unix.Close(fd)
		return nil, err
	}
	// From here the socket is the poller's: Close interrupts a receive.
	f := os.NewFile(uintptr(fd), "audit-readlog")
	rc, err := f.SyscallConn()
	if err == nil {
		// Fails unless the runtime's poller took the socket.
		err = f.SetReadDeadline(time.Time{})
	}
	if err != nil {
		f.Close()
		return nil, errors.Join(fmt.Errorf("polling the audit socket: %w", err), hostAudit.release())
	}
	r := &Reader{
		file:   f,
		conn:   rc,
		events: make(chan Event, opts.Buffer),
		asm:    newAssembler(opts.Window, opts.MaxPending),
		done:   make(chan struct{}),
		quit:   make(chan struct{}),
		synced: make(chan struct{}),
	}
	go r.loop()
	return r, nil
}

// initialNetNS fails if this process is not in the initial network
// namespace: the kernel multicasts audit records there only, and a
// listener elsewhere would wait for nothing. kthreadd (PID 2 in the
// initial PID namespace) is a kernel thread and lives there; outside the
// initial PID namespace AUDIT_GET fails anyway.
func initialNetNS() error {
	comm, err := os.ReadFile("/proc/2/comm")
	if err != nil || string(comm) != "kthreadd\n" {
		return nil // cannot tell from here
	}
	var self, kernel unix.Stat_t
	if unix.Stat("/proc/self/ns/net", &self) != nil || unix.Stat("/proc/2/ns/net", &kernel) != nil {
		return nil
	}
	if self.Dev != kernel.Dev || self.Ino != kernel.Ino {
		return fmt.Errorf("%w: not in the initial network namespace, where the kernel multicasts audit records", ErrNotPermitted)
	}
	return nil
}

// Reader delivers Landlock's audit records as Events. Create it with
// Open; it reads until Close.
type Reader struct {
	file   *os.File
	conn   syscall.RawConn
	events chan Event
	asm    *assembler
	done   chan struct{} // closed when loop returns
	quit   chan struct{} // closed by Close: stop waiting for the consumer

	overflows atomic.Uint64 // ENOBUFS: the kernel dropped records for us
	dropped   atomic.Uint64 // Events not delivered: nobody took them before Close
	delivered atomic.Uint64 // Events sent on events

	// Sync requests: syncWant counts them, syncServed how many the loop
	// has served; synced is closed (and replaced) at each serving.
	syncMu     sync.Mutex
	syncWant   uint64
	syncServed uint64
	synced     chan struct{}

	// idle is set while loop waits for a record holding nothing: no
	// record read and not yet handled, no group waiting for its end (see
	// quiet).
	idle atomic.Bool

	loopErr error       // why loop stopped before Close, read after done
	closing atomic.Bool // set before the file is closed

	closeOnce sync.Once
	closeErr  error
}

// Events is where the Reader delivers, in the kernel's order. It is
// closed by Close. While it is full the Reader stops reading and records
// wait in the socket's buffer (4 MiB, some thousands of records); past
// that the kernel drops them for this reader (Lost's overflows).
func (r *Reader) Events() <-chan Event { return r.events }

// Lost counts what did not reach Events: overflows is how many times the
// kernel reported dropping records because the socket's buffer was full
// (each may be many records), dropped how many Events were still pending
// or undelivered at Close. The kernel's own losses (its backlog limit) are
// in Status.Lost.
func (r *Reader) Lost() (overflows, dropped uint64) {
	return r.overflows.Load(), r.dropped.Load()
}

// Close stops reading, delivers what is still pending, closes Events
// and, if this was the process's last Reader, puts the host's audit
// enabled flag back as Open found it. It returns an error if that could
// not be done (or was not done because someone else changed the setting
// meanwhile; see ErrNotRestored), and the error that stopped the Reader
// early, if one did (Events then stayed open, silent, until Close).
func (r *Reader) Close() error {
	r.closeOnce.Do(func() {
		r.closing.Store(true)
		close(r.quit)
		err := r.file.Close()
		<-r.done
		for _, e := range r.asm.flush() {
			select {
			case r.events <- e:
				r.delivered.Add(1)
			default:
				r.dropped.Add(1)
			}
		}
		close(r.events)
		r.closeErr = errors.Join(err, r.loopErr, hostAudit.release())
	})
	return r.closeErr
}

func (r *Reader) loop() {
	defer close(r.done)
	buf := make([]byte, maxRecord)
	for !r.closing.Load() {
		r.idle.Store(false)
		if r.syncPending() {
			if !r.drain(buf) {
				return
			}
			continue
		}
		deadline, held := r.asm.deadline() // zero: no deadline
		if err := r.file.SetReadDeadline(deadline); err != nil {
			r.stopped(err)
			return
		}
		// A Sync that came after the check above may have had its
		// wake-up overwritten by that deadline: look again.
		if r.syncPending() {
			continue
		}
		var typ uint16
		var text []byte
		var ok bool
		var rerr error
		r.idle.Store(!held)
		err := r.conn.Read(func(fd uintptr) bool {
			r.idle.Store(false) // before the record leaves the socket
			typ, text, ok, rerr = receive(int(fd), buf)
			if rerr == unix.EAGAIN {
				r.idle.Store(!held) // nothing taken
				return false
			}
			return true
		})
		now := time.Now()
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			r.deliverAll(r.asm.expire(now))
			continue
		case err != nil:
			r.stopped(err)
			return
		}
		if !r.handle(typ, text, ok, rerr, now) {
			return
		}
	}
}

// handle takes the outcome of one receive; false means the loop must
// stop.
func (r *Reader) handle(typ uint16, text []byte, ok bool, rerr error, now time.Time) bool {
	switch {
	case rerr == unix.ENOBUFS:
		r.overflows.Add(1)
		return true
	case rerr == unix.EINTR:
		return true
	case rerr != nil:
		r.stopped(os.NewSyscallError("recvmsg(NETLINK_AUDIT)", rerr))
		return false
	case !ok:
		return true
	}
	r.deliverAll(r.asm.expire(now))
	if !interesting(typ) {
		return true
	}
	rec, err := parseRecord(typ, string(text))
	if err != nil {
		return true
	}
	r.deliverAll(r.asm.add(rec, now))
	return true
}

// Sync returns once every record that had reached this Reader's socket
// when it was called has been read, and the Events those records
// completed have been sent on Events. It returns how many Events the
// Reader had sent by then, counted from Open (as Delivered): a consumer
// that has taken that many has seen them all.
//
// Sync does not wait for the kernel: a record reaches the socket when
// kauditd, the kernel thread that sends audit records out, has taken it
// from the kernel's queue, normally within microseconds of the audited
// system call, but later when the host is busy. Asking the kernel how
// many records it still holds (AUDIT_GET) would cost about half a
// millisecond. So a caller that wants the denials of a process that has
// exited (a tool call that ended) gets those kauditd has sent, which on
// an idle host is all of them.
func (r *Reader) Sync(ctx context.Context) (uint64, error) {
	if n, ok := r.Quiet(); ok {
		return n, nil
	}
	r.syncMu.Lock()
	r.syncWant++
	want := r.syncWant
	r.syncMu.Unlock()
	// Wake the loop from its wait for a record.
	if err := r.file.SetReadDeadline(time.Unix(1, 0)); err != nil {
		return 0, fmt.Errorf("syncing the audit reader: %w", err)
	}
	for {
		r.syncMu.Lock()
		served, synced := r.syncServed, r.synced
		r.syncMu.Unlock()
		if served >= want {
			return r.delivered.Load(), nil
		}
		select {
		case <-synced:
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-r.done:
			return 0, errors.New("syncing the audit reader: it is closed")
		}
	}
}

// Quiet is Sync's answer when Sync would not wait, without a context or a
// wake-up of the loop: the Events delivered so far, and true, when the
// socket is empty and the loop waits holding nothing; false otherwise
// (then call Sync). The order of the two looks matters: a record that was
// in the socket when Quiet was called and is gone at the first look was
// taken by the loop, which cleared idle before taking it and sets it
// again only once the record is handled, its Event delivered, and no
// group is left waiting. (A tool call's end is a Sync; this keeps two
// goroutine wake-ups off every call that Landlock refused nothing.)
func (r *Reader) Quiet() (uint64, bool) {
	empty := false
	err := r.conn.Control(func(fd uintptr) {
		var b [unix.NLMSG_HDRLEN]byte
		_, _, perr := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		empty = perr == unix.EAGAIN
	})
	if err != nil || !empty || !r.idle.Load() {
		return 0, false
	}
	return r.delivered.Load(), true
}

// Delivered counts the Events sent on Events since Open.
func (r *Reader) Delivered() uint64 { return r.delivered.Load() }

func (r *Reader) syncPending() bool {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	return r.syncWant > r.syncServed
}

// drain serves the Sync requests made so far: it reads what the socket
// holds without waiting (Control, unlike Read, ignores the deadline Sync
// set to wake the loop), delivers what that completes, and marks the
// requests served. False means the loop must stop.
func (r *Reader) drain(buf []byte) bool {
	r.syncMu.Lock()
	want := r.syncWant
	r.syncMu.Unlock()
	for {
		var typ uint16
		var text []byte
		var ok bool
		var rerr error
		err := r.conn.Control(func(fd uintptr) {
			typ, text, ok, rerr = receive(int(fd), buf)
		})
		if err != nil {
			r.stopped(err)
			return false
		}
		if rerr == unix.EAGAIN {
			break
		}
		if !r.handle(typ, text, ok, rerr, time.Now()) {
			return false
		}
	}
	r.deliverAll(r.asm.expire(time.Now()))
	r.syncMu.Lock()
	r.syncServed = want
	close(r.synced)
	r.synced = make(chan struct{})
	r.syncMu.Unlock()
	return true
}

// stopped records why the loop ends, unless Close ended it.
func (r *Reader) stopped(err error) {
	if !r.closing.Load() {
		r.loopErr = fmt.Errorf("reading the audit log: %w", err)
	}
}

// interesting is whether a record type can belong to a Landlock event;
// the others are not parsed.
func interesting(typ uint16) bool {
	switch typ {
	case typeLandlockAccess, typeLandlockDomain, typeSyscall, typeProctitle, typeEOE:
		return true
	}
	return false
}

func (r *Reader) deliverAll(es []Event) {
	for _, e := range es {
		r.deliver(e)
	}
}

// deliver waits for the consumer, or Close.
func (r *Reader) deliver(e Event) {
	select {
	case r.events <- e:
		r.delivered.Add(1)
	case <-r.quit:
		r.dropped.Add(1)
	}
}

// hostAudit is this process's share of the host's audit enabled flag:
// the first Reader enables auditing if it was off, the last one to close
// turns it off again. Processes that read at the same time (a daemon,
// `cordon run`, test binaries running in parallel) share the duty
// through two files under /run (see sharedState): the last of them to
// close restores the setting the first found, so that no process turns
// auditing off under another. Where the files cannot be used, each
// process restores what it found itself.
var hostAudit auditUsers

type auditUsers struct {
	mu    sync.Mutex
	users int
	share *sharedState // nil: not shared with other processes
	// restore is set when this process alone must put back the enabled
	// value prev, if the audit daemon is still prevDaemon.
	restore    bool
	prev       uint32
	prevDaemon uint32
}

func (u *auditUsers) acquire() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.users > 0 {
		u.users++
		return nil
	}
	fd, err := openAudit(0)
	if err != nil {
		return classify(err)
	}
	defer unix.Close(fd)
	// A record left by a process that had auditing on for cordon and
	// died without closing says what to put back; it is kept.
	share, _ := lockShared()
	failed := true
	if share != nil {
		defer func() {
			if failed {
				share.leave()
				share.close()
			} else {
				share.unlock()
			}
		}()
	}
	s, err := getStatus(fd, nextSeq())
	if err != nil {
		return classify(err)
	}
	if s.Enabled == 0 {
		if err := setEnabled(fd, 1, nextSeq()); err != nil {
			return fmt.Errorf("enabling audit: %w", classify(err))
		}
		if _, saved := share.load(); share != nil && !saved {
			share.save(savedState{prev: 0, daemon: s.PID})
		}
		u.restore, u.prev, u.prevDaemon = share == nil, 0, s.PID
	}
	failed = false
	u.share = share
	u.users = 1
	return nil
}

func (u *auditUsers) release() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.users == 0 {
		return nil
	}
	u.users--
	if u.users > 0 {
		return nil
	}
	prev, daemon := u.prev, u.prevDaemon
	if u.share != nil {
		share := u.share
		u.share = nil
		share.lock()
		defer share.close()
		saved, ok := share.load()
		share.clear()
		if last := share.leave(); !last || !ok {
			if !last && ok {
				share.save(saved) // another process reads: it restores
			}
			return nil
		}
		prev, daemon = saved.prev, saved.daemon
	} else if !u.restore {
		return nil
	}
	u.restore = false
	fd, err := openAudit(0)
	if err != nil {
		return fmt.Errorf("restoring audit enabled=%d: %w", prev, err)
	}
	defer unix.Close(fd)
	s, err := getStatus(fd, nextSeq())
	if err != nil {
		return fmt.Errorf("restoring audit enabled=%d: %w", prev, err)
	}
	switch {
	case s.Enabled != 1:
		return fmt.Errorf("%w: enabled is %d, not the 1 cordon set", ErrNotRestored, s.Enabled)
	case s.PID != daemon:
		return fmt.Errorf("%w: an audit daemon (pid %d) registered meanwhile", ErrNotRestored, s.PID)
	}
	if err := setEnabled(fd, prev, nextSeq()); err != nil {
		return fmt.Errorf("restoring audit enabled=%d: %w", prev, err)
	}
	return nil
}

var seq atomic.Uint32

func nextSeq() uint32 { return seq.Add(1) }

// classify marks the errors that mean "not allowed here".
func classify(err error) error {
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES), errors.Is(err, unix.ECONNREFUSED):
		// ECONNREFUSED: the kernel's answer to audit control from a user
		// namespace other than the initial one.
		return fmt.Errorf("%w: %w", ErrNotPermitted, err)
	case errors.Is(err, unix.EPROTONOSUPPORT), errors.Is(err, unix.EAFNOSUPPORT):
		return fmt.Errorf("%w: %w", ErrNotSupported, err)
	}
	return err
}

func statusOf(s auditStatus) Status {
	return Status{
		Enabled:               s.Enabled,
		Failure:               s.Failure,
		DaemonPID:             s.PID,
		RateLimit:             s.RateLimit,
		BacklogLimit:          s.BacklogLimit,
		Lost:                  s.Lost,
		Backlog:               s.Backlog,
		BacklogWaitTime:       s.BacklogWaitTime,
		BacklogWaitTimeActual: s.BacklogWaitTimeActual,
	}
}
