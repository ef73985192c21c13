package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cordon-sandbox/cordon/audit"
)

func auditCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Check the grant audit log"}
	var head string
	verify := &cobra.Command{
		Use:   "verify FILE",
		Short: "Verify the audit log's hash chain; exit 1 naming the first broken record",
		Long: `Verify reads a grant audit log (by default at
$XDG_STATE_HOME/cordon/audit.jsonl, ~/.local/state/cordon/audit.jsonl
without it, /var/lib/cordon/audit.jsonl for root) and checks that every
record follows on from the one before. It prints "ok: N records, head
HASH", or the first broken record as FILE:LINE and exits 1.

The chain alone cannot show that records were removed from the end of the
log, or that the last one was edited. Keep the head it prints somewhere
else and pass it later with --head: the log must then still contain that
record, and everything up to it is intact.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if head != "" && (len(head) != 64 || strings.Trim(head, "0123456789abcdef") != "") {
				return fmt.Errorf("--head %q: want the 64 lowercase hex digits verify printed", head)
			}
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			h, err := audit.Check(f, head)
			var verr *audit.VerifyError
			switch {
			case errors.As(err, &verr):
				fmt.Fprintf(os.Stderr, "%s:%d: record seq %d: %s\n", args[0], verr.Line, verr.Seq, verr.Reason)
				return &exitError{code: 1}
			case errors.Is(err, audit.ErrHeadNotFound):
				fmt.Fprintf(os.Stderr, "%s: %v\n", args[0], err)
				return &exitError{code: 1}
			case err != nil:
				return err
			}
			fmt.Printf("ok: %d records, head %s\n", h.Seq, h.Hash)
			return nil
		},
	}
	verify.Flags().StringVar(&head, "head", "", "a head printed earlier, which the log must still contain")
	cmd.AddCommand(verify)
	return cmd
}
