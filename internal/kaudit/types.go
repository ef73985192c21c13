package kaudit

import (
	"errors"
	"time"
)

// Options tune a Reader. The zero value is what a daemon wants.
type Options struct {
	// Buffer is the capacity of Reader.Events; 0 means 256.
	Buffer int
	// Window is how long an event's records are held waiting for the
	// record that closes the event (AUDIT_EOE), which an event outside
	// a system call never gets; 0 means 500ms. It is the longest delay
	// a Denial of such an event sees.
	Window time.Duration
	// MaxPending bounds the events held open at once; 0 means 1024.
	MaxPending int
}

func (o Options) withDefaults() Options {
	if o.Buffer <= 0 {
		o.Buffer = 256
	}
	if o.Window <= 0 {
		o.Window = 500 * time.Millisecond
	}
	if o.MaxPending <= 0 {
		o.MaxPending = 1024
	}
	return o
}

// Status is the host's audit settings and counters (struct audit_status).
type Status struct {
	// Enabled is 0 (off), 1 (on) or 2 (on and locked until reboot).
	Enabled uint32
	// Failure is what the kernel does when it loses a record: 0 silent,
	// 1 printk, 2 panic.
	Failure uint32
	// DaemonPID is the registered audit daemon (auditd), 0 if none.
	DaemonPID uint32
	// RateLimit is records per second, 0 for no limit.
	RateLimit uint32
	// BacklogLimit is how many records may wait for kauditd before new
	// ones are lost; Backlog how many wait now.
	BacklogLimit uint32
	Backlog      uint32
	// Lost counts records the kernel lost since boot (rate limit,
	// backlog limit, no memory).
	Lost uint32
	// BacklogWaitTime is how long, in jiffies, a task that may sleep
	// waits for room in the backlog. Landlock's records never wait, but
	// the SYSCALL record written at the denied call's exit does: a
	// process refused faster than kauditd drains the backlog is slowed.
	// BacklogWaitTimeActual is the time tasks spent waiting so far.
	BacklogWaitTime       uint32
	BacklogWaitTimeActual uint32
}

var (
	// ErrNotSupported is returned where there is no audit netlink: not
	// Linux, or a kernel built without CONFIG_AUDIT.
	ErrNotSupported = errors.New("kernel audit is not supported here")
	// ErrNotPermitted is matched by errors of Open and ReadStatus in a
	// process without CAP_AUDIT_READ and CAP_AUDIT_CONTROL in the
	// initial user namespace, or outside the initial PID namespace: a
	// rootless process, or one inside a container.
	ErrNotPermitted = errors.New("reading the kernel audit log is not permitted here")
	// ErrNotRestored is matched by a Close error when the audit enabled
	// flag was left as it is because someone else changed it, or an
	// audit daemon registered, while this process had it on.
	ErrNotRestored = errors.New("audit setting not restored")
)
