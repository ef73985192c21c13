package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cordon-sandbox/cordon/redteam"
)

// redteamCommand is `cordon redteam`: the red-team suite and its probe
// stage (the suite runs this binary inside sessions as `redteam probe`).
func redteamCommand() *cobra.Command {
	var (
		asJSON, list, verbose bool
		classes               string
		cases                 []string
		wrap                  string
	)
	cmd := &cobra.Command{
		Use:   "redteam",
		Short: "Run the red-team suite and print a scorecard",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if list {
				fmt.Print(redteam.Listing(redteam.Cases()))
				return nil
			}
			cfg := redteam.Config{Cases: cases, Wrap: strings.Fields(wrap), Verbose: verbose}
			if wrap != "" && len(cfg.Wrap) == 0 {
				return fmt.Errorf("--wrap: empty prefix")
			}
			for _, c := range strings.Split(classes, ",") {
				if c = strings.ToUpper(strings.TrimSpace(c)); c != "" {
					cfg.Classes = append(cfg.Classes, redteam.Class(c))
				}
			}
			if !asJSON {
				cfg.Progress = os.Stderr
			}
			rep, err := redteam.Run(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else {
				fmt.Print(rep.Scorecard())
			}
			if rep.Failed() {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	cmd.Flags().BoolVar(&list, "list", false, "print the case table as Markdown and exit")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "print what the sandbox returned to each case run (to stderr)")
	cmd.Flags().StringVar(&classes, "class", "", "classes to run, e.g. R,W,E,N,X,D")
	cmd.Flags().StringSliceVar(&cases, "case", nil, "case IDs to run")
	cmd.Flags().StringVar(&wrap, "wrap", "", "run the shell cases under this command prefix instead of cordon sessions")
	cmd.AddCommand(&cobra.Command{
		Use:                "probe NAME [ARG...]",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if code := redteam.ProbeMain(args); code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	})
	return cmd
}
