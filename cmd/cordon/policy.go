package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/cordon-sandbox/cordon/policy"
)

func policyCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Print or check policies"}
	cmd.AddCommand(&cobra.Command{
		Use:   "default",
		Short: "Print the embedded default policy",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := os.Stdout.Write(policy.DefaultYAML())
			return err
		},
	}, &cobra.Command{
		Use:   "check FILE",
		Short: "Validate a policy file; errors name the line",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			p, err := policy.Parse(data, args[0])
			if err == nil {
				err = p.Validate()
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return &exitError{code: 1}
			}
			fmt.Printf("%s: ok\n", args[0])
			return nil
		},
	})
	return cmd
}
