// Package grants is cordon's capability grant broker: a session asks for
// a capability ("net.connect:github.com", "proc.ptrace"), the session's
// policy decides at once (auto, never) or leaves the request to a person
// (ask), and the broker keeps every grant's state until it ends.
//
// Every step (request, decision, first use, expiry, revocation) is a
// record in the audit log, appended and fsynced before the step takes
// effect when it widens what a session may do: a grant is granted, and a
// use is allowed, only once its record is durable, and not at all if the
// record cannot be written. Steps that narrow (deny, revoke, expire) take
// effect even when their record cannot be written, and report the error.
//
// The broker decides nothing about who may approve: Approve, Deny and
// Revoke record the uid they are given. The daemon allows the session's
// owner and root, and maps the errors: ErrInvalid to 400, ErrNotFound to
// 404, ErrState to 409, ErrTooMany to 429.
//
// The broker is pure logic. Enforcing a grant is the job of the layers
// that ask Active which grants a session has (the egress proxy for net,
// a new executor for fs, the seccomp filter for proc.ptrace, cgroup and
// timeouts for limit).
package grants

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/cordon-sandbox/cordon/audit"
	"github.com/cordon-sandbox/cordon/events"
	"github.com/cordon-sandbox/cordon/policy"
)

// Scope says how long a grant lasts once granted.
type Scope string

const (
	// ScopeCall: one tool call, the first that uses the grant; it ends when
	// that call ends (EndCall).
	ScopeCall Scope = "call"
	// ScopeSession: until the session ends.
	ScopeSession Scope = "session"
	// ScopeTTL: for Request.TTL from the decision, and never past the end
	// of the session.
	ScopeTTL Scope = "ttl"
)

// State is where a grant is in its life.
type State string

const (
	StatePending State = "pending" // waiting for a person
	StateGranted State = "granted" // in force
	StateDenied  State = "denied"  // refused by policy or a person
	StateExpired State = "expired" // its TTL or session ended, or its session ended while pending
	StateRevoked State = "revoked" // withdrawn by a person
	StateUsed    State = "used"    // a call-scoped grant whose call ended
)

// Limits on what a request may carry.
const (
	MaxReason  = 1024           // bytes of Request.Reason and of a note
	MaxID      = 128            // bytes of a session or call id
	MaxTTL     = 24 * time.Hour // longest TTL of a ScopeTTL grant
	MaxPending = 16             // pending requests per session
)

// Errors callers branch on (wrapped; test with errors.Is).
var (
	ErrInvalid  = errors.New("invalid grant request")
	ErrNotFound = errors.New("no such grant")
	ErrState    = errors.New("grant is not in a state that allows this")
	ErrTooMany  = errors.New("too many pending grant requests")
)

// Request is a session's request for a capability.
type Request struct {
	Session    string
	Capability string // as in the catalog of docs/grants.md
	Reason     string // required: what the person deciding reads
	Scope      Scope
	TTL        time.Duration // for ScopeTTL only: whole seconds, at most MaxTTL
	Call       string        // the call that asked, if any (for the audit log)
	UID        int           // who asked: the session owner's uid
}

// Grant is the state of one request. The broker hands out copies.
type Grant struct {
	ID         string
	Session    string
	Capability string // as recorded: net hosts in lowercase
	Reason     string
	Scope      Scope
	TTL        time.Duration
	State      State
	// Decision is the last decision: "auto", "ask" or "never" by policy,
	// then "approved" or "denied" by a person.
	Decision string
	// DecidedBy is "policy:capabilities.auto[2]" ("policy" when no pattern
	// matched) or "uid:N" of the person.
	DecidedBy string
	Note      string // the deciding person's note, or the policy's
	Created   time.Time
	Decided   time.Time // zero while pending
	Expires   time.Time // ScopeTTL once granted; zero otherwise
	// Ended is when the grant became expired, revoked or used, and
	// EndedBy what ended it: "uid:N" (revoked), "ttl", "call", "session".
	Ended   time.Time
	EndedBy string
	UID     int    // who asked
	Call    string // the call that asked
	UsedBy  string // the first call that used the grant
}

// Parts splits the grant's capability into layer, verb and target for the
// enforcement layers: {net connect github.com:443}, {limit memory 8GiB}.
func (g *Grant) Parts() policy.Capability {
	c, _ := policy.ParseCapability(g.Capability) // checked by Request
	return c
}

// PolicyHash returns the hex SHA-256 of a policy's text, which Request
// records with every step so the audit log says which policy decided.
func PolicyHash(text []byte) string {
	sum := sha256.Sum256(text)
	return hex.EncodeToString(sum[:])
}

// entry is the broker's own record of a grant.
type entry struct {
	g          Grant
	policyHash string
	decided    chan struct{} // closed when the grant leaves pending
}

// Broker keeps the grants of all sessions. Its methods are safe for
// concurrent use; each step holds the broker while its audit record is
// written and fsynced.
type Broker struct {
	log *audit.Log
	now func() time.Time

	mu      sync.Mutex
	grants  map[string]*entry
	sinks   map[int]events.Sink
	nextKey int
}

// NewBroker returns a broker recording to log (required). now is the
// clock for decisions and expiry; nil means time.Now.
func NewBroker(log *audit.Log, now func() time.Time) *Broker {
	if now == nil {
		now = time.Now
	}
	return &Broker{log: log, now: now, grants: map[string]*entry{}, sinks: map[int]events.Sink{}}
}

// Subscribe attaches a sink that receives a grant.request event for each
// request, a grant.decision event for each decision (by policy or a
// person) and a grant.revoke event for each revocation, in order (see
// docs/events.md). Emit runs with the broker locked: it must not block
// and must not call the Broker. The returned function detaches the sink.
func (b *Broker) Subscribe(s events.Sink) (detach func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	key := b.nextKey
	b.nextKey++
	b.sinks[key] = s
	return func() {
		b.mu.Lock()
		delete(b.sinks, key)
		b.mu.Unlock()
	}
}

// Request records a request and decides it by pol, the session's policy
// (policyHash is PolicyHash of its text): a capability that policy says
// never to grant is denied, auto is granted, ask stays pending until
// Approve or Deny. The returned grant says which. The error wraps
// ErrInvalid for a bad request (an unknown or malformed capability, an
// empty reason, a TTL on a scope other than "ttl" or none on "ttl"),
// ErrTooMany past MaxPending pending requests in the session, or is the
// audit log's: then nothing is granted.
func (b *Broker) Request(pol *policy.Policy, policyHash string, r Request) (*Grant, error) {
	if pol == nil {
		return nil, fmt.Errorf("%w: no policy", ErrInvalid)
	}
	capability, err := checkRequest(policyHash, r)
	if err != nil {
		return nil, err
	}
	// DecideRule fails closed on an invalid pattern too, but then names no
	// rule: refuse here, so that a rule-less decision means "no match".
	c := pol.Capabilities
	for _, p := range slices.Concat(c.Never, c.Auto, c.Ask) {
		if err := policy.CheckPattern(p); err != nil {
			return nil, fmt.Errorf("deciding a grant request: the session's policy: %w", err)
		}
	}
	decision, rule := c.DecideRule(capability)

	b.mu.Lock()
	defer b.mu.Unlock()
	if decision == policy.DecisionAsk && b.pending(r.Session) >= MaxPending {
		return nil, fmt.Errorf("%w: session %s has %d waiting for a decision", ErrTooMany, r.Session, MaxPending)
	}
	id := newID()
	for b.grants[id] != nil {
		id = newID()
	}
	e := &entry{
		g: Grant{
			ID: id, Session: r.Session, Capability: capability, Reason: r.Reason,
			Scope: r.Scope, TTL: r.TTL, State: StatePending, Created: b.now(), UID: r.UID, Call: r.Call,
		},
		policyHash: policyHash,
		decided:    make(chan struct{}),
	}
	if err := b.record(e, audit.GrantRequest, "", fmt.Sprintf("uid:%d", r.UID), "", r.Call); err != nil {
		return nil, err
	}
	by, note := "policy", "no pattern matches"
	if rule != "" {
		by, note = "policy:"+rule, ""
	}
	if err := b.record(e, audit.GrantDecision, string(decision), by, note, r.Call); err != nil {
		return nil, err
	}
	e.g.Decision, e.g.DecidedBy, e.g.Note = string(decision), by, note
	b.grants[e.g.ID] = e
	b.emit(e, events.GrantRequest, rule, note)
	switch decision {
	case policy.DecisionAuto:
		b.decide(e, StateGranted)
		b.emit(e, events.GrantDecision, rule, note)
	case policy.DecisionNever:
		b.decide(e, StateDenied)
		b.emit(e, events.GrantDecision, rule, note)
	}
	return e.snapshot(), nil
}

// checkRequest validates r and returns its capability as recorded.
func checkRequest(policyHash string, r Request) (string, error) {
	bad := func(format string, args ...any) (string, error) {
		return "", fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	capability, err := CheckCapability(r.Capability)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if msg := checkID("session", r.Session, true); msg != "" {
		return bad("%s", msg)
	}
	if msg := checkID("call", r.Call, false); msg != "" {
		return bad("%s", msg)
	}
	if r.Reason == "" {
		return bad("a reason is required: say what the capability is for")
	}
	if msg := checkText("reason", r.Reason); msg != "" {
		return bad("%s", msg)
	}
	switch r.Scope {
	case ScopeTTL:
		if r.TTL <= 0 || r.TTL > MaxTTL || r.TTL%time.Second != 0 {
			return bad("scope \"ttl\" needs a TTL of whole seconds, from 1s to %s", MaxTTL)
		}
	case ScopeCall, ScopeSession:
		if r.TTL != 0 {
			return bad("a TTL goes only with scope \"ttl\", not %q", r.Scope)
		}
	default:
		return bad("scope %q: want \"call\", \"session\" or \"ttl\"", r.Scope)
	}
	if r.UID < 0 {
		return bad("uid %d", r.UID)
	}
	if len(policyHash) != 64 || strings.Trim(policyHash, "0123456789abcdef") != "" {
		return bad("policy hash %q is not a hex SHA-256", policyHash)
	}
	return capability, nil
}

// checkID checks a session or call id: [A-Za-z0-9._:-], at most MaxID
// bytes; "" means fine.
func checkID(what, id string, required bool) string {
	switch {
	case id == "" && required:
		return what + " id is empty"
	case len(id) > MaxID:
		return fmt.Sprintf("%s id longer than %d bytes", what, MaxID)
	}
	for _, c := range []byte(id) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._:-", c) >= 0) {
			return fmt.Sprintf("%s id %q: only letters, digits and . _ : -", what, id)
		}
	}
	return ""
}

// checkText checks text a person will read (a reason, a note): at most
// MaxReason bytes of printable UTF-8, so that it cannot hide behind
// terminal escapes, line breaks or bidirectional controls.
func checkText(what, s string) string {
	switch {
	case len(s) > MaxReason:
		return fmt.Sprintf("%s longer than %d bytes", what, MaxReason)
	case !utf8.ValidString(s):
		return what + " is not UTF-8"
	}
	for _, c := range s {
		if !unicode.IsPrint(c) {
			return fmt.Sprintf("%s has the unprintable character %U", what, c)
		}
	}
	return ""
}

func newID() string {
	var b [8]byte
	rand.Read(b[:]) // never fails; see crypto/rand.Read
	return hex.EncodeToString(b[:])
}

// Wait returns the grant once it has left pending (decided, or expired
// with its session), or when ctx ends, with its state at that time: a
// grant still pending means ctx ended first.
func (b *Broker) Wait(ctx context.Context, id string) (*Grant, error) {
	b.mu.Lock()
	e, ok := b.grants[id]
	b.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	select {
	case <-e.decided:
	case <-ctx.Done():
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.expire(e)
	return e.snapshot(), nil
}

// Approve grants a pending request for uid, the person deciding, with an
// optional note. The grant is granted only once the decision is in the
// audit log; if it cannot be written, the request stays pending.
func (b *Broker) Approve(id string, uid int, note string) (*Grant, error) {
	return b.personDecides(id, uid, note, StateGranted)
}

// Deny refuses a pending request for uid. The request is denied even if
// the record cannot be written; the error then says so.
func (b *Broker) Deny(id string, uid int, note string) (*Grant, error) {
	return b.personDecides(id, uid, note, StateDenied)
}

func (b *Broker) personDecides(id string, uid int, note string, to State) (*Grant, error) {
	verb, decision := "approve", "approved"
	if to == StateDenied {
		verb, decision = "deny", "denied"
	}
	if err := checkDecider(uid, note); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	e, err := b.find(id, StatePending, verb)
	if err != nil {
		return nil, err
	}
	by := fmt.Sprintf("uid:%d", uid)
	err = b.record(e, audit.GrantDecision, decision, by, note, "")
	if err != nil && to == StateGranted {
		return nil, err
	}
	e.g.Decision, e.g.DecidedBy, e.g.Note = decision, by, note
	b.decide(e, to)
	b.emit(e, events.GrantDecision, "", note)
	if err != nil {
		return nil, err
	}
	return e.snapshot(), nil
}

// Revoke withdraws a granted capability for uid. It takes effect even if
// the record cannot be written; the error then says so.
func (b *Broker) Revoke(id string, uid int, note string) (*Grant, error) {
	if err := checkDecider(uid, note); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	e, err := b.find(id, StateGranted, "revoke")
	if err != nil {
		return nil, err
	}
	by := fmt.Sprintf("uid:%d", uid)
	err = b.record(e, audit.GrantRevoke, "", by, note, "")
	e.g.State, e.g.Ended, e.g.EndedBy = StateRevoked, b.now(), by
	b.emit(e, events.GrantRevoke, "", note)
	if err != nil {
		return nil, err
	}
	return e.snapshot(), nil
}

func checkDecider(uid int, note string) error {
	if uid < 0 {
		return fmt.Errorf("%w: uid %d", ErrInvalid, uid)
	}
	if msg := checkText("note", note); msg != "" {
		return fmt.Errorf("%w: %s", ErrInvalid, msg)
	}
	return nil
}

// find returns the grant id, which must be in state want for verb.
func (b *Broker) find(id string, want State, verb string) (*entry, error) {
	e, ok := b.grants[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	b.expire(e)
	if e.g.State != want {
		return nil, fmt.Errorf("cannot %s grant %s: it is %s, not %s: %w", verb, id, e.g.State, want, ErrState)
	}
	return e, nil
}

// Get returns the grant id.
func (b *Broker) Get(id string) (*Grant, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.grants[id]
	if !ok {
		return nil, false
	}
	b.expire(e)
	return e.snapshot(), true
}

// List returns the grants for which filter (nil: all) returns true,
// oldest first. Grants of ended sessions are no longer listed. filter
// runs with the broker locked and must not call the Broker.
func (b *Broker) List(filter func(*Grant) bool) []*Grant {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []*Grant
	for _, e := range b.grants {
		b.expire(e)
		if g := e.snapshot(); filter == nil || filter(g) {
			out = append(out, g)
		}
	}
	slices.SortFunc(out, func(x, y *Grant) int {
		if c := x.Created.Compare(y.Created); c != 0 {
			return c
		}
		return strings.Compare(x.ID, y.ID)
	})
	return out
}

// Active returns the session's grants in force now, oldest first. A TTL
// grant whose time has passed expires here (or in any other method that
// looks at it), with its audit record written once.
func (b *Broker) Active(session string) []*Grant {
	return b.List(func(g *Grant) bool { return g.Session == session && g.State == StateGranted })
}

// Use records that call relies on grant id; the enforcement layer calls it
// before letting the call do what the grant allows, and must not let it if
// Use fails. The first use of a grant is an audit record; later uses are
// not recorded. A call-scoped grant belongs to the first call that uses
// it: another call's Use fails with ErrState, and EndCall of that call
// ends it.
func (b *Broker) Use(id, call string) error {
	if msg := checkID("call", call, true); msg != "" {
		return fmt.Errorf("%w: %s", ErrInvalid, msg)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	e, err := b.find(id, StateGranted, "use")
	if err != nil {
		return err
	}
	switch {
	case e.g.UsedBy == "":
	case e.g.Scope == ScopeCall && e.g.UsedBy != call:
		return fmt.Errorf("cannot use grant %s in call %s: scope \"call\" and used by call %s: %w", id, call, e.g.UsedBy, ErrState)
	default:
		return nil
	}
	if err := b.record(e, audit.GrantUse, "", "", "", call); err != nil {
		return err
	}
	e.g.UsedBy = call
	return nil
}

// EndCall ends the call-scoped grants that call of session used: they
// become StateUsed.
func (b *Broker) EndCall(session, call string) {
	if call == "" {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.grants {
		g := &e.g
		if g.Session == session && g.Scope == ScopeCall && g.State == StateGranted && g.UsedBy == call {
			b.end(e, StateUsed, "call", "call "+call+" ended", call)
		}
	}
}

// EndSession ends every pending or granted grant of the session (waking
// Wait), and forgets the session's grants: their history is in the audit
// log.
func (b *Broker) EndSession(session string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for id, e := range b.grants {
		if e.g.Session != session {
			continue
		}
		if e.g.State == StatePending || e.g.State == StateGranted {
			b.end(e, StateExpired, "session", "session ended", "")
		}
		delete(b.grants, id)
	}
}

// expire ends a TTL grant whose time has passed. b.mu is held.
func (b *Broker) expire(e *entry) {
	if e.g.State == StateGranted && e.g.Scope == ScopeTTL && !b.now().Before(e.g.Expires) {
		b.end(e, StateExpired, "ttl", "ttl of "+policy.Duration(e.g.TTL).String()+" passed", "")
	}
}

// end moves a pending or granted grant to a final state. It narrows, so
// it happens even when the record cannot be written. b.mu is held.
func (b *Broker) end(e *entry, to State, by, note, call string) {
	_ = b.record(e, audit.GrantExpire, "", by, note, call) // a failed log fails every later grant
	if e.g.State == StatePending {
		close(e.decided)
	}
	e.g.State, e.g.Ended, e.g.EndedBy = to, b.now(), by
}

// decide moves a pending grant to granted or denied. b.mu is held.
func (b *Broker) decide(e *entry, to State) {
	now := b.now()
	e.g.State, e.g.Decided = to, now
	if to == StateGranted && e.g.Scope == ScopeTTL {
		e.g.Expires = now.Add(e.g.TTL)
	}
	close(e.decided)
}

// pending counts the session's pending grants. b.mu is held.
func (b *Broker) pending(session string) int {
	n := 0
	for _, e := range b.grants {
		if e.g.Session == session && e.g.State == StatePending {
			n++
		}
	}
	return n
}

// record appends one audit record about e. b.mu is held.
func (b *Broker) record(e *entry, kind audit.Kind, decision, by, note, call string) error {
	_, err := b.log.Append(audit.Record{
		Kind:       kind,
		Session:    e.g.Session,
		Grant:      e.g.ID,
		Capability: e.g.Capability,
		Scope:      string(e.g.Scope),
		TTLSeconds: int64(e.g.TTL / time.Second),
		Decision:   decision,
		DecidedBy:  by,
		Reason:     e.g.Reason,
		Note:       note,
		PolicyHash: e.policyHash,
		Call:       call,
	})
	if err != nil {
		return fmt.Errorf("recording %s of grant %s: %w", kind, e.g.ID, err)
	}
	return nil
}

// emit sends an event about e to every sink: rule is the policy rule that
// decided, if any, and note the note of this step. b.mu is held.
func (b *Broker) emit(e *entry, kind events.Kind, rule, note string) {
	if len(b.sinks) == 0 {
		return
	}
	keys := make([]int, 0, len(b.sinks))
	for k := range b.sinks {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b.sinks[k].Emit(e.event(kind, rule, note, b.now()))
	}
}

// event describes the grant as an event of the given kind; see
// docs/events.md.
func (e *entry) event(kind events.Kind, rule, note string, now time.Time) *events.Event {
	g := &e.g
	d := map[string]any{"grant": g.ID, "scope": string(g.Scope), "state": string(g.State), "reason": g.Reason}
	if g.TTL > 0 {
		d["ttl_s"] = int64(g.TTL / time.Second)
	}
	for k, v := range map[string]string{"decision": g.Decision, "decided_by": g.DecidedBy, "ended_by": g.EndedBy, "note": note} {
		if v != "" {
			d[k] = v
		}
	}
	if !g.Expires.IsZero() {
		d["expires"] = g.Expires.UTC().Format(time.RFC3339Nano)
	}
	return &events.Event{Time: now, Session: g.Session, Call: g.Call, Kind: kind, Op: "grant", Target: g.Capability, Rule: rule, Detail: d}
}

func (e *entry) snapshot() *Grant {
	g := e.g
	return &g
}
