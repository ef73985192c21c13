//go:build linux

// TEMPORARY (branch wiring): a stand-in for Session.ApplyGrants and
// Session.Grants until the real ones land from main, for net.connect
// only. Delete this file before merging; main's sandbox/grants_linux.go
// replaces it.

package sandbox

import (
	"slices"
	"strings"
	"sync"

	"github.com/cordon-sandbox/cordon/egress"
	"github.com/cordon-sandbox/cordon/policy"
)

type tmpGrantState struct {
	mu   sync.Mutex
	base *egress.Allowlist // the allowlist before the first ApplyGrants
	caps []string
}

var tmpGrants sync.Map // *Session -> *tmpGrantState

// ApplyGrants sets the capabilities granted to the session beyond its
// policy (stand-in: net.connect only).
func (s *Session) ApplyGrants(caps []string) error {
	v, _ := tmpGrants.LoadOrStore(s, &tmpGrantState{})
	st := v.(*tmpGrantState)
	st.mu.Lock()
	defer st.mu.Unlock()
	var hosts []string
	for _, name := range caps {
		c, err := policy.ParseCapability(name)
		if err != nil {
			return &Error{Code: CodeInvalid, Message: err.Error()}
		}
		if c.Layer+"."+c.Verb != "net.connect" || c.Target == "" {
			return &Error{Code: CodeUnsupported, Message: name + ": not applied by this build (stand-in ApplyGrants)"}
		}
		hosts = append(hosts, strings.ToLower(c.Target))
	}
	if st.base == nil {
		st.base = s.allow.Load()
	}
	next, err := st.base.With(hosts...)
	if err != nil {
		return &Error{Code: CodeInvalid, Message: err.Error()}
	}
	s.allowMu.Lock()
	s.allow.Store(next)
	s.allowMu.Unlock()
	st.caps = slices.Clone(caps)
	return nil
}

// Grants returns the set last applied.
func (s *Session) Grants() []string {
	v, ok := tmpGrants.Load(s)
	if !ok {
		return nil
	}
	st := v.(*tmpGrantState)
	st.mu.Lock()
	defer st.mu.Unlock()
	return slices.Clone(st.caps)
}
