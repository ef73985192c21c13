package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/cordon-sandbox/cordon/audit"
	"github.com/cordon-sandbox/cordon/events"
	"github.com/cordon-sandbox/cordon/grants"
	"github.com/cordon-sandbox/cordon/sandbox"
)

// grantBroker is the daemon's grant broker, started with the daemon's
// audit log or at the first grant request.
type grantBroker struct {
	mu     sync.Mutex
	broker *grants.Broker
	log    *audit.Log
	owned  bool // the daemon opened log and closes it
	detach func()
}

// start makes the broker on log; its events go to bus. g.mu is held or
// g is not shared yet.
func (g *grantBroker) start(log *audit.Log, owned bool, bus *events.Bus) {
	g.broker = grants.NewBroker(log, nil)
	g.log, g.owned = log, owned
	// Emit runs with the broker locked: Publish neither blocks nor calls
	// the broker.
	g.detach = g.broker.Subscribe(events.SinkFunc(bus.Publish))
}

// get returns the broker, or nil when none has started.
func (g *grantBroker) get() *grants.Broker {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.broker
}

// open returns the broker, opening the audit log at path first if need
// be. A log that cannot be opened is tried again at the next request.
func (g *grantBroker) open(path string, bus *events.Bus) (*grants.Broker, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.broker != nil {
		return g.broker, nil
	}
	if path == "" {
		return nil, errors.New("this daemon has no audit log, and capability grants need one (cordon serve --audit FILE)")
	}
	log, err := audit.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w (a daemon or MCP server that needs a log of its own takes it with --audit FILE)", err)
	}
	g.start(log, true, bus)
	return g.broker, nil
}

// close detaches the broker from the bus and closes a log the daemon
// opened.
func (g *grantBroker) close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.detach != nil {
		g.detach()
		g.detach = nil
	}
	if g.owned {
		g.owned = false
		return g.log.Close()
	}
	return nil
}

// maxCalls is the weight of a call that runs alone in its session.
const maxCalls = 1 << 20

// enforcement is how a session's grants reach the session: before each
// call the daemon makes the capability set the session applies equal to
// the broker's active grants, and after a command it records the grants'
// use.
//
// A call-scoped grant belongs to one call. The call that takes it runs
// alone in its session (it holds every unit of calls), the grant is in
// the session's set only while it runs, and EndCall ends it before any
// other call starts. Other calls run side by side and never see a
// call-scoped grant.
type enforcement struct {
	calls *semaphore.Weighted

	mu      sync.Mutex
	applied []string        // the capability set last applied, sorted
	held    map[string]bool // call-scoped grants of the call running alone
	// broken holds grants that are no longer applied in this session:
	// their use could not be recorded.
	broken map[string]bool
	timers map[string]*time.Timer // TTL grants' expiry
	closed bool
}

func newEnforcement() enforcement {
	return enforcement{calls: semaphore.NewWeighted(maxCalls), held: map[string]bool{}, broken: map[string]bool{}, timers: map[string]*time.Timer{}}
}

// close stops the session's expiry timers.
func (en *enforcement) close() {
	en.mu.Lock()
	defer en.mu.Unlock()
	en.closed = true
	for id, t := range en.timers {
		t.Stop()
		delete(en.timers, id)
	}
}

// callGrants is what one call runs under, from beginCall to endCall.
type callGrants struct {
	weight int64
	grants []*grants.Grant
}

// beginCall brings the session's capability set up to date for a call
// and returns the grants it runs under. A command takes the session's
// call-scoped grants, if there are any, and then runs alone; a file call
// never takes them.
func (s *Server) beginCall(ctx context.Context, e *entry, command bool) (*callGrants, error) {
	b := s.grants.get()
	cg := &callGrants{weight: 1}
	if b != nil && command && slices.ContainsFunc(b.Active(e.s.ID()), isCallScoped) {
		cg.weight = maxCalls
	}
	if err := e.enforce.calls.Acquire(ctx, cg.weight); err != nil {
		return nil, err
	}
	if b == nil {
		return cg, nil
	}
	en := &e.enforce
	en.mu.Lock()
	defer en.mu.Unlock()
	active := b.Active(e.s.ID())
	if cg.weight == maxCalls {
		for _, g := range active {
			if isCallScoped(g) {
				en.held[g.ID] = true
			}
		}
	}
	set, err := s.applyLocked(e, b, active)
	if err != nil {
		clear(en.held)
		e.enforce.calls.Release(cg.weight)
		return nil, err
	}
	cg.grants = set
	return cg, nil
}

func isCallScoped(g *grants.Grant) bool { return g.Scope == grants.ScopeCall }

// endCall records the use of the grants a command ran under (call is the
// command's id; "" for a call that did not run) and ends its call-scoped
// grants.
func (s *Server) endCall(e *entry, cg *callGrants, call string) {
	defer e.enforce.calls.Release(cg.weight)
	b := s.grants.get()
	if b == nil {
		return
	}
	en := &e.enforce
	if call != "" {
		for _, g := range cg.grants {
			err := b.Use(g.ID, call)
			if err != nil && !errors.Is(err, grants.ErrState) && !errors.Is(err, grants.ErrNotFound) {
				// The audit log failed: the grant is not applied again.
				en.mu.Lock()
				en.broken[g.ID] = true
				en.mu.Unlock()
			}
		}
		if cg.weight == maxCalls {
			b.EndCall(e.s.ID(), call)
		}
	}
	if cg.weight == maxCalls {
		en.mu.Lock()
		clear(en.held)
		// Drop the call-scoped grants now; if that fails, the next call
		// tries again before it runs.
		_, _ = s.applyLocked(e, b, b.Active(e.s.ID()))
		en.mu.Unlock()
	}
}

// resync brings the session's set up to date outside a call: after a
// revocation, or when a TTL grant expires.
func (s *Server) resync(e *entry) {
	b := s.grants.get()
	if b == nil {
		return
	}
	en := &e.enforce
	en.mu.Lock()
	defer en.mu.Unlock()
	if en.closed {
		return
	}
	_, _ = s.applyLocked(e, b, b.Active(e.s.ID()))
}

// applyLocked makes the session apply the capabilities of the active
// grants that are its to use now, and returns those grants. A grant the
// session cannot apply (the sandbox answers CodeUnsupported, CodeInvalid,
// CodeDenied or CodeNotFound: a rootless session, a host path that is
// not there or that the session's owner cannot read) is revoked, with the sandbox's reason as the note, rather
// than fail every later call. e.enforce.mu is held.
func (s *Server) applyLocked(e *entry, b *grants.Broker, active []*grants.Grant) ([]*grants.Grant, error) {
	en := &e.enforce
	var want []*grants.Grant
	for _, g := range active {
		if en.broken[g.ID] || isCallScoped(g) && !en.held[g.ID] {
			continue
		}
		want = append(want, g)
	}
	caps := capabilities(want)
	if slices.Equal(caps, en.applied) {
		return want, nil
	}
	err := e.s.ApplyGrants(caps)
	if err == nil {
		en.applied = caps
		return want, nil
	}
	if !unapplicable(err) {
		return nil, err
	}
	// Find the grants the session cannot apply: keep what it applies
	// now, then add the new ones one at a time.
	var kept, added []*grants.Grant
	for _, g := range want {
		if slices.Contains(en.applied, g.Capability) {
			kept = append(kept, g)
		} else {
			added = append(added, g)
		}
	}
	if base := capabilities(kept); !slices.Equal(base, en.applied) {
		if err := e.s.ApplyGrants(base); err != nil {
			return nil, err
		}
		en.applied = base
	}
	for _, g := range added {
		next := capabilities(append(slices.Clone(kept), g))
		err := e.s.ApplyGrants(next)
		switch {
		case err == nil:
			kept, en.applied = append(kept, g), next
		case unapplicable(err):
			en.broken[g.ID] = true
			_, _ = b.Revoke(g.ID, os.Geteuid(), "cordon cannot apply this capability in this session: "+err.Error())
		default:
			return nil, err
		}
	}
	return kept, nil
}

// capabilities returns the sorted, distinct capabilities of gs.
func capabilities(gs []*grants.Grant) []string {
	out := make([]string, 0, len(gs))
	for _, g := range gs {
		out = append(out, g.Capability)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func unapplicable(err error) bool {
	se, ok := errors.AsType[*sandbox.Error](err)
	return ok && (se.Code == sandbox.CodeUnsupported || se.Code == sandbox.CodeInvalid ||
		se.Code == sandbox.CodeDenied || se.Code == sandbox.CodeNotFound)
}

// scheduleExpiry has the session drop a granted TTL grant when its time
// is up, not only at the next call.
func (s *Server) scheduleExpiry(e *entry, g *grants.Grant) {
	if g.State != grants.StateGranted || g.Expires.IsZero() {
		return
	}
	en := &e.enforce
	en.mu.Lock()
	defer en.mu.Unlock()
	if en.closed || en.timers[g.ID] != nil {
		return
	}
	id := g.ID
	en.timers[id] = time.AfterFunc(time.Until(g.Expires)+time.Millisecond, func() {
		en.mu.Lock()
		delete(en.timers, id)
		en.mu.Unlock()
		s.resync(e)
	})
}

// runExec runs a command under the session's grants.
func (s *Server) runExec(ctx context.Context, e *entry, x sandbox.ExecRequest) (*sandbox.ExecResult, error) {
	cg, err := s.beginCall(ctx, e, true)
	if err != nil {
		return nil, err
	}
	res, err := e.s.Exec(ctx, x)
	call := ""
	if res != nil {
		call = res.Call
	}
	s.endCall(e, cg, call)
	return res, err
}

// fileCall runs a file call under the session's grants (never a
// call-scoped one).
func fileCall[T any](s *Server, ctx context.Context, e *entry, f func() (T, error)) (T, error) {
	cg, err := s.beginCall(ctx, e, false)
	if err != nil {
		var zero T
		return zero, err
	}
	defer s.endCall(e, cg, "")
	return f()
}

type readResult struct {
	data      []byte
	truncated bool
}

func (s *Server) readFile(ctx context.Context, e *entry, p string) ([]byte, bool, error) {
	r, err := fileCall(s, ctx, e, func() (readResult, error) {
		data, truncated, err := e.s.ReadFile(ctx, p)
		return readResult{data, truncated}, err
	})
	return r.data, r.truncated, err
}

func (s *Server) writeFile(ctx context.Context, e *entry, p string, data []byte) error {
	_, err := fileCall(s, ctx, e, func() (struct{}, error) { return struct{}{}, e.s.WriteFile(ctx, p, data) })
	return err
}

// grantError maps the broker's errors to API errors.
func grantError(err error) *APIError {
	switch {
	case errors.Is(err, grants.ErrInvalid):
		return apiError(http.StatusBadRequest, "invalid", err.Error())
	case errors.Is(err, grants.ErrNotFound):
		return apiError(http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, grants.ErrState):
		return apiError(http.StatusConflict, "conflict", err.Error())
	case errors.Is(err, grants.ErrTooMany):
		return apiError(http.StatusTooManyRequests, "too_many", err.Error())
	}
	if ae, ok := errors.AsType[*APIError](err); ok {
		return ae
	}
	return apiError(http.StatusInternalServerError, "failed", err.Error())
}

// request asks for a capability for the session e, owned by the caller.
func (s *Server) request(e *entry, r GrantRequest) (*Grant, error) {
	if r.TTLSeconds < 0 || r.TTLSeconds > int64(grants.MaxTTL/time.Second) {
		return nil, apiError(http.StatusBadRequest, "invalid", fmt.Sprintf("ttl_s %d: from 1 to %d seconds", r.TTLSeconds, int64(grants.MaxTTL/time.Second)))
	}
	b, err := s.grants.open(s.opts.AuditPath, s.bus)
	if err != nil {
		return nil, apiError(http.StatusInternalServerError, "failed", "capability grants: "+err.Error())
	}
	g, err := b.Request(e.pol, e.policyHash, grants.Request{
		Session: e.s.ID(), Capability: r.Capability, Reason: r.Reason, Scope: grants.Scope(r.Scope),
		TTL: time.Duration(r.TTLSeconds) * time.Second, UID: e.uid,
	})
	if err != nil {
		return nil, grantError(err)
	}
	s.scheduleExpiry(e, g)
	return grantOf(g), nil
}

// grantFor returns the grant id with its session, if the caller may see
// it: the session's owner and root may.
func (s *Server) grantFor(id string, p peer) (*grants.Grant, *entry, error) {
	notFound := apiError(http.StatusNotFound, "not_found", "no grant "+strconv.Quote(id))
	b := s.grants.get()
	if b == nil {
		return nil, nil, notFound
	}
	g, ok := b.Get(id)
	if !ok {
		return nil, nil, notFound
	}
	s.mu.Lock()
	e, ok := s.sessions[g.Session]
	s.mu.Unlock()
	if !ok || e.uid != p.uid && p.uid != 0 {
		return nil, nil, notFound
	}
	return g, e, nil
}

// wait waits until the grant id leaves pending or ctx ends.
func (s *Server) wait(ctx context.Context, id string, p peer) (*Grant, error) {
	if _, _, err := s.grantFor(id, p); err != nil {
		return nil, err
	}
	g, err := s.grants.get().Wait(ctx, id)
	if err != nil {
		return nil, grantError(err)
	}
	return grantOf(g), nil
}

// listFor returns the grants the caller may see (root: all), of one
// session and in one state when those are given.
func (s *Server) listFor(p peer, session, state string) []*Grant {
	out := []*Grant{}
	b := s.grants.get()
	if b == nil {
		return out
	}
	s.mu.Lock()
	owner := map[string]int{}
	for id, e := range s.sessions {
		owner[id] = e.uid
	}
	s.mu.Unlock()
	for _, g := range b.List(func(g *grants.Grant) bool {
		uid, ok := owner[g.Session]
		return ok && (uid == p.uid || p.uid == 0) &&
			(session == "" || g.Session == session) && (state == "" || string(g.State) == state)
	}) {
		out = append(out, grantOf(g))
	}
	return out
}

type verb string

const (
	verbApprove verb = "approve"
	verbDeny    verb = "deny"
	verbRevoke  verb = "revoke"
)

// decide approves, denies or revokes the grant id for the caller.
func (s *Server) decide(id string, p peer, v verb, note string) (*Grant, error) {
	_, e, err := s.grantFor(id, p)
	if err != nil {
		return nil, err
	}
	if !samePidNamespace(p.pid) {
		return nil, apiError(http.StatusForbidden, "denied",
			"grants are decided only from the daemon's own pid namespace: a session's processes cannot decide them")
	}
	b := s.grants.get()
	var g *grants.Grant
	switch v {
	case verbApprove:
		g, err = b.Approve(id, p.uid, note)
	case verbDeny:
		g, err = b.Deny(id, p.uid, note)
	case verbRevoke:
		g, err = b.Revoke(id, p.uid, note)
	}
	if v == verbRevoke {
		s.resync(e) // narrow now, not at the next call
	}
	if err != nil {
		return nil, grantError(err)
	}
	s.scheduleExpiry(e, g)
	return grantOf(g), nil
}

// samePidNamespace reports whether process pid runs in the daemon's pid
// namespace. Every session has a pid namespace of its own, so a process
// of a session never does, whatever its uid: this keeps an agent from
// approving its own requests even if it reached the socket.
func samePidNamespace(pid int) bool {
	if pid <= 0 {
		return false // a peer in a pid namespace the daemon cannot see
	}
	mine, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return false
	}
	theirs, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/pid")
	return err == nil && theirs == mine
}

// HTTP handlers.

func (s *Server) requestGrant(w http.ResponseWriter, r *http.Request, p peer) {
	e := s.lookup(w, r, p)
	if e == nil {
		return
	}
	var req GrantRequest
	if !s.decode(w, r, &req) {
		return
	}
	g, err := s.request(e, req)
	if err != nil {
		writeAPIError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, g)
}

var grantStates = []string{"", string(grants.StatePending), string(grants.StateGranted), string(grants.StateDenied),
	string(grants.StateExpired), string(grants.StateRevoked), string(grants.StateUsed)}

func (s *Server) listGrants(w http.ResponseWriter, r *http.Request, p peer) {
	q := r.URL.Query()
	state := q.Get("state")
	if !slices.Contains(grantStates, state) {
		writeError(w, http.StatusBadRequest, "invalid", "state "+strconv.Quote(state)+": want pending, granted, denied, expired, revoked or used", nil)
		return
	}
	writeJSON(w, http.StatusOK, s.listFor(p, q.Get("session"), state))
}

func (s *Server) getGrant(w http.ResponseWriter, r *http.Request, p peer) {
	id := r.PathValue("grant")
	var wait time.Duration
	if v := r.URL.Query().Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > MaxWait {
			writeError(w, http.StatusBadRequest, "invalid", "wait "+strconv.Quote(v)+": a duration such as 60s, at most "+MaxWait.String(), nil)
			return
		}
		wait = d
	}
	if wait == 0 {
		g, _, err := s.grantFor(id, p)
		if err != nil {
			writeAPIError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, grantOf(g))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	g, err := s.wait(ctx, id, p)
	if err != nil {
		writeAPIError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, g)
}

func (s *Server) decideGrant(v verb) func(http.ResponseWriter, *http.Request, peer) {
	return func(w http.ResponseWriter, r *http.Request, p peer) {
		var req DecisionRequest
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeError(w, http.StatusRequestEntityTooLarge, "too_large", "body over 64 KiB", nil)
			return
		} else if err != nil {
			writeError(w, http.StatusBadRequest, "invalid", "reading the body: "+err.Error(), nil)
			return
		}
		if len(body) > 0 && !decodeBytes(w, body, &req) {
			return
		}
		g, err := s.decide(r.PathValue("grant"), p, v, req.Note)
		if err != nil {
			writeAPIError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, g)
	}
}
