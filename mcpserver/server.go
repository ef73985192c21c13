// Package mcpserver serves a cordon session's tools to an agent over the
// Model Context Protocol: bash, read_file, write_file, edit_file and
// list_files, and request_capability when the server is given a way to
// grant capabilities (Options.Grants). Every tool acts through the session (its Exec and file
// calls), never on the host; a call that cordon refused comes back with
// the refusal explained in the text the model reads (events.Explain) and
// the deny events in the result's structuredContent.
//
// Arguments that do not fit a tool's input schema are answered with a
// JSON-RPC error (invalid params), not a tool result.
package mcpserver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/cordon-sandbox/cordon/sandbox"
)

// Session is what the tools need of a cordon session. *sandbox.Session
// and *daemon.Session have it.
type Session interface {
	// ID is the session's id, by which Options.Grants knows it.
	ID() string
	Exec(ctx context.Context, r sandbox.ExecRequest) (*sandbox.ExecResult, error)
	ReadFile(ctx context.Context, p string) (data []byte, truncated bool, err error)
	WriteFile(ctx context.Context, p string, data []byte) error
	ListDir(ctx context.Context, p string) ([]sandbox.FileInfo, error)
	// CallTimeout is the timeout of a call that sets none; bash's
	// timeout_s can shorten it, never lengthen it.
	CallTimeout() time.Duration
	Close() error
}

// DefaultMaxOutput is the default of Options.MaxOutput: enough for a
// build log's tail, small enough for a model's context.
const DefaultMaxOutput = 256 << 10

// DefaultProgressInterval is the default of Options.ProgressInterval.
const DefaultProgressInterval = 500 * time.Millisecond

// Options configure a server. The zero value is usable.
type Options struct {
	// Version is the version the server reports to clients.
	Version string
	// MaxOutput caps the bytes a result carries: a bash call's stdout
	// and stderr together, and the text of a read_file. Zero means
	// DefaultMaxOutput. It should not exceed the policy's output limit.
	MaxOutput int64
	// ProgressInterval is the shortest time between two progress
	// notifications of a bash call whose client asked for progress.
	// Zero means DefaultProgressInterval.
	ProgressInterval time.Duration
	// Grants, when set, serves the tool request_capability for the
	// server's sessions, which must then be sessions Grants knows.
	Grants Grants
	// GrantSocket is the daemon socket on which a person decides a
	// pending request (cordon grant approve ID --socket GrantSocket); the
	// model reads it in a pending answer.
	GrantSocket string
}

func (o Options) withDefaults() Options {
	if o.MaxOutput <= 0 {
		o.MaxOutput = DefaultMaxOutput
	}
	if o.ProgressInterval <= 0 {
		o.ProgressInterval = DefaultProgressInterval
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	return o
}

// instructions tell the model what the server is; clients put them
// ahead of the tool list.
const instructions = `These tools run inside a cordon sandbox session: a shell and file tools confined to the workspace, with a filesystem view, network and resource limits set by policy. When cordon refuses an operation, the tool result says what was refused, by which rule, and which capability (if any) could allow it. A refused operation is refused again if repeated unchanged, so change the approach instead of retrying.`

// New returns a server whose tools act in sess, for every connection
// the server serves. The caller closes sess when the server is done;
// New never does.
func New(sess Session, o Options) *mcp.Server {
	return newServer(func(context.Context, *mcp.ServerSession) (Session, error) { return sess, nil }, o)
}

// PerConnection is a server that gives each MCP connection a session of
// its own, as the streamable HTTP transport needs: the session is opened
// at the connection's first tool call and closed when the connection
// ends.
type PerConnection struct {
	Server *mcp.Server

	open    func(context.Context) (Session, error)
	mu      sync.Mutex
	conns   map[*mcp.ServerSession]*conn
	closed  bool
	closing sync.WaitGroup // releases closing a session now
}

type conn struct {
	ready chan struct{} // closed when sess or err is set
	sess  Session
	err   error
}

// NewPerConnection returns a server that opens a session with open for
// each connection.
func NewPerConnection(open func(context.Context) (Session, error), o Options) *PerConnection {
	p := &PerConnection{open: open, conns: map[*mcp.ServerSession]*conn{}}
	p.Server = newServer(p.sessionFor, o)
	return p
}

var errServerClosed = errors.New("the cordon MCP server is shutting down")

func (p *PerConnection) sessionFor(ctx context.Context, ss *mcp.ServerSession) (Session, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errServerClosed
	}
	c, ok := p.conns[ss]
	if !ok {
		c = &conn{ready: make(chan struct{})}
		p.conns[ss] = c
	}
	p.mu.Unlock()
	if ok {
		select {
		case <-c.ready:
			return c.sess, c.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	// The session outlives the call that opened it.
	sess, err := p.open(context.WithoutCancel(ctx))
	p.mu.Lock()
	switch {
	case err != nil:
		delete(p.conns, ss) // the next call tries again
	case p.closed:
		sess.Close()
		sess, err = nil, errServerClosed
	default:
		go p.release(ss)
	}
	c.sess, c.err = sess, err
	close(c.ready)
	p.mu.Unlock()
	return sess, err
}

// release closes a connection's session when the connection ends.
func (p *PerConnection) release(ss *mcp.ServerSession) {
	ss.Wait()
	p.mu.Lock()
	c := p.conns[ss]
	delete(p.conns, ss)
	if c != nil && c.sess != nil {
		p.closing.Add(1) // under mu: Close waits for this one
	}
	p.mu.Unlock()
	if c != nil && c.sess != nil {
		c.sess.Close()
		p.closing.Done()
	}
}

// Close closes the sessions of the connections still open, waits for
// those closing as their connection ended, and refuses tool calls from
// then on.
func (p *PerConnection) Close() error {
	p.mu.Lock()
	p.closed = true
	var open []Session
	for ss, c := range p.conns {
		select {
		case <-c.ready:
			if c.sess != nil {
				open = append(open, c.sess)
			}
			delete(p.conns, ss)
		default: // still opening: sessionFor sees closed and closes it
		}
	}
	p.mu.Unlock()
	var errs []error
	for _, s := range open {
		if err := s.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	// A connection that ended just before may have its session closing
	// in release: wait for it, or the process could exit mid-close and
	// leave the session's cgroup behind.
	p.closing.Wait()
	return errors.Join(errs...)
}

// tools holds what the tool handlers share.
type tools struct {
	opts       Options
	sessionFor func(context.Context, *mcp.ServerSession) (Session, error)
}

func newServer(sessionFor func(context.Context, *mcp.ServerSession) (Session, error), o Options) *mcp.Server {
	o = o.withDefaults()
	s := mcp.NewServer(&mcp.Implementation{Name: "cordon", Title: "cordon sandbox", Version: o.Version},
		&mcp.ServerOptions{Instructions: instructions, Capabilities: &mcp.ServerCapabilities{Tools: &mcp.ToolCapabilities{}}})
	t := &tools{opts: o, sessionFor: sessionFor}
	t.addBash(s)
	t.addReadFile(s)
	t.addWriteFile(s)
	t.addEditFile(s)
	t.addListFiles(s)
	if o.Grants != nil {
		t.addRequestCapability(s, o.Grants)
	}
	return s
}

// session returns the session a tool call acts in, or the tool error
// that says why there is none.
func (t *tools) session(ctx context.Context, req *mcp.CallToolRequest) (Session, *mcp.CallToolResult) {
	s, err := t.sessionFor(ctx, req.Session)
	if err != nil {
		return nil, toolError(fmt.Errorf("cordon could not open a session for this connection: %w", err))
	}
	return s, nil
}
