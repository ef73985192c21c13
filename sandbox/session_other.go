//go:build !linux

package sandbox

import (
	"context"
	"time"

	"github.com/cordon-sandbox/cordon/events"
)

var errUnsupported = &Error{Code: CodeUnsupported, Message: "cordon sessions need Linux (namespaces, Landlock, seccomp)"}

// Init does nothing: there are no session stages off Linux.
func Init() {}

// Session is not available on this OS.
type Session struct{}

// Open reports that sessions are not supported on this OS.
func Open(ctx context.Context, o Options) (*Session, error) { return nil, errUnsupported }

// Run reports that sessions are not supported on this OS.
func Run(ctx context.Context, o Options, r ExecRequest) (*ExecResult, error) {
	return nil, errUnsupported
}

func (s *Session) ID() string                 { return "" }
func (s *Session) Workspace() string          { return "" }
func (s *Session) Created() time.Time         { return time.Time{} }
func (s *Session) Bus() *events.Bus           { return nil }
func (s *Session) CallTimeout() time.Duration { return 0 }
func (s *Session) Close() error               { return nil }
func (s *Session) Exec(ctx context.Context, r ExecRequest) (*ExecResult, error) {
	return nil, errUnsupported
}
func (s *Session) ReadFile(ctx context.Context, p string) ([]byte, bool, error) {
	return nil, false, errUnsupported
}
func (s *Session) WriteFile(ctx context.Context, p string, data []byte) error { return errUnsupported }
func (s *Session) ListDir(ctx context.Context, p string) ([]FileInfo, error) {
	return nil, errUnsupported
}
func (s *Session) Stat(ctx context.Context, p string) (*FileInfo, error) { return nil, errUnsupported }
func (s *Session) AllowHosts(hosts ...string) error                      { return errUnsupported }
func (s *Session) AllowedHosts() []string                                { return nil }
func (s *Session) ApplyGrants(caps []string) error                       { return errUnsupported }
func (s *Session) Grants() []string                                      { return nil }
