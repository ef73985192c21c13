package bench

import (
	"fmt"
	"strings"
)

// Mode is one way of running a tool call.
type Mode string

const (
	// ModeBare runs the command directly, same directory and environment.
	ModeBare Mode = "bare"
	// ModePerCall opens a fresh cordon session per call (sandbox.Run).
	ModePerCall Mode = "percall"
	// ModeLibrary uses one warm session through the Go library.
	ModeLibrary Mode = "library"
	// ModeDaemon uses one warm session through `cordon serve`'s HTTP API.
	ModeDaemon Mode = "daemon"
	// ModeBwrap runs each call in Debian's bubblewrap.
	ModeBwrap Mode = "bwrap"
)

// AllModes is every mode, bare first.
var AllModes = []Mode{ModeBare, ModePerCall, ModeLibrary, ModeDaemon, ModeBwrap}

// ParseModes parses a comma-separated list; bare is always included
// (every figure is relative to it) and comes first.
func ParseModes(s string) ([]Mode, error) {
	out := []Mode{ModeBare}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" || Mode(f) == ModeBare {
			continue
		}
		ok := false
		for _, m := range AllModes {
			if Mode(f) == m {
				ok = true
			}
		}
		if !ok {
			return nil, fmt.Errorf("unknown mode %q (modes: bare, percall, library, daemon, bwrap)", f)
		}
		dup := false
		for _, m := range out {
			dup = dup || m == Mode(f)
		}
		if !dup {
			out = append(out, Mode(f))
		}
	}
	return out, nil
}

// sandboxed reports whether the mode is a cordon session.
func (m Mode) cordon() bool { return m == ModePerCall || m == ModeLibrary || m == ModeDaemon }

// Outcome is what a call returned.
type Outcome struct {
	ExitCode  int
	Stdout    []byte
	Stderr    []byte
	TimedOut  bool
	Truncated bool
	Denials   int
	// Timing is the session's own breakdown of the call (cordon modes).
	Timing map[string]int64
}

// sandboxHome is the HOME a cordon session (and the bwrap mode) has.
const sandboxHome = "/home/cordon"
