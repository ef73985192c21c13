package sandbox

import (
	"context"
	"fmt"
	"slices"
	"strconv"
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
}

// parseGrants checks capability names and folds them into a grantSet.
func parseGrants(caps []string) (grantSet, error) {
	var g grantSet
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
		case "fs.read", "fs.write":
			// A host path outside the view needs a new mount in the live
			// session's mount namespace, which the supervisor, holding
			// no CAP_SYS_ADMIN after setup, cannot make.
			return g, &Error{Code: CodeUnsupported, Message: name + ": filesystem grants are not enforced yet (they need a new mount in the live session); open a session whose policy lists the path instead"}
		default:
			return g, &Error{Code: CodeInvalid, Message: "unknown capability " + name}
		}
	}
	return g, nil
}

// ApplyGrants sets the capabilities granted to the session beyond its
// policy: the complete set in force, each a capability name
// ("net.connect:github.com", "proc.ptrace", "limit.memory:8GiB",
// "limit.pids:4096", "limit.timeout:20m"). Calls that start after it
// returns run under the set; calls in progress keep what they started
// with. A grant never lowers what the policy gives. Network grants change
// the egress allowlist; proc.ptrace (a seccomp filter cannot be loosened)
// and, without a cgroup, memory and pids limits (rlimits cannot be raised
// by the confined) start a new executor, while the old one finishes its
// calls. It returns an *Error with CodeInvalid for a malformed name and
// CodeUnsupported for a capability this session cannot apply (fs.read,
// fs.write), and then changes nothing.
func (s *Session) ApplyGrants(caps []string) error {
	g, err := parseGrants(caps)
	if err != nil {
		return err
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
	cur := *s.limits.Load()
	if s.cg != nil && (lim.MemoryBytes != cur.MemoryBytes || lim.Pids != cur.Pids) {
		if err := s.cg.SetLimits(lim.MemoryBytes, lim.Pids); err != nil {
			return &Error{Code: CodeFailed, Message: "changing the session's cgroup limits: " + err.Error()}
		}
	}
	restart := g.ptrace != s.execPlan.AllowPtrace ||
		s.cg == nil && (lim.MemoryBytes != s.execPlan.Limits.MemoryBytes || lim.Pids != s.execPlan.Limits.Pids)
	if restart {
		p := *s.basePlan
		p.AllowPtrace = g.ptrace
		p.Limits = lim
		if err := s.reconfigure(&p); err != nil {
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

// Grants returns the capability set last applied.
func (s *Session) Grants() []string {
	s.grantMu.Lock()
	defer s.grantMu.Unlock()
	return slices.Clone(s.grants)
}

// reconfigure has the supervisor serve new calls from a new executor
// under p, and waits until it does.
func (s *Session) reconfigure(p *plan.Plan) error {
	s.mu.Lock()
	s.nextCall++
	id := "g" + strconv.FormatUint(s.nextCall, 10)
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := s.call(ctx, &proto.Request{Call: id, Op: proto.OpReconfigure, Plan: p}, nil, nil)
	if err != nil {
		return err
	}
	if res.Error != nil {
		return &Error{Code: CodeFailed, Message: res.Error.Message}
	}
	return nil
}
