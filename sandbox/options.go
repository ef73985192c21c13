package sandbox

import (
	"context"
	"net/netip"

	"github.com/cordon-sandbox/cordon/events"
	"github.com/cordon-sandbox/cordon/policy"
)

// DefaultSessionUID is the host uid a root-started session runs as (its
// supervisor; the executor runs as the next uid). It lies far above the
// ranges distributions give to users and to subordinate-id ranges.
const DefaultSessionUID = 2_000_000_000

// Options configure a session. The zero value of every field is usable
// except Workspace.
type Options struct {
	// Policy is the session's policy; nil means policy.Default().
	Policy *policy.Policy
	// Workspace is the host directory the session works in.
	Workspace string
	// Bus receives the session's events; nil means a private bus
	// (subscribe through Session.Events).
	Bus *events.Bus
	// SessionUID is the host uid of a session started by root: the
	// supervisor runs as SessionUID, the executor as SessionUID+1.
	// Zero means DefaultSessionUID. Ignored when not root: a session
	// then runs as the calling user.
	SessionUID int
	// Caller is the user the session is opened for when that is not
	// this process's user (a daemon serving its clients). The workspace
	// must then belong to the caller, every host path the policy binds
	// must be one the caller can read, and "~/" in the policy is the
	// caller's home. Nil means this process's user.
	Caller *Caller
	// CgroupParent names the directory under each cgroup hierarchy that
	// holds the sessions' cgroups; empty means "cordon".
	CgroupParent string
	// Resolve, when set, replaces the host's resolver for the session's
	// egress proxy: it returns the addresses of a host name. Tests use it
	// to point names at servers they run on loopback (together with a
	// policy whose network.allow_private admits loopback).
	Resolve func(ctx context.Context, host string) ([]netip.Addr, error)
	// CountEgress, when set, is told the outcome of every request the
	// session's egress proxy decides: "allowed", "denied" or "error".
	CountEgress func(outcome string)
	// KernelAudit says whether Landlock's refusals of commands are read
	// from the kernel's audit log; the zero value reads them where it
	// can.
	KernelAudit KernelAudit
}

// KernelAudit selects the source of Landlock denial events.
type KernelAudit int

const (
	// KernelAuditAuto reads Landlock's kernel audit records for
	// root-started sessions on kernels that write them (Landlock ABI 7)
	// and where this process may read them (the initial user, PID and
	// network namespaces). The process then shares one reader among its
	// sessions and turns auditing on while it has one open, if it was
	// off (see docs/events.md, "Landlock denials"). Elsewhere, and if the
	// reader cannot be opened, the session says so in a warning and the
	// supervisor's write observer predicts Landlock's refusals of writes.
	KernelAuditAuto KernelAudit = iota
	// KernelAuditOff never reads the audit log and never changes the
	// host's audit setting: Landlock refusals of writes are predicted by
	// the write observer, as in a rootless session, and the other
	// Landlock refusals of commands (reads, ioctls, signals) are not
	// events.
	KernelAuditOff
)

// Caller identifies the user a session is opened for.
type Caller struct {
	UID, GID int
	Home     string
}

// idMap is how session ids map to host ids.
type idMap struct {
	rootful bool
	hostUID int // supervisor (inside 0) on the host
	hostGID int
	execUID int // executor inside the session
}

// executorID is the executor's uid and gid inside a rootful session.
const executorID = 1000
