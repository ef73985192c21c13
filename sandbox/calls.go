package sandbox

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cordon-sandbox/cordon/events"
	"github.com/cordon-sandbox/cordon/internal/proto"
)

// ExecRequest is one command to run in the session.
type ExecRequest struct {
	// Argv is the command and its arguments. Exactly one of Argv and
	// Command is set.
	Argv []string
	// Command is shell text, run as /bin/sh -c Command.
	Command string
	Stdin   []byte
	// StdinReader, when set, is streamed to the command's stdin as it
	// is read (Stdin is then ignored), and closed at its EOF. Reading
	// stops when the call ends.
	StdinReader io.Reader
	// Env adds to (or overrides) the session's base environment.
	Env map[string]string
	// Cwd is the working directory relative to the workspace.
	Cwd string
	// Timeout overrides the policy's per-call timeout when positive.
	Timeout time.Duration
	// MaxOutput caps the stdout+stderr bytes kept (policy's cap if 0).
	MaxOutput int64
	// Output, when set, receives output as it arrives ("stdout" or
	// "stderr"); the result then carries none.
	Output func(stream string, data []byte)
}

// ExecResult is the outcome of a command. Its JSON form is the contract
// of `cordon run --json` and the daemon's exec endpoint.
type ExecResult struct {
	Call      string
	ExitCode  int
	Signal    string // "" when the command was not killed by a signal
	Stdout    []byte
	Stderr    []byte
	Truncated bool
	TimedOut  bool
	// Limit names the limit that ended or cut the call: "timeout",
	// "output", "memory", "pids", "tmp", "home", "disk_free",
	// "disk_free_inodes"; "" when none.
	Limit string
	// Denials are the deny and limit events of the call, identical ones
	// folded into one with detail.count.
	Denials []*events.Event
	// Explanation is Denials as one paragraph for the agent
	// (events.Explain): what was refused, why, and the capability to
	// request; "" when the call hit nothing.
	Explanation string
	Timing      map[string]int64
}

type execJSON struct {
	Call         string           `json:"call"`
	ExitCode     int              `json:"exit_code"`
	Signal       *string          `json:"signal"`
	Stdout       string           `json:"stdout"`
	Stderr       string           `json:"stderr"`
	StdoutBase64 string           `json:"stdout_base64,omitempty"`
	StderrBase64 string           `json:"stderr_base64,omitempty"`
	Truncated    bool             `json:"truncated"`
	TimedOut     bool             `json:"timed_out"`
	Limit        string           `json:"limit,omitempty"`
	Denials      []*events.Event  `json:"denials"`
	Explanation  string           `json:"explanation"`
	Timing       map[string]int64 `json:"timing"`
}

// MarshalJSON encodes the result. Output that is valid UTF-8 is a plain
// string; otherwise the string has each invalid byte replaced by U+FFFD
// and stdout_base64 (or stderr_base64) carries the exact bytes.
func (r *ExecResult) MarshalJSON() ([]byte, error) {
	j := execJSON{
		Call: r.Call, ExitCode: r.ExitCode, Truncated: r.Truncated, TimedOut: r.TimedOut,
		Limit: r.Limit, Denials: r.Denials, Explanation: r.Explanation, Timing: r.Timing,
	}
	if j.Denials == nil {
		j.Denials = []*events.Event{}
	}
	if r.Signal != "" {
		sig := r.Signal
		j.Signal = &sig
	}
	j.Stdout, j.StdoutBase64 = textOf(r.Stdout)
	j.Stderr, j.StderrBase64 = textOf(r.Stderr)
	return json.Marshal(j)
}

func textOf(b []byte) (text, b64 string) {
	if utf8.Valid(b) {
		return string(b), ""
	}
	return strings.ToValidUTF8(string(b), "\uFFFD"), base64.StdEncoding.EncodeToString(b)
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// FileInfo describes a file in the workspace.
type FileInfo = proto.FileInfo
