package sandbox

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cordon-sandbox/cordon/egress"
	"github.com/cordon-sandbox/cordon/internal/plan"
	"github.com/cordon-sandbox/cordon/internal/proto"
	"github.com/cordon-sandbox/cordon/policy"
)

// grantSet is what a set of granted capabilities changes in a session.
type grantSet struct {
	hosts   []string // net.connect targets
	ptrace  bool
	memory  int64 // bytes; 0: the policy's
	pids    int64
	timeout time.Duration
	fs      []fsGrant // sorted by path
	// diskFree and diskFreeInodes are granted floors (limit.disk_free,
	// limit.disk_free_inodes), the lowest of each; -1: none granted.
	diskFree, diskFreeInodes int64
}

// parseGrants checks capability names and folds them into a grantSet.
func parseGrants(caps []string) (grantSet, error) {
	g := grantSet{diskFree: -1, diskFreeInodes: -1}
	for _, name := range caps {
		c, err := policy.ParseCapability(name)
		if err != nil {
			return g, &Error{Code: CodeInvalid, Message: err.Error()}
		}
		switch c.Layer + "." + c.Verb {
		case "net.connect":
			if c.Target == "" {
				return g, &Error{Code: CodeInvalid, Message: "net.connect needs a host: net.connect:HOST"}
			}
			g.hosts = append(g.hosts, c.Target)
		case "proc.ptrace":
			g.ptrace = true
		case "limit.memory":
			b, err := policy.ParseByteSize(c.Target)
			if err != nil || b <= 0 {
				return g, &Error{Code: CodeInvalid, Message: fmt.Sprintf("%s: a size such as 8GiB", name)}
			}
			g.memory = max(g.memory, int64(b))
		case "limit.pids":
			n, err := strconv.ParseInt(c.Target, 10, 64)
			if err != nil || n <= 0 {
				return g, &Error{Code: CodeInvalid, Message: fmt.Sprintf("%s: a positive number of processes", name)}
			}
			g.pids = max(g.pids, n)
		case "limit.timeout":
			d, err := policy.ParseDuration(c.Target)
			if err != nil || d <= 0 {
				return g, &Error{Code: CodeInvalid, Message: fmt.Sprintf("%s: a duration such as 20m", name)}
			}
			g.timeout = max(g.timeout, time.Duration(d))
		case "limit.disk_free":
			b, err := policy.ParseByteSize(c.Target)
			if err != nil || b < 0 {
				return g, &Error{Code: CodeInvalid, Message: fmt.Sprintf("%s: a size such as 512MiB, or 0 for no floor", name)}
			}
			g.diskFree = lowestGrant(g.diskFree, int64(b))
		case "limit.disk_free_inodes":
			n, err := strconv.ParseInt(c.Target, 10, 64)
			if err != nil || n < 0 {
				return g, &Error{Code: CodeInvalid, Message: fmt.Sprintf("%s: a number of inodes, or 0 for no floor", name)}
			}
			g.diskFreeInodes = lowestGrant(g.diskFreeInodes, n)
		case "fs.read", "fs.write":
			p := filepath.Clean(c.Target)
			if c.Target == "" || !filepath.IsAbs(c.Target) || p == "/" {
				return g, &Error{Code: CodeInvalid, Message: name + ": an absolute host path other than /"}
			}
			g.fs = append(g.fs, fsGrant{path: p, write: c.Verb == "write"})
		default:
			return g, &Error{Code: CodeInvalid, Message: "unknown capability " + name}
		}
	}
	// One mount per path: a write grant includes reading.
	slices.SortFunc(g.fs, func(a, b fsGrant) int {
		return cmp.Or(strings.Compare(a.path, b.path), cmp.Compare(b2i(b.write), b2i(a.write)))
	})
	g.fs = slices.CompactFunc(g.fs, func(a, b fsGrant) bool { return a.path == b.path })
	return g, nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ApplyGrants sets the capabilities granted to the session beyond its
// policy: the complete set in force, each a capability name
// ("net.connect:github.com", "proc.ptrace", "limit.memory:8GiB",
// "limit.pids:4096", "limit.timeout:20m", "limit.disk_free:256MiB",
// "limit.disk_free_inodes:1000", "fs.read:/opt/data",
// "fs.write:/home/ann/.cache/go-build"). Calls that start after it
// returns run under the set; calls in progress keep what they started
// with. A grant never takes away what the policy gives (a granted
// disk floor only lowers the policy's), and a capability the
// session's policy decides "never" is refused whoever asks. Network
// grants change the egress allowlist; proc.ptrace (a seccomp filter
// cannot be loosened), filesystem grants (Landlock can only narrow; the
// path is mounted in the view, see fsgrant_linux.go) and, without a
// cgroup, memory and pids limits (rlimits cannot be raised by the
// confined) start a new executor, while the old one finishes its calls;
// so does a changed disk floor, which the supervisor checks fallocate
// against (the host's watch of the free space uses the new floor at
// once, for calls in progress too). A revoked filesystem grant's mount
// is detached. It returns an *Error
// with CodeInvalid for a malformed name, CodeDenied for a capability the
// policy never allows, and CodeUnsupported for one this session cannot
// apply (filesystem grants in a rootless session).
func (s *Session) ApplyGrants(caps []string) error {
	g, err := parseGrants(caps)
	if err != nil {
		return err
	}
	for _, c := range caps {
		if s.pol.Capabilities.Decide(c) == policy.DecisionNever {
			return &Error{Code: CodeDenied, Message: c + ": the session's policy never grants it"}
		}
	}
	s.grantMu.Lock()
	defer s.grantMu.Unlock()
	// Check the hosts before anything changes.
	if _, err := egress.ParseAllowlist(g.hosts, nil); err != nil {
		return &Error{Code: CodeInvalid, Message: err.Error()}
	}

	base := s.basePlan.Limits
	lim := base
	lim.MemoryBytes = raise(base.MemoryBytes, g.memory)
	lim.Pids = raise(base.Pids, g.pids)
	if g.timeout > 0 {
		lim.TimeoutMS = max(base.TimeoutMS, g.timeout.Milliseconds())
	}
	lim.DiskFreeBytes = lower(base.DiskFreeBytes, g.diskFree)
	lim.DiskFreeInodes = lower(base.DiskFreeInodes, g.diskFreeInodes)
	cur := *s.limits.Load()
	if s.cg != nil && (lim.MemoryBytes != cur.MemoryBytes || lim.Pids != cur.Pids) {
		if err := s.cg.SetLimits(lim.MemoryBytes, lim.Pids); err != nil {
			return &Error{Code: CodeFailed, Message: "changing the session's cgroup limits: " + err.Error()}
		}
	}
	fsChanged := !slices.Equal(g.fs, s.mounted)
	// The supervisor checks fallocate against the executor's plan, and
	// only a floor it has makes the filter hand fallocate over at all.
	restart := fsChanged || g.ptrace != s.execPlan.AllowPtrace ||
		s.cg == nil && (lim.MemoryBytes != s.execPlan.Limits.MemoryBytes || lim.Pids != s.execPlan.Limits.Pids) ||
		lim.DiskFreeBytes != s.execPlan.Limits.DiskFreeBytes
	if restart {
		p := *s.basePlan
		p.AllowPtrace = g.ptrace
		p.Limits = lim
		p.Binds = slices.Clone(s.basePlan.Binds)
		p.Unprotect = slices.Clone(s.basePlan.Unprotect)
		for _, f := range g.fs {
			p.Binds = append(p.Binds, grantBind(f))
			if f.write {
				// Mounted over a workspace.protect path, the grant
				// lifts it: say so to who names denials.
				p.Unprotect = append(p.Unprotect, f.path)
			}
		}
		err := func() error {
			if !fsChanged {
				return s.reconfigure(&p, false)
			}
			fd, err := s.mountGrants(g.fs, &p)
			if err != nil {
				return err
			}
			if err := s.sendRuleset(fd); err != nil {
				return &Error{Code: CodeFailed, Message: "passing the new ruleset: " + err.Error()}
			}
			return s.reconfigure(&p, true)
		}()
		if err != nil {
			if s.cg != nil {
				_ = s.cg.SetLimits(cur.MemoryBytes, cur.Pids)
			}
			return err
		}
		s.execPlan = &p
	}
	if err := s.setAllowlist(s.extraHosts, g.hosts); err != nil {
		return err
	}
	s.grantedHosts = g.hosts
	s.limits.Store(&lim)
	s.grants = slices.Clone(caps)
	// The floors are the new ones, and fs.write grants are places
	// they keep.
	s.watchDisks(diskPlaces(s.execPlan), lim)
	return nil
}

// raise returns the larger of a policy limit and a granted one, where 0
// is "no limit" for the policy and "nothing granted" for the grant.
func raise(policyLimit, granted int64) int64 {
	if policyLimit == 0 || granted == 0 {
		return policyLimit
	}
	return max(policyLimit, granted)
}

// lower returns the lower of a policy floor and a granted one, where a
// granted floor below 0 is "nothing granted".
func lower(policyFloor, granted int64) int64 {
	if granted < 0 {
		return policyFloor
	}
	return min(policyFloor, granted)
}

// lowestGrant folds a granted floor into the lowest so far (-1: none).
func lowestGrant(so, granted int64) int64 {
	if so < 0 {
		return granted
	}
	return min(so, granted)
}

// Grants returns the capability set last applied.
func (s *Session) Grants() []string {
	s.grantMu.Lock()
	defer s.grantMu.Unlock()
	return slices.Clone(s.grants)
}

// grantBind is the plan's bind of a filesystem grant, for the ruleset.
func grantBind(f fsGrant) plan.Bind {
	kind := plan.BindDir
	if fi, err := os.Stat(f.path); err == nil && !fi.IsDir() {
		kind = plan.BindFile
	}
	return plan.Bind{Source: f.path, Target: f.path, Kind: kind, Writable: f.write}
}

// reconfigure has the supervisor serve new calls from a new executor
// under p, and waits until it does. With newRuleset, the executor is
// restricted by the ruleset last passed with sendRuleset.
func (s *Session) reconfigure(p *plan.Plan, newRuleset bool) error {
	s.mu.Lock()
	s.nextCall++
	id := "g" + strconv.FormatUint(s.nextCall, 10)
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := s.call(ctx, &proto.Request{Call: id, Op: proto.OpReconfigure, Plan: p, Ruleset: newRuleset}, nil, nil)
	if err != nil {
		return err
	}
	if res.Error != nil {
		return &Error{Code: CodeFailed, Message: res.Error.Message}
	}
	if res.AuditSession != 0 && s.audit != nil {
		hostAudit.addSession(s, res.AuditSession)
	}
	return nil
}
