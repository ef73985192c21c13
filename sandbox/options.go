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
}

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
