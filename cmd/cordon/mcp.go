package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/cordon-sandbox/cordon/audit"
	"github.com/cordon-sandbox/cordon/daemon"
	"github.com/cordon-sandbox/cordon/mcpserver"
)

// mcpOptions are the flags of `cordon mcp`.
type mcpOptions struct {
	workspace, policyFile, eventsFile string
	// auditFile is the audit log of capability grants; empty means
	// audit.DefaultPath(), opened at the first request.
	auditFile string
	// http is where to serve streamable HTTP ("127.0.0.1:8765",
	// "unix:/path"); empty means stdio.
	http string
}

func mcpCommand() *cobra.Command {
	var o mcpOptions
	cmd := &cobra.Command{
		Use:   "mcp [flags]",
		Short: "Serve a session's tools to an agent over MCP (stdio or streamable HTTP)",
		Long: `Serve the tools bash, read_file, write_file, edit_file, list_files and
request_capability over the Model Context Protocol. Every call runs inside a
cordon session on the workspace; a refused operation comes back explained in
the tool result.

Over stdio (the default) one session lives as long as the connection. With
--http ADDR the server speaks streamable HTTP on a loopback address
(127.0.0.1:8765, [::1]:8765) or a unix socket (unix:/path), and each MCP
connection gets a session of its own. See docs/mcp.md for agent setup.

The sessions belong to a daemon inside this process, which serves the API of
cordon serve on a private socket (mode 0600, in a new directory under
$XDG_RUNTIME_DIR or the temporary directory; its path is printed on
stderr). A person decides capability requests there: cordon grant list,
approve and deny with --socket PATH. Grants are recorded in the audit log
given with --audit, opened at start; by default in the daemon's default log
(see cordon serve --help), opened at the first request.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return serveMCP(cmd.Context(), o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.workspace, "workspace", "", "workspace directory (default: the current directory)")
	f.StringVar(&o.policyFile, "policy", "", "policy file (default: the embedded default policy)")
	f.StringVar(&o.eventsFile, "events", "", "append the sessions' events to this JSONL file")
	f.StringVar(&o.auditFile, "audit", "", "audit log of capability grants (default: see above)")
	f.StringVar(&o.http, "http", "", "serve streamable HTTP on a loopback ADDR or unix:/path instead of stdio")
	return cmd
}

func serveMCP(ctx context.Context, o mcpOptions) error {
	pol, text, err := readPolicy(o.policyFile)
	if err != nil {
		return err
	}
	if o.workspace == "" {
		if o.workspace, err = os.Getwd(); err != nil {
			return err
		}
	}
	bus, closeEvents, err := eventBus(o.eventsFile)
	if err != nil {
		return err
	}
	defer closeEvents()
	log, err := openAudit(o.auditFile)
	if err != nil {
		return err
	}
	if log != nil {
		defer log.Close()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	// The sessions are an in-process daemon's, so that a person can
	// decide their capability requests over its socket.
	socket, cleanup, err := privateSocket()
	if err != nil {
		return err
	}
	defer cleanup()
	dln, err := daemon.Listen(socket)
	if err != nil {
		return err
	}
	srv := daemon.New(daemon.Options{Policy: pol, PolicyText: text, Bus: bus, Socket: socket,
		Audit: log, AuditPath: audit.DefaultPath(), CgroupParent: "cordon"})
	go srv.Serve(dln)
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	fmt.Fprintf(os.Stderr, "cordon mcp: capability requests are decided with cordon grant list|approve|deny --socket %s\n", socket)

	so := mcpserver.Options{Version: version(), MaxOutput: mcpserver.DefaultMaxOutput, Grants: srv, GrantSocket: socket}
	if out := int64(pol.Limits.Output); out > 0 {
		so.MaxOutput = min(so.MaxOutput, out)
	}
	open := func(ctx context.Context) (mcpserver.Session, error) {
		s, err := srv.OpenSession(ctx, daemon.CreateRequest{Workspace: o.workspace})
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	var ln net.Listener
	var url string
	if o.http != "" {
		if ln, url, err = listenMCP(o.http); err != nil {
			return err
		}
		defer ln.Close()
	}
	// A session that cannot open (a bad workspace, no user namespaces)
	// fails here, before any client connects.
	sess, err := open(ctx)
	if err != nil {
		return err
	}
	if ln != nil {
		sess.Close()
		return serveMCPHTTP(ctx, ln, url, mcpserver.NewPerConnection(open, so))
	}
	defer sess.Close()
	err = mcpserver.New(sess, so).Run(ctx, &mcpserver.StdioTransport{In: os.Stdin, Out: os.Stdout})
	if ctx.Err() != nil || errors.Is(err, mcp.ErrConnectionClosed) {
		return nil // a signal, or the client hung up
	}
	return err
}

func serveMCPHTTP(ctx context.Context, ln net.Listener, url string, pc *mcpserver.PerConnection) error {
	defer pc.Close()
	handler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return pc.Server },
		&mcp.StreamableHTTPOptions{SessionTimeout: time.Hour, MaxRequestBodyBytes: mcpserver.DefaultMaxMessage})
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 64 << 10}
	fmt.Fprintf(os.Stderr, "cordon mcp: serving streamable HTTP at %s\n", url)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pc.Close() // ends the calls in flight, so the server can drain
	srv.Shutdown(shutdown)
	return nil
}

// listenMCP listens where --http says, refusing any address but
// loopback and unix sockets: the tools run commands as the user who
// started cordon, so the network must not reach them. It returns the
// URL clients use.
func listenMCP(addr string) (net.Listener, string, error) {
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		ln, err := listenUnix(p)
		return ln, "unix:" + p, err
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, "", fmt.Errorf("--http %q: %w (want 127.0.0.1:PORT, [::1]:PORT or unix:/path)", addr, err)
	}
	if host == "localhost" {
		addr = net.JoinHostPort("127.0.0.1", addr[strings.LastIndexByte(addr, ':')+1:])
	} else if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, "", fmt.Errorf("--http %q: refusing a non-loopback address; use 127.0.0.1:PORT, [::1]:PORT or unix:/path", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", err
	}
	return ln, "http://" + ln.Addr().String() + "/", nil
}

// listenUnix listens on a unix socket only its owner can use. A stale
// socket at path is replaced; anything else there is left alone.
func listenUnix(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("--http unix:%s: the path exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("--http unix:%s: another server answers there", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	}
	old := unix.Umask(0o177)
	ln, err := net.Listen("unix", path)
	unix.Umask(old)
	return ln, err
}

// privateSocket makes a directory only this user can enter, under
// $XDG_RUNTIME_DIR or else the temporary directory, and returns the path
// of the in-process daemon's socket in it, with the function that removes
// both. A session sees neither: its /tmp is its own, and no policy's
// default view has /run.
func privateSocket() (string, func(), error) {
	base := os.Getenv("XDG_RUNTIME_DIR")
	if !filepath.IsAbs(base) {
		base = ""
	}
	dir, err := os.MkdirTemp(base, "cordon-mcp-")
	if err != nil {
		return "", nil, fmt.Errorf("making the grant socket's directory: %w", err)
	}
	return filepath.Join(dir, "grants.sock"), func() { os.RemoveAll(dir) }, nil
}

// version is the module version cordon was built as, "(devel)" in a
// work tree.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
