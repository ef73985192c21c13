//go:build !linux

package daemon

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/cordon-sandbox/cordon/audit"
	"github.com/cordon-sandbox/cordon/events"
	"github.com/cordon-sandbox/cordon/policy"
	"github.com/cordon-sandbox/cordon/sandbox"
)

var errUnsupported = errors.New("the cordon daemon needs Linux")

// Options configure a daemon.
type Options struct {
	Policy       *policy.Policy
	PolicyText   []byte
	Bus          *events.Bus
	SessionUID   int
	Socket       string
	Audit        *audit.Log
	AuditPath    string
	CgroupParent string
}

// Server is not available on this OS.
type Server struct{}

// New returns a server whose Serve reports that it is unsupported.
func New(o Options) *Server { return &Server{} }

// Sweep does nothing on this OS.
func Sweep(socket string) (int, error) { return 0, nil }

// Listen reports that the daemon is unsupported on this OS.
func Listen(path string) (net.Listener, error) { return nil, errUnsupported }

// DefaultSocket reports that the daemon is unsupported on this OS.
func DefaultSocket() (string, error) { return "", errUnsupported }

// Serve reports that the daemon is unsupported on this OS.
func (s *Server) Serve(ln net.Listener) error { return errUnsupported }

// Shutdown does nothing on this OS.
func (s *Server) Shutdown(ctx context.Context) error { return nil }

// Session is not available on this OS.
type Session struct{}

// OpenSession reports that the daemon is unsupported on this OS.
func (s *Server) OpenSession(ctx context.Context, r CreateRequest) (*Session, error) {
	return nil, errUnsupported
}

// RequestGrant reports that the daemon is unsupported on this OS.
func (s *Server) RequestGrant(ctx context.Context, session string, r GrantRequest) (*Grant, error) {
	return nil, errUnsupported
}

// WaitGrant reports that the daemon is unsupported on this OS.
func (s *Server) WaitGrant(ctx context.Context, session, id string) (*Grant, error) {
	return nil, errUnsupported
}

// SessionGrants returns nothing on this OS.
func (s *Server) SessionGrants(session, state string) []*Grant { return []*Grant{} }

func (h *Session) ID() string { return "" }
func (h *Session) Exec(ctx context.Context, x sandbox.ExecRequest) (*sandbox.ExecResult, error) {
	return nil, errUnsupported
}
func (h *Session) ReadFile(ctx context.Context, p string) ([]byte, bool, error) {
	return nil, false, errUnsupported
}
func (h *Session) WriteFile(ctx context.Context, p string, data []byte) error { return errUnsupported }
func (h *Session) ListDir(ctx context.Context, p string) ([]sandbox.FileInfo, error) {
	return nil, errUnsupported
}
func (h *Session) CallTimeout() time.Duration { return 0 }
func (h *Session) Close() error               { return nil }
