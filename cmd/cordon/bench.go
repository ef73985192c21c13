package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/cordon-sandbox/cordon/bench"
)

// benchCommand is `cordon bench`: real agent traces replayed side by
// side bare, in cordon sessions (per call, warm library, daemon) and in
// bubblewrap, with latency, throughput, memory and fidelity figures.
func benchCommand() *cobra.Command {
	var (
		cfg                      bench.Config
		traces                   []string
		modes, sessions, workdir string
		workloads                string
		asJSON                   bool
	)
	cmd := &cobra.Command{
		Use:   "bench [flags]",
		Short: "Measure cordon's cost on real agent tool-call traces",
		Long: `Replay the recorded coding-agent traces (workloads/traces/*.jsonl) against the
real source trees prepare.sh builds, in order, in each mode: bare (directly on
the host), percall (a fresh session per call), library (one warm session),
daemon (one warm session through cordon serve) and bwrap (bubblewrap per call).
Reports per-call latency, the ratio to bare over the trace mix, what a trace
call adds over bare (the median, and the calls that gain most), the cost of the
smallest call and of a 16 KiB read, session open/close, throughput with
concurrent sessions, idle-session memory and how many sessions fit, and every
call whose result differs from bare's. Needs root the first time (prepare.sh
installs python3 and the projects' dependencies from Debian).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if cfg.Modes, err = bench.ParseModes(modes); err != nil {
				return err
			}
			if cfg.Sessions, err = parseInts(sessions); err != nil {
				return fmt.Errorf("--sessions: %w", err)
			}
			cfg.Workloads = bench.DefaultWorkloads()
			if workloads != "" {
				cfg.Workloads = bench.Workloads{Dir: workloads}
			}
			cfg.TraceFiles = traces
			cfg.WorkDir = workdir
			cfg.Command = strings.Join(os.Args, " ")
			if exe, err := os.Executable(); err == nil {
				cfg.Cordon = exe
			}
			cfg.Log = os.Stderr
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			rep, err := bench.Run(ctx, cfg)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			rep.WriteTable(os.Stdout)
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&asJSON, "json", false, "print one JSON object instead of tables")
	f.StringSliceVar(&traces, "trace", nil, "trace file(s) to replay (default: every trace in the workloads directory)")
	f.StringVar(&workloads, "workloads", "", "workloads directory with prepare.sh and traces/ (default: $CORDON_WORKLOADS or /work/shared/workloads)")
	f.StringVar(&modes, "modes", "bare,percall,library,daemon,bwrap", "modes to measure (bare is always measured)")
	f.IntVar(&cfg.Calls, "calls", 0, "replay only the first N calls of each trace (0: all)")
	f.IntVar(&cfg.Reps, "reps", 3, "replays of each trace per mode; per-call figures are medians over them")
	f.StringVar(&sessions, "sessions", "1,8,64", "concurrent sessions for the throughput figure (empty: skip)")
	f.IntVar(&cfg.ThroughputCalls, "throughput-calls", 20, "calls of its trace each throughput session replays (0: all)")
	f.IntVar(&cfg.Micro, "micro", 200, "number of true calls and 16 KiB reads per mode")
	f.IntVar(&cfg.Opens, "opens", 50, "sessions opened and closed for the open/close figure")
	f.IntVar(&cfg.IdleSessions, "idle", 10, "idle sessions whose memory is measured")
	f.IntVar(&cfg.MaxSessions, "max-sessions", 300, "cap of the idle-session capacity figure (negative: skip it)")
	f.StringVar(&workdir, "workdir", "", "directory caching the prepared trees (default: a temporary directory, removed)")
	return cmd
}

func parseInts(s string) ([]int, error) {
	out := []int{}
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}
