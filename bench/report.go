package bench

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// Report is everything one `cordon bench` run measured.
type Report struct {
	Date       string       `json:"date"`
	Command    string       `json:"command"`
	Machine    Machine      `json:"machine"`
	Traces     []string     `json:"traces"`
	Reps       int          `json:"reps"`
	Modes      []ModeReport `json:"modes"`
	Session    *OpenClose   `json:"session_open_close,omitempty"`
	Throughput []Throughput `json:"throughput,omitempty"`
	Memory     *Memory      `json:"memory,omitempty"`
	Capacity   *Capacity    `json:"capacity,omitempty"`
	Fidelity   Fidelity     `json:"fidelity"`
}

// Machine describes where the figures were measured.
type Machine struct {
	CPUs     int    `json:"nproc"`
	CPU      string `json:"cpu"`
	Kernel   string `json:"kernel"`
	OS       string `json:"os"`
	MemoryMB int64  `json:"memory_mb"`
	Go       string `json:"go"`
	Root     bool   `json:"root"`
}

// ModeReport holds one mode's figures.
type ModeReport struct {
	Mode Mode `json:"mode"`
	// Unavailable says why the mode was not measured ("" when it was).
	Unavailable string `json:"unavailable,omitempty"`
	// Calls is the distribution over every trace call of every repetition.
	Calls Dist `json:"calls"`
	// SumMedianMS is the sum over the trace calls of each call's median.
	SumMedianMS float64 `json:"sum_median_ms"`
	// Ratio is SumMedianMS over bare's.
	Ratio float64 `json:"ratio_to_bare"`
	// PerTrace is SumMedianMS per trace.
	PerTrace map[string]float64 `json:"per_trace_sum_median_ms"`
	// Errors counts calls that returned no result at all.
	Errors int `json:"errors"`
	// True is the `/bin/true` call; TrueAddedUS its median minus bare's.
	True        *Dist    `json:"true,omitempty"`
	TrueAddedUS *float64 `json:"true_added_us,omitempty"`
	// Read16K is a 16 KiB file read through the mode's file tool.
	Read16K     *Dist    `json:"read_16k,omitempty"`
	ReadAddedUS *float64 `json:"read_16k_added_us,omitempty"`
	// TrueTiming is the median of each timing the session reports for
	// the `true` call (µs): where a warm call's time goes.
	TrueTiming map[string]int64 `json:"true_timing_us,omitempty"`
	// TrueCost is, per tier of the call path (host, daemon, supervisor,
	// executor), the CPU time and context switches one `true` call costs:
	// the mean over the second half of the timed calls. Modes that open a
	// session per call report the host alone.
	TrueCost map[string]StageCost `json:"true_cost,omitempty"`
	// AddedMS is the median over the trace calls of each call's median
	// minus bare's median of the same call: what a typical call pays.
	AddedMS *float64 `json:"call_added_ms,omitempty"`
	// MostAdded are the trace calls whose median gained most over bare's,
	// largest first: where a mode's share of the trace mix goes.
	MostAdded []AddedCall `json:"most_added,omitempty"`
}

// AddedCall is one trace call's median in a mode against bare's.
type AddedCall struct {
	Trace   string  `json:"trace"`
	Step    int     `json:"step"`
	Command string  `json:"command"`
	BareMS  float64 `json:"bare_ms"`
	ModeMS  float64 `json:"mode_ms"`
	AddedMS float64 `json:"added_ms"`
}

// StageCost is what one tier of the call path spends per call: CPU time
// on all its threads and the times its threads were switched out (each a
// wake-up to come back from). The command's own processes are not in it.
type StageCost struct {
	CPUUS    float64 `json:"cpu_us"`
	Switches float64 `json:"switches"`
}

// Tiers of the call path, as costs name them.
const (
	tierHost       = "host"       // this process: the library, or the harness for bare
	tierDaemon     = "daemon"     // cordon serve, started by the daemon mode
	tierSupervisor = "supervisor" // a session's PID 1
	tierExecutor   = "executor"   // a session's executor
)

// OpenClose is session open and close latency (library mode).
type OpenClose struct {
	Open  Dist `json:"open"`
	Close Dist `json:"close"`
}

// Throughput is calls per second with N concurrent sessions.
type Throughput struct {
	Mode        Mode    `json:"mode"`
	Sessions    int     `json:"sessions"`
	Calls       int     `json:"calls"`
	Errors      int     `json:"errors"`
	Seconds     float64 `json:"seconds"`
	CallsPerSec float64 `json:"calls_per_sec"`
	Error       string  `json:"error,omitempty"`
}

// Memory is what an idle session costs (its supervisor and executor).
type Memory struct {
	Sessions      int              `json:"sessions"`
	PssKBPer      int64            `json:"pss_kb_per_session"`
	RssKBPer      int64            `json:"rss_kb_per_session"`
	ProcsPer      float64          `json:"processes_per_session"`
	ByStage       map[string]int64 `json:"pss_kb_by_stage_per_session"`
	HarnessDeltKB int64            `json:"harness_rss_delta_kb_per_session"`
}

// Capacity is how many idle sessions this machine held open at once.
type Capacity struct {
	Cap       int     `json:"cap"`
	Opened    int     `json:"opened"`
	StoppedBy string  `json:"stopped_by"`
	LastOpen  float64 `json:"last_open_ms"`
	PssMBAll  int64   `json:"pss_mb_all_sessions"`
	CloseAllS float64 `json:"close_all_s"`
}

// Fidelity lists the trace calls whose result differs from bare's.
type Fidelity struct {
	Normalised  []string     `json:"normalised"`
	Compared    int          `json:"compared"`
	Differences []Difference `json:"differences"`
}

// Difference is one call whose outcome differs between bare and a mode.
type Difference struct {
	Mode    Mode   `json:"mode"`
	Trace   string `json:"trace"`
	Step    int    `json:"step"`
	Command string `json:"command"`
	// BareUnstable: bare's own repetitions disagreed on this call.
	BareUnstable bool        `json:"bare_unstable"`
	Bare         CallOutcome `json:"bare"`
	Other        CallOutcome `json:"other"`
}

// CallOutcome is a call's result as compared (normalised output).
type CallOutcome struct {
	ExitCode int    `json:"exit_code"`
	TimedOut bool   `json:"timed_out,omitempty"`
	Denials  int    `json:"denials,omitempty"`
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
	Error    string `json:"error,omitempty"`
}

func (c CallOutcome) same(o CallOutcome) bool {
	return c.ExitCode == o.ExitCode && c.TimedOut == o.TimedOut && c.Stdout == o.Stdout && c.Stderr == o.Stderr && c.Error == o.Error
}

// WriteTable writes the report for a person.
func (r *Report) WriteTable(w io.Writer) {
	m := r.Machine
	fmt.Fprintf(w, "machine: %d CPUs (%s), %d MiB, %s, %s, %s, root=%v\n", m.CPUs, m.CPU, m.MemoryMB, m.OS, m.Kernel, m.Go, m.Root)
	fmt.Fprintf(w, "traces: %s; %d repetitions\n\n", strings.Join(r.Traces, ", "), r.Reps)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\tcalls\tp50 ms\tp99 ms\tsum of medians ms\tvs bare\ttrue µs\t+µs\tread 16K µs\t+µs\terrors\t")
	for _, mr := range r.Modes {
		if mr.Unavailable != "" {
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.1f\t%.0f\t%.3f×\t%s\t%s\t%s\t%s\t%d\t\n", mr.Mode, mr.Calls.N, mr.Calls.P50MS, mr.Calls.P99MS,
			mr.SumMedianMS, mr.Ratio, distUS(mr.True), addUS(mr.TrueAddedUS), distUS(mr.Read16K), addUS(mr.ReadAddedUS), mr.Errors)
	}
	tw.Flush()
	for _, mr := range r.Modes {
		if mr.Unavailable != "" {
			fmt.Fprintf(w, "%s: not available: %s\n", mr.Mode, mr.Unavailable)
		}
		if len(mr.TrueTiming) > 0 {
			fmt.Fprintf(w, "%s: `true` as the session times it (µs, medians): %s\n", mr.Mode, timingLine(mr.TrueTiming))
		}
		if len(mr.TrueCost) > 0 {
			fmt.Fprintf(w, "%s: per `true` call, CPU µs / context switches: %s\n", mr.Mode, costLine(mr.TrueCost))
		}
	}
	for _, mr := range r.Modes {
		if mr.AddedMS == nil {
			continue
		}
		fmt.Fprintf(w, "%s: a trace call's median over bare's, median of all calls: %+.2f ms; most added:\n", mr.Mode, *mr.AddedMS)
		for _, a := range mr.MostAdded {
			fmt.Fprintf(w, "    %+8.1f ms  %.1f → %.1f ms  %s step %d: %s\n", a.AddedMS, a.BareMS, a.ModeMS, a.Trace, a.Step, clip(a.Command, 100))
		}
	}
	if len(r.Modes) > 0 && len(r.Traces) > 1 {
		fmt.Fprintln(w, "\nper trace, sum of per-call medians (ms):")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprint(tw, "trace\t")
		for _, mr := range r.Modes {
			if mr.Unavailable == "" {
				fmt.Fprintf(tw, "%s\t", mr.Mode)
			}
		}
		fmt.Fprintln(tw)
		for _, t := range r.Traces {
			fmt.Fprintf(tw, "%s\t", t)
			for _, mr := range r.Modes {
				if mr.Unavailable == "" {
					fmt.Fprintf(tw, "%.0f\t", mr.PerTrace[t])
				}
			}
			fmt.Fprintln(tw)
		}
		tw.Flush()
	}
	if s := r.Session; s != nil {
		fmt.Fprintf(w, "\nsession open (library): p50 %.1f ms, p99 %.1f ms; close: p50 %.1f ms, p99 %.1f ms (n=%d)\n",
			s.Open.P50MS, s.Open.P99MS, s.Close.P50MS, s.Close.P99MS, s.Open.N)
	}
	if len(r.Throughput) > 0 {
		fmt.Fprintln(w, "\nthroughput (each session replays a trace):")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "mode\tsessions\tcalls\tseconds\tcalls/s\terrors\t")
		for _, t := range r.Throughput {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f\t%.1f\t%d\t%s\n", t.Mode, t.Sessions, t.Calls, t.Seconds, t.CallsPerSec, t.Errors, t.Error)
		}
		tw.Flush()
	}
	if m := r.Memory; m != nil {
		fmt.Fprintf(w, "\nidle session memory (%d sessions): Pss %d KiB, Rss %d KiB per session (%.1f processes; Pss by stage %v); harness Rss +%d KiB per session\n",
			m.Sessions, m.PssKBPer, m.RssKBPer, m.ProcsPer, m.ByStage, m.HarnessDeltKB)
	}
	if c := r.Capacity; c != nil {
		fmt.Fprintf(w, "idle sessions held at once: %d of cap %d (stopped by: %s; last open %.1f ms; Pss of all %d MiB; closing all took %.1f s)\n",
			c.Opened, c.Cap, c.StoppedBy, c.LastOpen, c.PssMBAll, c.CloseAllS)
	}
	f := r.Fidelity
	fmt.Fprintf(w, "\nfidelity: %d calls compared with bare, %d differ (normalised: %s)\n", f.Compared, len(f.Differences), strings.Join(f.Normalised, "; "))
	for _, d := range f.Differences {
		unstable := ""
		if d.BareUnstable {
			unstable = " [bare itself unstable across repetitions]"
		}
		fmt.Fprintf(w, "- %s %s step %d%s: %s\n    bare:  %s\n    %s: %s\n", d.Mode, d.Trace, d.Step, unstable, clip(d.Command, 160),
			d.Bare.brief(), d.Mode, d.Other.brief())
	}
}

func (c CallOutcome) brief() string {
	s := fmt.Sprintf("exit %d", c.ExitCode)
	if c.TimedOut {
		s += " (timed out)"
	}
	if c.Denials > 0 {
		s += fmt.Sprintf(" (%d denials)", c.Denials)
	}
	if c.Error != "" {
		s += " error: " + c.Error
	}
	return s + fmt.Sprintf("; stdout %q; stderr %q", clip(c.Stdout, 300), clip(c.Stderr, 300))
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func distUS(d *Dist) string {
	if d == nil {
		return "—"
	}
	return fmt.Sprintf("%.0f", d.P50MS*1000)
}

func addUS(v *float64) string {
	if v == nil {
		return "—"
	}
	return fmt.Sprintf("%+.0f", *v)
}

func timingLine(t map[string]int64) string {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", strings.TrimSuffix(k, "_us"), t[k])
	}
	return b.String()
}

// spent reports that a tier did anything for the calls: a tier that
// only exists meanwhile (the daemon during bare's calls) rounds to zero.
func (c StageCost) spent() bool { return c.CPUUS >= 0.5 || c.Switches >= 0.05 }

// costLine lists tiers' costs in the order a call passes them.
func costLine(c map[string]StageCost) string {
	var parts []string
	for _, t := range []string{tierHost, tierDaemon, tierSupervisor, tierExecutor} {
		if v, ok := c[t]; ok && v.spent() {
			parts = append(parts, fmt.Sprintf("%s %.0f / %.1f", t, v.CPUUS, v.Switches))
		}
	}
	return strings.Join(parts, ", ")
}
