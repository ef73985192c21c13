//go:build !linux

package daemon

import (
	"context"
	"errors"
	"net"

	"github.com/cordon-sandbox/cordon/events"
	"github.com/cordon-sandbox/cordon/policy"
)

var errUnsupported = errors.New("the cordon daemon needs Linux")

// Options configure a daemon.
type Options struct {
	Policy     *policy.Policy
	Bus        *events.Bus
	SessionUID int
	Socket     string
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
