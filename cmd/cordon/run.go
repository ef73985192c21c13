package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/cordon-sandbox/cordon/events"
	"github.com/cordon-sandbox/cordon/policy"
	"github.com/cordon-sandbox/cordon/sandbox"
)

func runCommand() *cobra.Command {
	var (
		policyFile, workspace, eventsFile string
		timeout                           time.Duration
		asJSON                            bool
	)
	cmd := &cobra.Command{
		Use:   "run [flags] -- CMD [ARG...]",
		Short: "Run one command in a fresh session and tear it down",
		Long: `Run CMD in a fresh session with the policy's filesystem view, Landlock,
seccomp and limits, then tear the session down. stdin, stdout and stderr pass
through; cordon exits with CMD's exit status (128+N when a signal N killed it)
and with 125 for errors of its own.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pol, err := loadPolicy(policyFile)
			if err != nil {
				return err
			}
			if workspace == "" {
				if workspace, err = os.Getwd(); err != nil {
					return err
				}
			}
			bus, closeEvents, err := eventBus(eventsFile)
			if err != nil {
				return err
			}
			defer closeEvents()
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			req := sandbox.ExecRequest{Argv: args, Timeout: timeout}
			// stdin streams through unless it is a terminal (no TTY in
			// a session yet): the command then reads /dev/null.
			if !term.IsTerminal(int(os.Stdin.Fd())) {
				req.StdinReader = os.Stdin
			}
			if !asJSON {
				req.Output = func(stream string, data []byte) {
					if stream == "stderr" {
						os.Stderr.Write(data)
					} else {
						os.Stdout.Write(data)
					}
				}
			}
			res, err := sandbox.Run(ctx, sandbox.Options{Policy: pol, Workspace: workspace, Bus: bus}, req)
			if err != nil {
				return err
			}
			if asJSON {
				b, err := json.Marshal(res)
				if err != nil {
					return err
				}
				fmt.Println(string(b))
			} else {
				for _, d := range res.Denials {
					fmt.Fprintf(os.Stderr, "cordon: %s\n", describe(d))
				}
			}
			if res.ExitCode != 0 {
				return &exitError{code: res.ExitCode}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&policyFile, "policy", "", "policy file (default: the embedded default policy)")
	f.StringVar(&workspace, "workspace", "", "workspace directory (default: the current directory)")
	f.DurationVar(&timeout, "timeout", 0, "wall-clock timeout of the command (default: the policy's)")
	f.StringVar(&eventsFile, "events", "", "append the session's events to this JSONL file")
	f.BoolVar(&asJSON, "json", false, "print one JSON result object on stdout instead of passing output through")
	return cmd
}

// eventBus returns a bus that appends to the JSONL file at path, when
// path is set, and a function that closes the file.
func eventBus(path string) (*events.Bus, func() error, error) {
	bus := events.NewBus()
	if path == "" {
		return bus, func() error { return nil }, nil
	}
	sink, err := events.OpenJSONL(path)
	if err != nil {
		return nil, nil, err
	}
	bus.Attach(sink)
	return bus, sink.Close, nil
}

func loadPolicy(path string) (*policy.Policy, error) {
	p, _, err := readPolicy(path)
	return p, err
}

// readPolicy reads the policy file at path, or the default policy, and
// returns it with its text (whose hash the audit log records).
func readPolicy(path string) (*policy.Policy, []byte, error) {
	if path == "" {
		return policy.Default(), policy.DefaultYAML(), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("reading policy: %w", err)
	}
	p, err := policy.Parse(data, path)
	return p, data, err
}

// describe renders a deny or limit event as one line for a person.
func describe(e *events.Event) string {
	s := fmt.Sprintf("%s refused by %s (%s)", e.Op, e.Layer, e.Rule)
	if e.Kind == events.Limit {
		s = fmt.Sprintf("limit %s reached (%s)", e.Target, e.Rule)
	}
	if r, ok := e.Detail["reason"].(string); ok && r != "" {
		s += ": " + r
	}
	if e.Remedy != nil && e.Remedy.Capability != "" {
		s += "; capability " + e.Remedy.Capability + " would allow it"
	}
	return s
}
