package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cordon-sandbox/cordon/daemon"
)

// Exit statuses of `cordon grant request`.
const (
	exitGrantDenied  = 1 // denied, or ended before it was granted
	exitGrantPending = 2 // still waiting for a person
)

func grantCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "grant",
		Short: "Request, list and decide capability grants of the daemon's sessions",
		Long: `Capability grants (docs/grants.md): a session asks for a capability with a
reason, its policy grants it, refuses it, or leaves it to a person, who
approves or denies it here. Every step is in the daemon's audit log.`,
	}
	cmd.AddCommand(grantRequestCommand(), grantListCommand(),
		grantDecideCommand("approve", "Approve a pending request"),
		grantDecideCommand("deny", "Deny a pending request"),
		grantDecideCommand("revoke", "Withdraw a granted capability"))
	return cmd
}

func grantRequestCommand() *cobra.Command {
	var (
		session, reason, scope string
		ttl, wait              time.Duration
		asJSON                 bool
	)
	cmd := &cobra.Command{
		Use:   "request --session ID CAPABILITY --reason TEXT [--scope call|session|ttl] [--ttl DURATION] [--wait DURATION]",
		Short: "Ask for a capability for a session",
		Long: `Ask for a capability (net.connect:HOST[:PORT], fs.read:PATH, fs.write:PATH,
proc.ptrace, limit.memory:SIZE, limit.pids:N, limit.timeout:DURATION,
limit.disk_free:SIZE, limit.disk_free_inodes:N) for a session of the daemon, and print the grant. The scope is how long a grant
lasts: the next command (call, the default), the session, or --ttl (scope
ttl). With --wait it waits that long for a person to decide a pending
request.

Exit status: 0 granted, 1 denied, 2 still pending, 125 an error.`,
		Args: cobra.ExactArgs(1),
	}
	socket := socketFlag(cmd)
	f := cmd.Flags()
	f.StringVar(&session, "session", "", "session id (required)")
	f.StringVar(&reason, "reason", "", "what the capability is for, for the person deciding (required)")
	f.StringVar(&scope, "scope", "", `how long a grant lasts: "call", "session" or "ttl" (default "call", "ttl" with --ttl)`)
	f.DurationVar(&ttl, "ttl", 0, "how long a grant lasts, in whole seconds (scope ttl)")
	f.DurationVar(&wait, "wait", 0, "wait this long for a person to decide a pending request")
	f.BoolVar(&asJSON, "json", false, "print the grant as JSON")
	_ = cmd.MarkFlagRequired("session")
	_ = cmd.MarkFlagRequired("reason")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		sock, err := socket()
		if err != nil {
			return err
		}
		if scope == "" {
			scope = "call"
			if ttl != 0 {
				scope = "ttl"
			}
		}
		if ttl%time.Second != 0 || ttl < 0 {
			return fmt.Errorf("--ttl %s: a whole number of seconds", ttl)
		}
		c := daemon.NewClient(sock)
		g, err := c.RequestGrant(cmd.Context(), session, daemon.GrantRequest{
			Capability: args[0], Reason: reason, Scope: scope, TTLSeconds: int64(ttl / time.Second),
		})
		if err != nil {
			return err
		}
		for deadline := time.Now().Add(wait); g.State == "pending" && time.Until(deadline) > 0; {
			if g, err = c.Grant(cmd.Context(), g.ID, min(time.Until(deadline), daemon.MaxWait)); err != nil {
				return err
			}
		}
		if err := printGrants(os.Stdout, asJSON, g); err != nil {
			return err
		}
		switch g.State {
		case "granted":
			return nil
		case "pending":
			fmt.Fprintf(os.Stderr, "cordon: waiting for a person: cordon grant approve %s --socket %s (or deny)\n", g.ID, sock)
			return &exitError{code: exitGrantPending}
		}
		return &exitError{code: exitGrantDenied}
	}
	return cmd
}

func grantListCommand() *cobra.Command {
	var state, session string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list [--state pending] [--session ID] [--json]",
		Short: "List the grants of your sessions (root: of every session)",
		Args:  cobra.NoArgs,
	}
	newClient := clientFlags(cmd)
	cmd.Flags().StringVar(&state, "state", "", "only grants in this state: pending, granted, denied, expired, revoked, used")
	cmd.Flags().StringVar(&session, "session", "", "only the grants of this session")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := newClient()
		if err != nil {
			return err
		}
		all, err := c.Grants(cmd.Context(), session, state)
		if err != nil {
			return err
		}
		if asJSON {
			return json.NewEncoder(os.Stdout).Encode(all)
		}
		return printGrants(os.Stdout, false, all...)
	}
	return cmd
}

func grantDecideCommand(verb, short string) *cobra.Command {
	var note string
	var asJSON bool
	cmd := &cobra.Command{Use: verb + " ID [--note TEXT]", Short: short, Args: cobra.ExactArgs(1)}
	newClient := clientFlags(cmd)
	cmd.Flags().StringVar(&note, "note", "", "a note for the audit log and the agent")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the grant as JSON")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := newClient()
		if err != nil {
			return err
		}
		g, err := c.Decide(cmd.Context(), args[0], verb, note)
		if err != nil {
			return err
		}
		return printGrants(os.Stdout, asJSON, g)
	}
	return cmd
}

// printGrants prints grants as a table (or one JSON object, for one
// grant with asJSON). Every text field was checked by the broker to be
// printable, so a reason cannot carry terminal escapes.
func printGrants(w io.Writer, asJSON bool, gs ...*daemon.Grant) error {
	if asJSON && len(gs) == 1 {
		return json.NewEncoder(w).Encode(gs[0])
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tCAPABILITY\tSCOPE\tSESSION\tDECIDED BY\tREASON")
	for _, g := range gs {
		scope := g.Scope
		if g.TTLSeconds > 0 {
			scope += " " + (time.Duration(g.TTLSeconds) * time.Second).String()
		}
		by := g.DecidedBy
		if g.EndedBy != "" {
			by += ", ended by " + g.EndedBy
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", g.ID, g.State, g.Capability, scope, g.Session, by, strconv.Quote(g.Reason))
		if g.Note != "" {
			fmt.Fprintf(tw, "\t\t\t\t\tnote:\t%s\n", strings.TrimSpace(strconv.Quote(g.Note)))
		}
	}
	return tw.Flush()
}
