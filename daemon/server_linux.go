package daemon

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cordon-sandbox/cordon/audit"
	"github.com/cordon-sandbox/cordon/events"
	"github.com/cordon-sandbox/cordon/grants"
	"github.com/cordon-sandbox/cordon/internal/cgroup"
	"github.com/cordon-sandbox/cordon/policy"
	"github.com/cordon-sandbox/cordon/sandbox"
)

// CgroupParent is the cgroup directory that holds the sessions of the
// daemon serving socket: one per socket, apart from one-shot `cordon run`
// sessions and from every other daemon, so that a daemon sweeping up
// after a crashed predecessor on its socket never touches sessions it
// does not own. (Two live daemons cannot share a socket: Listen refuses.)
func CgroupParent(socket string) string {
	sum := sha256.Sum256([]byte(filepath.Clean(socket)))
	return "cordon-daemon-" + hex.EncodeToString(sum[:6])
}

// readTimeout bounds the reading of a request, headers and body (a
// variable for tests).
var readTimeout = 2 * time.Minute

// Request size limits.
const (
	maxJSONBody = 16 << 20 // a create or exec body, stdin included
	maxFileBody = 48 << 20 // a PUT of a file (below the frame limit)
)

// Options configure a daemon.
type Options struct {
	// Policy is the policy of sessions created without one; nil means
	// policy.Default().
	Policy *policy.Policy
	// PolicyText is the text Policy was read from: its SHA-256 is the
	// policy hash in the audit records of those sessions. Nil means
	// policy.DefaultYAML() when Policy is nil, Policy.Marshal() otherwise.
	PolicyText []byte
	// Audit is the audit log of capability grants; the daemon does not
	// close it. When nil, the log at AuditPath is opened at the first
	// grant request and closed by Shutdown. With neither, grant requests
	// fail.
	Audit     *audit.Log
	AuditPath string
	// CgroupParent is passed to sandbox.Options; empty means
	// CgroupParent(Socket).
	CgroupParent string
	// Bus receives every session's events; nil means a private bus.
	Bus *events.Bus
	// SessionUID is passed to sandbox.Options.
	SessionUID int
	// Socket is the socket the daemon serves; it names the daemon's
	// cgroup parent (CgroupParent).
	Socket string
	// Resolve is passed to sandbox.Options (a test hook).
	Resolve func(ctx context.Context, host string) ([]netip.Addr, error)
}

// Server is the daemon: the sessions it holds and its HTTP API.
type Server struct {
	opts       Options
	bus        *events.Bus
	metrics    *metrics
	http       *http.Server
	policyHash string // of the sessions created without a policy
	grants     grantBroker
	bodies     bodyBudget // request bodies held in memory

	mu       sync.Mutex
	sessions map[string]*entry
	closing  bool
}

type entry struct {
	s          *sandbox.Session
	uid        int
	created    time.Time
	pol        *policy.Policy
	policyHash string
	enforce    enforcement
}

// New returns a daemon; Serve runs it.
func New(o Options) *Server {
	if o.Policy == nil {
		o.Policy = policy.Default()
	}
	if o.Bus == nil {
		o.Bus = events.NewBus()
	}
	if o.CgroupParent == "" {
		o.CgroupParent = CgroupParent(o.Socket)
	}
	s := &Server{opts: o, bus: o.Bus, sessions: map[string]*entry{}, policyHash: policyHash(o), bodies: bodyBudget{max: bodiesInFlight}}
	if o.Audit != nil {
		s.grants.start(o.Audit, false, s.bus)
	}
	s.metrics = newMetrics()
	s.bus.Attach(s.metrics)
	s.http = &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       readTimeout, // headers and body; a slow client cannot hold a request open
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ConnContext:       withPeer,
	}
	return s
}

// Sweep removes what a crashed earlier daemon on socket left behind: the
// cgroups of its sessions, with anything still running in them. (Its
// sessions' other state dies with their PID 1, which exits when the
// daemon's socket end closes; there are no host mounts or scratch
// directories.) Call it after Listen, which proves that no live daemon
// serves socket.
func Sweep(socket string) (int, error) {
	if os.Geteuid() != 0 {
		return 0, nil
	}
	return cgroup.Sweep(CgroupParent(socket))
}

// Listen prepares the unix socket at path: it refuses to take over a
// socket another daemon answers on, removes a stale one, and sets the
// permissions: 0600 for a user's daemon; for root's, 0660 with the group
// "cordon" when that group exists (its members may use the daemon), 0600
// otherwise. The socket is never world-writable.
func Listen(path string) (net.Listener, error) {
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("another daemon is serving %s", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	old := unix.Umask(0o177)
	ln, err := net.Listen("unix", path)
	unix.Umask(old)
	if err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		if g, err := user.LookupGroup("cordon"); err == nil {
			gid, _ := strconv.Atoi(g.Gid)
			if err := os.Chown(path, 0, gid); err == nil {
				_ = os.Chmod(path, 0o660)
			}
		}
	}
	return ln, nil
}

// DefaultSocket is where the daemon listens unless told otherwise:
// /run/cordon/cordon.sock for root, $XDG_RUNTIME_DIR/cordon.sock for a
// user.
func DefaultSocket() (string, error) {
	if os.Geteuid() == 0 {
		return "/run/cordon/cordon.sock", nil
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "cordon.sock"), nil
	}
	return "", errors.New("XDG_RUNTIME_DIR is not set: give the socket path with --socket")
}

// Serve serves the API on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	err := s.http.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting requests, closes every session and waits for
// running requests until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	all := make([]*entry, 0, len(s.sessions))
	for id, e := range s.sessions {
		all = append(all, e)
		delete(s.sessions, id)
	}
	s.mu.Unlock()
	var errs []error
	for _, e := range all {
		if err := s.closeSession(e); err != nil {
			errs = append(errs, err)
		}
	}
	if err := s.http.Shutdown(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := s.grants.close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// policyHash is the audit log's policy_hash of sessions created without
// a policy of their own.
func policyHash(o Options) string {
	switch {
	case o.PolicyText != nil:
		return grants.PolicyHash(o.PolicyText)
	case o.Policy == nil:
		return grants.PolicyHash(policy.DefaultYAML())
	}
	text, err := o.Policy.Marshal()
	if err != nil {
		text = []byte(err.Error()) // not a policy anyone wrote: a hash nothing matches
	}
	return grants.PolicyHash(text)
}

// closeSession ends a session the daemon no longer holds: its grants
// end (pending requests with them), then the session.
func (s *Server) closeSession(e *entry) error {
	e.enforce.close()
	if b := s.grants.get(); b != nil {
		b.EndSession(e.s.ID())
	}
	return e.s.Close()
}

// peer is the credentials of the process at the other end of a
// connection, read once when it connects.
type peer struct {
	uid, gid, pid int
}

type peerKey struct{}

func withPeer(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ctx
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return ctx
	}
	var cred *unix.Ucred
	_ = raw.Control(func(fd uintptr) {
		cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if err != nil || cred == nil {
		return ctx
	}
	return context.WithValue(ctx, peerKey{}, peer{uid: int(cred.Uid), gid: int(cred.Gid), pid: int(cred.Pid)})
}

func peerOf(r *http.Request) (peer, bool) {
	p, ok := r.Context().Value(peerKey{}).(peer)
	return p, ok
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/sessions", s.authed(s.create))
	mux.HandleFunc("GET /v1/sessions", s.authed(s.list))
	mux.HandleFunc("DELETE /v1/sessions/{id}", s.authed(s.remove))
	mux.HandleFunc("POST /v1/sessions/{id}/exec", s.authed(s.exec))
	mux.HandleFunc("GET /v1/sessions/{id}/files/{path...}", s.authed(s.getFile))
	mux.HandleFunc("PUT /v1/sessions/{id}/files/{path...}", s.authed(s.putFile))
	mux.HandleFunc("GET /v1/sessions/{id}/events", s.authed(s.sessionEvents))
	mux.HandleFunc("POST /v1/sessions/{id}/network/allow", s.authed(s.networkAllow))
	mux.HandleFunc("POST /v1/sessions/{id}/grants", s.authed(s.requestGrant))
	mux.HandleFunc("GET /v1/grants", s.authed(s.listGrants))
	mux.HandleFunc("GET /v1/grants/{grant}", s.authed(s.getGrant))
	mux.HandleFunc("POST /v1/grants/{grant}/approve", s.authed(s.decideGrant(verbApprove)))
	mux.HandleFunc("POST /v1/grants/{grant}/deny", s.authed(s.decideGrant(verbDeny)))
	mux.HandleFunc("POST /v1/grants/{grant}/revoke", s.authed(s.decideGrant(verbRevoke)))
	mux.HandleFunc("GET /v1/events", s.authed(s.allEvents))
	mux.HandleFunc("GET /metrics", s.authed(func(w http.ResponseWriter, r *http.Request, _ peer) { s.metrics.ServeHTTP(w, r) }))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+r.URL.Path, nil)
	})
	return mux
}

// authed admits a request whose peer credentials are known. A daemon not
// running as root serves only its own user: it could not give another
// user's sessions their own identity anyway.
func (s *Server) authed(h func(http.ResponseWriter, *http.Request, peer)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := peerOf(r)
		if !ok {
			writeError(w, http.StatusForbidden, "denied", "peer credentials unavailable", nil)
			return
		}
		if self := os.Geteuid(); self != 0 && p.uid != self {
			writeError(w, http.StatusForbidden, "denied", "this daemon serves only uid "+strconv.Itoa(self), nil)
			return
		}
		h(w, r, p)
	}
}

// lookup returns the caller's session; another uid's session is
// reported as unknown.
func (s *Server) lookup(w http.ResponseWriter, r *http.Request, p peer) *entry {
	id := r.PathValue("id")
	s.mu.Lock()
	e, ok := s.sessions[id]
	s.mu.Unlock()
	if !ok || e.uid != p.uid {
		writeError(w, http.StatusNotFound, "not_found", "no session "+strconv.Quote(id), nil)
		return nil
	}
	return e
}

func (s *Server) create(w http.ResponseWriter, r *http.Request, p peer) {
	var req CreateRequest
	if !s.decode(w, r, &req) {
		return
	}
	e, err := s.open(r.Context(), p, req)
	if err != nil {
		writeAPIError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, CreateResponse{ID: e.s.ID()})
}

var errShuttingDown = &APIError{Status: http.StatusServiceUnavailable, Body: ErrorBody{Error: ErrorDetail{Code: "closed", Message: "the daemon is shutting down"}}}

// open opens a session for the caller p. Its errors are the session's
// (*sandbox.Error, *policy.Error), or an *APIError.
func (s *Server) open(ctx context.Context, p peer, req CreateRequest) (*entry, error) {
	if !filepath.IsAbs(req.Workspace) {
		return nil, apiError(http.StatusBadRequest, "invalid", "workspace must be an absolute path")
	}
	pol, hash := s.opts.Policy, s.policyHash
	if req.Policy != "" {
		var err error
		if pol, err = policy.Load([]byte(req.Policy), "policy"); err != nil {
			return nil, err
		}
		hash = grants.PolicyHash([]byte(req.Policy))
	}
	caller := &sandbox.Caller{UID: p.uid, GID: p.gid}
	if u, err := user.LookupId(strconv.Itoa(p.uid)); err == nil {
		caller.Home = u.HomeDir
	}
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing {
		return nil, errShuttingDown
	}
	sess, err := sandbox.Open(ctx, sandbox.Options{
		Policy: pol, Workspace: req.Workspace, Bus: s.bus, SessionUID: s.opts.SessionUID,
		Caller: caller, CgroupParent: s.opts.CgroupParent, Resolve: s.opts.Resolve,
		CountEgress: s.metrics.countEgress,
	})
	if err != nil {
		return nil, err
	}
	e := &entry{s: sess, uid: p.uid, created: sess.Created(), pol: pol, policyHash: hash, enforce: newEnforcement()}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		sess.Close()
		return nil, errShuttingDown
	}
	s.sessions[sess.ID()] = e
	s.mu.Unlock()
	return e, nil
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, p peer) {
	s.mu.Lock()
	out := []SessionInfo{}
	for id, e := range s.sessions {
		if e.uid == p.uid {
			out = append(out, SessionInfo{ID: id, Workspace: e.s.Workspace(), Created: e.created})
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) remove(w http.ResponseWriter, r *http.Request, p peer) {
	e := s.lookup(w, r, p)
	if e == nil {
		return
	}
	if err := s.remove1(e); err != nil {
		writeAPIError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// remove1 removes one session from the daemon and closes it.
func (s *Server) remove1(e *entry) error {
	s.mu.Lock()
	_, held := s.sessions[e.s.ID()]
	delete(s.sessions, e.s.ID())
	s.mu.Unlock()
	if !held {
		return nil // closed already (by another remove, or Shutdown)
	}
	if err := s.closeSession(e); err != nil {
		return apiError(http.StatusInternalServerError, "failed", "closing the session: "+err.Error())
	}
	return nil
}

func (s *Server) exec(w http.ResponseWriter, r *http.Request, p peer) {
	e := s.lookup(w, r, p)
	if e == nil {
		return
	}
	var req ExecRequest
	if !s.decode(w, r, &req) {
		return
	}
	x := sandbox.ExecRequest{Argv: req.Argv, Command: req.Command, Env: req.Env, Cwd: req.Cwd,
		Timeout: time.Duration(req.TimeoutMS) * time.Millisecond, MaxOutput: req.MaxOutputBytes}
	switch {
	case req.Stdin != "" && req.StdinBase64 != "":
		writeError(w, http.StatusBadRequest, "invalid", "give stdin or stdin_base64, not both", nil)
		return
	case req.StdinBase64 != "":
		b, err := base64.StdEncoding.DecodeString(req.StdinBase64)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid", "stdin_base64: "+err.Error(), nil)
			return
		}
		x.Stdin = b
	default:
		x.Stdin = []byte(req.Stdin)
	}
	if req.TimeoutMS < 0 || req.MaxOutputBytes < 0 {
		writeError(w, http.StatusBadRequest, "invalid", "timeout_ms and max_output_bytes cannot be negative", nil)
		return
	}
	if r.URL.Query().Get("stream") == "1" {
		s.execStream(w, r, e, x)
		return
	}
	res, err := s.runExec(r.Context(), e, x)
	if err != nil {
		writeSandboxError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// execStream answers with newline-delimited JSON frames: output as it
// arrives, then the result. Output is queued (bounded by the call's
// output cap) so that a slow client never stalls the session.
func (s *Server) execStream(w http.ResponseWriter, r *http.Request, e *entry, x sandbox.ExecRequest) {
	q := newFrameQueue()
	x.Output = func(stream string, data []byte) { q.push(outputFrame(stream, data)) }
	done := make(chan struct{})
	var res *sandbox.ExecResult
	var err error
	go func() {
		res, err = s.runExec(r.Context(), e, x)
		close(done)
	}()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	flushAll := func() {
		for _, f := range q.take() {
			if enc.Encode(f) != nil {
				return
			}
		}
		_ = rc.Flush()
	}
	for running := true; running; {
		select {
		case <-q.ready:
			flushAll()
		case <-done:
			running = false
		}
	}
	flushAll()
	if err != nil {
		var body ErrorBody
		body.Error, body.Denials = errorDetail(err)
		body.Explanation = events.Explain(body.Denials)
		b, _ := json.Marshal(body)
		_ = enc.Encode(OutputFrame{Result: b})
		return
	}
	b, _ := json.Marshal(res)
	_ = enc.Encode(OutputFrame{Result: b})
	_ = rc.Flush()
}

func (s *Server) getFile(w http.ResponseWriter, r *http.Request, p peer) {
	e := s.lookup(w, r, p)
	if e == nil {
		return
	}
	data, truncated, err := s.readFile(r.Context(), e, r.PathValue("path"))
	if err != nil {
		writeSandboxError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	if truncated {
		w.Header().Set("X-Cordon-Truncated", "true")
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(data)
}

func (s *Server) putFile(w http.ResponseWriter, r *http.Request, p peer) {
	e := s.lookup(w, r, p)
	if e == nil {
		return
	}
	data, err := io.ReadAll(s.body(r, w, maxFileBody))
	if err != nil {
		bodyError(w, err, "file body")
		return
	}
	if err := s.writeFile(r.Context(), e, r.PathValue("path"), data); err != nil {
		writeSandboxError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// networkAllow widens a live session's egress allowlist.
func (s *Server) networkAllow(w http.ResponseWriter, r *http.Request, p peer) {
	e := s.lookup(w, r, p)
	if e == nil {
		return
	}
	var req NetworkAllowRequest
	if !s.decode(w, r, &req) {
		return
	}
	if len(req.Hosts) == 0 {
		writeError(w, http.StatusBadRequest, "invalid", "hosts: give at least one host", nil)
		return
	}
	if err := e.s.AllowHosts(req.Hosts...); err != nil {
		writeSandboxError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, NetworkAllowResponse{Allow: e.s.AllowedHosts()})
}

func (s *Server) sessionEvents(w http.ResponseWriter, r *http.Request, p peer) {
	e := s.lookup(w, r, p)
	if e == nil {
		return
	}
	id := e.s.ID()
	s.stream(w, r, func(ev *events.Event) bool { return ev.Session == id }, id)
}

func (s *Server) allEvents(w http.ResponseWriter, r *http.Request, p peer) {
	s.stream(w, r, func(ev *events.Event) bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		e, ok := s.sessions[ev.Session]
		return ok && e.uid == p.uid
	}, "")
}

// stream writes events as Server-Sent Events until the client goes away
// (or, for one session, the session stops). Events that arrive while the
// client is slow wait in a bounded buffer; past it they are dropped and
// counted in a comment line, and the daemon never waits on the client.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, match func(*events.Event) bool, session string) {
	sub := s.bus.Subscribe(1024)
	defer sub.Close()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	var reported uint64
	for {
		select {
		case <-r.Context().Done():
			return
		case ev, ok := <-sub.C:
			if !ok {
				return
			}
			if d := sub.Dropped(); d > reported {
				fmt.Fprintf(w, ": %d events dropped for a slow reader\n\n", d-reported)
				reported = d
			}
			if !match(ev) {
				continue
			}
			b, err := json.Marshal(ev)
			if err != nil {
				continue
			}
			if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
				return
			}
			_ = rc.Flush()
			if session != "" && ev.Kind == events.SessionStop {
				return
			}
		}
	}
}

// decode reads a strict JSON body: bounded, counted against the daemon's
// body budget, no unknown fields, one value.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	return decodeFrom(w, s.body(r, w, maxJSONBody), v)
}

// decodeBytes decodes a body already read, as strictly as decode.
func decodeBytes(w http.ResponseWriter, body []byte, v any) bool {
	return decodeFrom(w, bytes.NewReader(body), v)
}

func decodeFrom(w http.ResponseWriter, body io.Reader, v any) bool {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("more than one JSON value")
	}
	if err == nil {
		return true
	}
	bodyError(w, err, "body")
	return false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "failed", "encoding the answer: "+err.Error(), nil)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, code, msg string, denials []*events.Event) {
	writeJSON(w, status, ErrorBody{Error: ErrorDetail{Code: code, Message: msg}, Denials: denials, Explanation: events.Explain(denials)})
}

// statusOf maps a sandbox error code to its HTTP status.
var statusOf = map[string]int{
	sandbox.CodeInvalid:     http.StatusBadRequest,
	sandbox.CodeDenied:      http.StatusForbidden,
	sandbox.CodeNotFound:    http.StatusNotFound,
	sandbox.CodeClosed:      http.StatusConflict,
	sandbox.CodeUnsupported: http.StatusInternalServerError,
	sandbox.CodeFailed:      http.StatusInternalServerError,
}

func errorDetail(err error) (ErrorDetail, []*events.Event) {
	var se *sandbox.Error
	if errors.As(err, &se) {
		return ErrorDetail{Code: se.Code, Message: se.Message}, se.Denials
	}
	var pe *policy.Error
	if errors.As(err, &pe) {
		return ErrorDetail{Code: sandbox.CodeInvalid, Message: pe.Error()}, nil
	}
	if errors.Is(err, context.Canceled) {
		return ErrorDetail{Code: "canceled", Message: "the request was canceled"}, nil
	}
	return ErrorDetail{Code: sandbox.CodeFailed, Message: err.Error()}, nil
}

func writeSandboxError(w http.ResponseWriter, err error) {
	writeAPIError(w, sandboxAPIError(err))
}

// sandboxAPIError is the API's answer to a session's error.
func sandboxAPIError(err error) *APIError {
	if ae, ok := errors.AsType[*APIError](err); ok {
		return ae
	}
	d, denials := errorDetail(err)
	status, ok := statusOf[d.Code]
	if !ok {
		status = http.StatusBadRequest
		if d.Code == "canceled" {
			status = 499 // the client went away; nobody reads this
		}
	}
	return &APIError{Status: status, Body: ErrorBody{Error: d, Denials: denials, Explanation: events.Explain(denials)}}
}

func apiError(status int, code, msg string) *APIError {
	return &APIError{Status: status, Body: ErrorBody{Error: ErrorDetail{Code: code, Message: msg}}}
}

// writeAPIError writes an *APIError as it is, and any other error as a
// session's.
func writeAPIError(w http.ResponseWriter, err error) {
	ae, ok := errors.AsType[*APIError](err)
	if !ok {
		ae = sandboxAPIError(err)
	}
	writeJSON(w, ae.Status, ae.Body)
}

// frameQueue hands output frames from the session's reader goroutine to
// the HTTP writer without ever blocking the reader.
type frameQueue struct {
	mu     sync.Mutex
	frames []OutputFrame
	ready  chan struct{}
}

func newFrameQueue() *frameQueue { return &frameQueue{ready: make(chan struct{}, 1)} }

func (q *frameQueue) push(f OutputFrame) {
	q.mu.Lock()
	q.frames = append(q.frames, f)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

func (q *frameQueue) take() []OutputFrame {
	q.mu.Lock()
	defer q.mu.Unlock()
	f := q.frames
	q.frames = nil
	return f
}
