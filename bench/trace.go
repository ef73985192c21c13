// Package bench measures what cordon costs on real coding-agent tool calls:
// it replays recorded agent traces against a real source tree in several
// modes (bare, a fresh session per call, a warm session through the
// library or the daemon, bubblewrap) side by side, and compares their
// results call by call.
package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The replay rules of the workloads README: every call is
// `/bin/bash -c COMMAND` in a fresh shell at the tree's root, with this
// PATH, pip told to stay offline, and a 60-second timeout.
const (
	TracePath    = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	CallTimeout  = 60 * time.Second
	testbed      = "/testbed"
	traceShell   = "/bin/bash"
	traceLineMax = 4 << 20
)

// TraceEnv is the environment a trace call gets in every mode, on top of
// the mode's own HOME.
func TraceEnv() map[string]string {
	return map[string]string{"PATH": TracePath, "PIP_NO_INDEX": "1"}
}

// Call is one recorded tool call of a trace.
type Call struct {
	Trace   string `json:"trace"`
	Step    int    `json:"step"`
	Kind    string `json:"kind"`
	Command string `json:"command"`
	// ReturnCode is what the command returned in the original run.
	ReturnCode int `json:"returncode"`
}

// Argv is the call as run against the tree at dir.
func (c Call) Argv(dir string) []string {
	return []string{traceShell, "-c", strings.ReplaceAll(c.Command, testbed, dir)}
}

// Trace is an agent's tool calls in execution order.
type Trace struct {
	ID    string
	Path  string
	Calls []Call
}

// LoadTrace reads a JSONL trace file.
func LoadTrace(path string) (*Trace, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading trace: %w", err)
	}
	defer f.Close()
	t := &Trace{ID: strings.TrimSuffix(filepath.Base(path), ".jsonl"), Path: path}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), traceLineMax)
	for line := 1; sc.Scan(); line++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var c Call
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			return nil, fmt.Errorf("trace %s line %d: %w", path, line, err)
		}
		if c.Kind != "" && c.Kind != "bash" {
			return nil, fmt.Errorf("trace %s line %d: kind %q is not bash", path, line, c.Kind)
		}
		if c.Command == "" {
			return nil, fmt.Errorf("trace %s line %d: no command", path, line)
		}
		t.Calls = append(t.Calls, c)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading trace %s: %w", path, err)
	}
	if len(t.Calls) == 0 {
		return nil, fmt.Errorf("trace %s has no calls", path)
	}
	return t, nil
}

// Head returns the trace cut to its first n calls (n <= 0: all).
func (t *Trace) Head(n int) *Trace {
	if n <= 0 || n >= len(t.Calls) {
		return t
	}
	c := *t
	c.Calls = t.Calls[:n]
	return &c
}
