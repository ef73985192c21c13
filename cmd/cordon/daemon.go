package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/cordon-sandbox/cordon/audit"
	"github.com/cordon-sandbox/cordon/daemon"
	"github.com/cordon-sandbox/cordon/events"
)

func serveCommand() *cobra.Command {
	var socket, policyFile, eventsFile, auditFile string
	cmd := &cobra.Command{
		Use:   "serve [--socket PATH] [--policy FILE] [--events FILE] [--audit FILE]",
		Short: "Run the daemon: sessions over an HTTP API on a unix socket",
		Long: `Run the daemon. It serves API v1 (docs/api.md) on a unix socket, by default
/run/cordon/cordon.sock for root and $XDG_RUNTIME_DIR/cordon.sock for a user.
A session belongs to the uid that created it (socket peer credentials). On
SIGTERM or SIGINT it closes every session and exits; on start it removes what
a crashed earlier daemon left behind.

Capability grants (docs/grants.md) are recorded in the audit log given with
--audit, opened at start; by default $XDG_STATE_HOME/cordon/audit.jsonl
(~/.local/state/cordon/audit.jsonl without it, /var/lib/cordon/audit.jsonl
for root), opened at the first grant request. One process at a time writes a
log: a request that finds the log taken fails, and says so.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			pol, text, err := readPolicy(policyFile)
			if err != nil {
				return err
			}
			log, err := openAudit(auditFile)
			if err != nil {
				return err
			}
			if log != nil {
				defer log.Close()
			}
			if socket == "" {
				if socket, err = daemon.DefaultSocket(); err != nil {
					return err
				}
			}
			bus, closeEvents, err := eventBus(eventsFile)
			if err != nil {
				return err
			}
			defer closeEvents()
			ln, err := daemon.Listen(socket)
			if err != nil {
				return err
			}
			if n, err := daemon.Sweep(socket); err != nil {
				fmt.Fprintf(os.Stderr, "cordon: removing what an earlier daemon left: %v\n", err)
			} else if n > 0 {
				fmt.Fprintf(os.Stderr, "cordon: removed %d sessions' cgroups left by an earlier daemon\n", n)
			}
			defer os.Remove(socket)
			srv := daemon.New(daemon.Options{Policy: pol, PolicyText: text, Bus: bus, Socket: socket, Audit: log, AuditPath: audit.DefaultPath()})
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			errc := make(chan error, 1)
			go func() { errc <- srv.Serve(ln) }()
			fmt.Fprintf(os.Stderr, "cordon: serving on %s\n", socket)
			select {
			case err := <-errc:
				return err
			case <-ctx.Done():
			}
			sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			return srv.Shutdown(sctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&socket, "socket", "", "unix socket to listen on (default: see above)")
	f.StringVar(&policyFile, "policy", "", "policy of sessions created without one (default: the embedded default policy)")
	f.StringVar(&eventsFile, "events", "", "append every session's events to this JSONL file")
	f.StringVar(&auditFile, "audit", "", "the audit log of capability grants (default: see above)")
	return cmd
}

// openAudit opens the audit log given with --audit; with none it
// returns nil, and the daemon opens audit.DefaultPath() when a grant is
// first requested, so that daemons and MCP servers that never grant
// anything do not contend for the default log.
func openAudit(path string) (*audit.Log, error) {
	if path == "" {
		return nil, nil
	}
	return audit.Open(path)
}

// clientFlags adds --socket to a client command and returns a function
// that makes the client.
func clientFlags(cmd *cobra.Command) func() (*daemon.Client, error) {
	socket := socketFlag(cmd)
	return func() (*daemon.Client, error) {
		s, err := socket()
		if err != nil {
			return nil, err
		}
		return daemon.NewClient(s), nil
	}
}

// socketFlag adds --socket to a client command and returns a function
// that says which socket to use.
func socketFlag(cmd *cobra.Command) func() (string, error) {
	var socket string
	cmd.Flags().StringVar(&socket, "socket", "", "the daemon's socket (default: $CORDON_SOCKET, or the daemon's default)")
	return func() (string, error) {
		if socket == "" {
			socket = os.Getenv("CORDON_SOCKET")
		}
		if socket == "" {
			return daemon.DefaultSocket()
		}
		return socket, nil
	}
}

func sessionCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "session", Short: "Create, list and remove the daemon's sessions"}

	var workspace, policyFile string
	create := &cobra.Command{
		Use:   "create [--workspace DIR] [--policy FILE]",
		Short: "Open a session and print its id",
		Args:  cobra.NoArgs,
	}
	createClient := clientFlags(create)
	create.Flags().StringVar(&workspace, "workspace", "", "workspace directory (default: the current directory)")
	create.Flags().StringVar(&policyFile, "policy", "", "policy file (default: the daemon's policy)")
	create.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := createClient()
		if err != nil {
			return err
		}
		if workspace == "" {
			workspace = "."
		}
		if workspace, err = filepath.Abs(workspace); err != nil {
			return err
		}
		req := daemon.CreateRequest{Workspace: workspace}
		if policyFile != "" {
			b, err := os.ReadFile(policyFile)
			if err != nil {
				return err
			}
			req.Policy = string(b)
		}
		id, err := c.Create(cmd.Context(), req)
		if err != nil {
			return err
		}
		fmt.Println(id)
		return nil
	}

	var asJSON bool
	list := &cobra.Command{Use: "list", Short: "List your sessions", Args: cobra.NoArgs}
	listClient := clientFlags(list)
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	list.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := listClient()
		if err != nil {
			return err
		}
		all, err := c.List(cmd.Context())
		if err != nil {
			return err
		}
		if asJSON {
			return json.NewEncoder(os.Stdout).Encode(all)
		}
		for _, s := range all {
			fmt.Printf("%s  %s  %s\n", s.ID, s.Created.Format(time.RFC3339), s.Workspace)
		}
		return nil
	}

	rm := &cobra.Command{Use: "rm ID...", Short: "Close sessions", Args: cobra.MinimumNArgs(1)}
	rmClient := clientFlags(rm)
	rm.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := rmClient()
		if err != nil {
			return err
		}
		for _, id := range args {
			if err := c.Remove(cmd.Context(), id); err != nil {
				return fmt.Errorf("%s: %w", id, err)
			}
		}
		return nil
	}
	cmd.AddCommand(create, list, rm)
	return cmd
}

func execCommand() *cobra.Command {
	var (
		session, cwd string
		asJSON, sin  bool
		timeout      time.Duration
	)
	cmd := &cobra.Command{
		Use:   "exec --session ID [--json] -- CMD [ARG...]",
		Short: "Run a command in a session of the daemon",
		Long: `Run CMD in a session of the daemon. Output passes through as it arrives and
cordon exits with CMD's exit status (128+N for signal N, 125 for its own
errors); --json prints the result object instead. With --stdin, standard input
is read to its end and given to the command.`,
		Args: cobra.MinimumNArgs(1),
	}
	newClient := clientFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&session, "session", "", "session id (required)")
	f.BoolVar(&asJSON, "json", false, "print one JSON result object on stdout")
	f.BoolVar(&sin, "stdin", false, "read standard input to its end and pass it to the command")
	f.StringVar(&cwd, "cwd", "", "working directory, relative to the workspace")
	f.DurationVar(&timeout, "timeout", 0, "wall-clock timeout (default: the policy's)")
	_ = cmd.MarkFlagRequired("session")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := newClient()
		if err != nil {
			return err
		}
		req := daemon.ExecRequest{Argv: args, Cwd: cwd, TimeoutMS: timeout.Milliseconds()}
		if sin && !term.IsTerminal(int(os.Stdin.Fd())) {
			b, err := io.ReadAll(io.LimitReader(os.Stdin, 8<<20+1))
			if err != nil {
				return err
			}
			if len(b) > 8<<20 {
				return fmt.Errorf("stdin is larger than %d bytes", 8<<20)
			}
			if utf8.Valid(b) {
				req.Stdin = string(b)
			} else {
				req.StdinBase64 = base64.StdEncoding.EncodeToString(b)
			}
		}
		var raw json.RawMessage
		if asJSON {
			raw, err = c.Exec(cmd.Context(), session, req)
		} else {
			raw, err = c.ExecStream(cmd.Context(), session, req, func(f daemon.OutputFrame) {
				os.Stdout.WriteString(f.Stdout)
				os.Stderr.WriteString(f.Stderr)
				for _, p := range []struct {
					b64 string
					w   *os.File
				}{{f.StdoutBase64, os.Stdout}, {f.StderrBase64, os.Stderr}} {
					if b, err := base64.StdEncoding.DecodeString(p.b64); err == nil {
						p.w.Write(b)
					}
				}
			})
		}
		if err != nil {
			return err
		}
		var res struct {
			ExitCode *int            `json:"exit_code"`
			Denials  []*events.Event `json:"denials"`
			Error    *daemon.ErrorDetail
		}
		if err := json.Unmarshal(raw, &res); err != nil {
			return fmt.Errorf("decoding the result: %w", err)
		}
		if res.Error != nil {
			return fmt.Errorf("%s (%s)", res.Error.Message, res.Error.Code)
		}
		if asJSON {
			fmt.Println(string(raw))
		} else {
			for _, d := range res.Denials {
				fmt.Fprintf(os.Stderr, "cordon: %s\n", describe(d))
			}
		}
		if res.ExitCode != nil && *res.ExitCode != 0 {
			return &exitError{code: *res.ExitCode}
		}
		return nil
	}
	return cmd
}

func eventsCommand() *cobra.Command {
	var session string
	cmd := &cobra.Command{
		Use:   "events [--session ID]",
		Short: "Follow the event stream of one session, or of all yours",
		Args:  cobra.NoArgs,
	}
	newClient := clientFlags(cmd)
	cmd.Flags().StringVar(&session, "session", "", "session id (default: all of your sessions)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := newClient()
		if err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		enc := json.NewEncoder(os.Stdout)
		return c.Events(ctx, session, func(e *events.Event) { _ = enc.Encode(e) })
	}
	return cmd
}
