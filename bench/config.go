package bench

import "io"

// Config says what a run measures. The zero value of every field but
// Workloads has a default (see withDefaults).
type Config struct {
	Workloads Workloads
	// TraceFiles are the traces to replay; empty means every trace.
	TraceFiles []string
	// Modes to measure; bare is always measured.
	Modes []Mode
	// Calls cuts every trace to its first Calls calls (0: all).
	Calls int
	// Reps is how often each trace is replayed per mode (default 3).
	Reps int
	// Sessions are the concurrency levels of the throughput figure
	// (default 1, 8, 64); ThroughputCalls cuts each session's trace.
	Sessions        []int
	ThroughputCalls int
	// Micro is the number of `true` calls and 16 KiB reads (default 200).
	Micro int
	// Opens is the number of session opens timed (default 50).
	Opens int
	// IdleSessions is the number of idle sessions whose memory is
	// measured (default 10).
	IdleSessions int
	// MaxSessions caps the capacity figure (default 300; negative: skip).
	MaxSessions int
	// WorkDir holds prepared trees and copies; empty means a temporary
	// directory removed at the end.
	WorkDir string
	// Cordon is the cordon binary for the daemon mode ("" when unknown).
	Cordon string
	// Command is the command line, recorded in the report.
	Command string
	// Log receives progress lines (nil: none).
	Log io.Writer
}
