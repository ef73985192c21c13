// Command cordon runs coding-agent tool calls inside an enforced process
// and filesystem boundary. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/cordon-sandbox/cordon/sandbox"
)

// exitCordon is the exit status of cordon's own errors (as opposed to
// the exit status of the command it ran), as with env(1) and chroot(1).
const exitCordon = 125

// exitError carries an exit status out of a command without a message.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

func main() {
	sandbox.Init()
	root := &cobra.Command{
		Use:           "cordon",
		Short:         "A tool-execution boundary for autonomous coding agents",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(runCommand(), policyCommand(), auditCommand(), serveCommand(), sessionCommand(), execCommand(), grantCommand(), mcpCommand(), eventsCommand(), benchCommand(), redteamCommand())
	err := root.ExecuteContext(context.Background())
	var ee *exitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		os.Exit(ee.code)
	default:
		fmt.Fprintf(os.Stderr, "cordon: %s\n", oneLine(err.Error()))
		os.Exit(exitCordon)
	}
}

func oneLine(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			return s[:i] + " (…)"
		}
	}
	return s
}
