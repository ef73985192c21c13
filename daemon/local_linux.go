package daemon

import (
	"context"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/cordon-sandbox/cordon/policy"
	"github.com/cordon-sandbox/cordon/sandbox"
)

// The daemon used from inside its own process (cordon mcp): sessions and
// grant requests for this process's user, on the same path as the API's,
// so that a person can decide the grants over the daemon's socket.

// self is this process as a caller.
func self() peer { return peer{uid: os.Geteuid(), gid: os.Getegid(), pid: os.Getpid()} }

// Session is a session of the daemon opened in process. Its calls run
// under the session's grants as API calls do.
type Session struct {
	srv *Server
	e   *entry
}

// OpenSession opens a session owned by this process's user, as POST
// /v1/sessions does. Errors are the session's (*sandbox.Error,
// *policy.Error) or *APIError.
func (s *Server) OpenSession(ctx context.Context, r CreateRequest) (*Session, error) {
	e, err := s.open(ctx, self(), r)
	if err != nil {
		return nil, err
	}
	return &Session{srv: s, e: e}, nil
}

// ID returns the session's id.
func (h *Session) ID() string { return h.e.s.ID() }

// Exec runs a command in the session.
func (h *Session) Exec(ctx context.Context, x sandbox.ExecRequest) (*sandbox.ExecResult, error) {
	return h.srv.runExec(ctx, h.e, x)
}

// ReadFile reads a file of the workspace.
func (h *Session) ReadFile(ctx context.Context, p string) ([]byte, bool, error) {
	return h.srv.readFile(ctx, h.e, p)
}

// WriteFile writes a file of the workspace.
func (h *Session) WriteFile(ctx context.Context, p string, data []byte) error {
	return h.srv.writeFile(ctx, h.e, p, data)
}

// ListDir lists a directory of the workspace.
func (h *Session) ListDir(ctx context.Context, p string) ([]sandbox.FileInfo, error) {
	return fileCall(h.srv, ctx, h.e, func() ([]sandbox.FileInfo, error) { return h.e.s.ListDir(ctx, p) })
}

// CallTimeout is the timeout of the session's next call that sets none:
// the session's, or a limit.timeout grant's in force that is longer
// (which the call will apply).
func (h *Session) CallTimeout() time.Duration {
	t := h.e.s.CallTimeout()
	if b := h.srv.grants.get(); b != nil {
		for _, g := range b.Active(h.ID()) {
			if c := g.Parts(); c.Layer == "limit" && c.Verb == "timeout" {
				if d, err := policy.ParseDuration(c.Target); err == nil {
					t = max(t, time.Duration(d))
				}
			}
		}
	}
	return t
}

// Close removes the session from the daemon and closes it; its grants
// end.
func (h *Session) Close() error { return h.srv.remove1(h.e) }

// owned returns the session id if it is this process's user's.
func (s *Server) owned(id string) (*entry, error) {
	s.mu.Lock()
	e, ok := s.sessions[id]
	s.mu.Unlock()
	if !ok || e.uid != os.Geteuid() {
		return nil, apiError(http.StatusNotFound, "not_found", "no session "+strconv.Quote(id))
	}
	return e, nil
}

// RequestGrant asks for a capability for the session, as POST
// /v1/sessions/{id}/grants does for this process's user. Errors are
// *APIError.
func (s *Server) RequestGrant(ctx context.Context, session string, r GrantRequest) (*Grant, error) {
	e, err := s.owned(session)
	if err != nil {
		return nil, err
	}
	return s.request(e, r)
}

// WaitGrant waits until the session's grant id is decided (or ended) or
// ctx ends, and returns it as it is then.
func (s *Server) WaitGrant(ctx context.Context, session, id string) (*Grant, error) {
	g, _, err := s.grantFor(id, self())
	if err != nil || g.Session != session {
		return nil, apiError(http.StatusNotFound, "not_found", "no grant "+strconv.Quote(id)+" in this session")
	}
	return s.wait(ctx, id, self())
}

// SessionGrants returns the session's grants in state ("" for all), as
// GET /v1/grants?session=ID&state=STATE does.
func (s *Server) SessionGrants(session, state string) []*Grant {
	if _, err := s.owned(session); err != nil {
		return []*Grant{}
	}
	return s.listFor(self(), session, state)
}
