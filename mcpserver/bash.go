package mcpserver

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/cordon-sandbox/cordon/events"
	"github.com/cordon-sandbox/cordon/sandbox"
)

type bashArgs struct {
	Command  string  `json:"command" jsonschema:"Shell text, run as /bin/sh -c COMMAND in the sandbox."`
	TimeoutS float64 `json:"timeout_s,omitempty" jsonschema:"Wall-clock timeout in seconds. It can shorten the session's call timeout, not extend it."`
	Cwd      string  `json:"cwd,omitempty" jsonschema:"Working directory, relative to the workspace (or an absolute path inside it). Default: the workspace."`
}

// maxCommand is the longest command text: the kernel's limit on one
// argument string (MAX_ARG_STRLEN, 32 pages), less its NUL.
const maxCommand = 32*4096 - 1

const bashDescription = `Run a shell command in the sandboxed workspace and return its exit code, stdout and stderr.

The command runs as /bin/sh -c COMMAND inside a cordon session: the workspace is read-write, system directories are read-only, /tmp and $HOME are private to the session, outbound network access is limited by policy (it may be unavailable), and calls have time, memory and output limits. Each call starts a fresh shell in the workspace (or cwd), so cd and variables do not carry over to the next call; files do.

When cordon refuses something the command tried (a system call, a file, a host, a limit), the result says what was refused, by which rule, and which capability could allow it, and marks the result as an error if the command failed because of it. A plain non-zero exit is not an error of the tool: read the exit code and stderr.

Output beyond a cap is dropped (the result says so): prefer commands that print what you need (grep, head, tail) over huge dumps. Long-running commands report their output so far as progress when the client asks for progress.`

func (t *tools) addBash(s *mcp.Server) {
	addTool(s, &mcp.Tool{
		Name: "bash", Title: "Run a shell command (sandboxed)", Description: bashDescription,
		Annotations: &mcp.ToolAnnotations{Title: "Run a shell command (sandboxed)", DestructiveHint: boolPtr(true), OpenWorldHint: boolPtr(true)},
	}, func(s *jsonschema.Schema) {
		s.Properties["command"].MinLength = intPtr(1)
		s.Properties["command"].MaxLength = intPtr(maxCommand)
		s.Properties["timeout_s"].ExclusiveMinimum = floatPtr(0)
	}, t.bash)
}

func (t *tools) bash(ctx context.Context, req *mcp.CallToolRequest, in bashArgs) (*mcp.CallToolResult, error) {
	if strings.IndexByte(in.Command, 0) >= 0 {
		return nil, badArgs("command contains a NUL byte")
	}
	sess, failed := t.session(ctx, req)
	if failed != nil {
		return failed, nil
	}
	var notes []string
	timeout := time.Duration(0)
	if in.TimeoutS > 0 {
		limit := sess.CallTimeout()
		timeout = time.Duration(math.Min(in.TimeoutS, limit.Seconds()) * float64(time.Second))
		if in.TimeoutS > limit.Seconds() {
			notes = append(notes, fmt.Sprintf("timeout_s %g is above the session's call timeout; the call had %s.", in.TimeoutS, limit))
		}
		timeout = max(timeout, time.Millisecond)
	}
	er := sandbox.ExecRequest{Command: in.Command, Cwd: in.Cwd, Timeout: timeout, MaxOutput: t.opts.MaxOutput}
	var p *progress
	if tok := req.Params.GetProgressToken(); tok != nil {
		p = newProgress(ctx, req.Session, tok, t.opts)
		er.Output = p.output
	}
	res, err := sess.Exec(ctx, er)
	if p != nil {
		stdout, stderr := p.stop()
		if res != nil {
			res.Stdout, res.Stderr = stdout, stderr
		}
	}
	if err != nil {
		return callError(err)
	}
	return bashResult(res, notes), nil
}

// bashResult is a finished command's result. It is an error result
// when the command failed and cordon refused or stopped something in
// it: a plain non-zero exit is the command's answer, not a failure of
// the tool.
func bashResult(res *sandbox.ExecResult, notes []string) *mcp.CallToolResult {
	var b strings.Builder
	fmt.Fprintf(&b, "exit code %d", res.ExitCode)
	if res.Signal != "" {
		fmt.Fprintf(&b, ", killed by %s", res.Signal)
	}
	if res.TimedOut {
		b.WriteString(", timed out")
	}
	if res.Truncated {
		b.WriteString(", output cut at the limit")
	}
	section(&b, "stdout", text(res.Stdout))
	section(&b, "stderr", text(res.Stderr))
	explanation := events.Explain(res.Denials)
	section(&b, "cordon", strings.Join(append(notes, explanation), " "))

	structured := map[string]any{}
	raw, _ := json.Marshal(res) // the contract of `cordon run --json`
	json.Unmarshal(raw, &structured)
	if explanation != "" {
		structured["explanation"] = explanation
	}
	failed := res.ExitCode != 0 || res.Signal != "" || res.TimedOut
	return result(failed && stoppedByCordon(res.Denials), b.String(), structured)
}

// stoppedByCordon reports whether any denial could have made a command
// fail: all but a cut of its output.
func stoppedByCordon(denials []*events.Event) bool {
	for _, d := range denials {
		if d.Kind == events.Deny || (d.Kind == events.Limit && d.Target != "output") {
			return true
		}
	}
	return false
}

func section(b *strings.Builder, name, body string) {
	body = strings.TrimSpace(body)
	if body == "" {
		return
	}
	fmt.Fprintf(b, "\n--- %s ---\n%s", name, body)
}

// text is output as text: invalid UTF-8 replaced (structuredContent has
// the exact bytes, base64, when they are not text).
func text(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// progress collects a command's output as it arrives and reports its
// tail to the client as progress notifications, at most one per
// interval.
type progress struct {
	mu             sync.Mutex
	stdout, stderr []byte
	tail           []byte // the last progressTail bytes of both, in order
	total          int64  // bytes seen, kept or not
	limit          int64
	wake           chan struct{}
	done           chan struct{}
	finished       sync.WaitGroup
}

// progressTail is how much output a progress message carries.
const progressTail = 2 << 10

func newProgress(ctx context.Context, ss *mcp.ServerSession, token any, o Options) *progress {
	p := &progress{limit: o.MaxOutput, wake: make(chan struct{}, 1), done: make(chan struct{})}
	p.finished.Add(1)
	go p.report(ctx, ss, token, o.ProgressInterval)
	return p
}

// output receives the command's output (sandbox.ExecRequest.Output).
func (p *progress) output(stream string, data []byte) {
	p.mu.Lock()
	p.total += int64(len(data))
	room := p.limit - int64(len(p.stdout)+len(p.stderr))
	kept := data[:min(int64(len(data)), max(room, 0))]
	if stream == "stderr" {
		p.stderr = append(p.stderr, kept...)
	} else {
		p.stdout = append(p.stdout, kept...)
	}
	p.tail = append(p.tail, data...)
	if n := len(p.tail) - progressTail; n > 0 {
		p.tail = append(p.tail[:0], p.tail[n:]...)
	}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *progress) report(ctx context.Context, ss *mcp.ServerSession, token any, interval time.Duration) {
	defer p.finished.Done()
	var sent int64
	for {
		select {
		case <-p.wake:
		case <-p.done:
			return
		}
		p.mu.Lock()
		total, tail := p.total, text(p.tail)
		p.mu.Unlock()
		if total == sent {
			continue
		}
		sent = total
		// Progress counts output bytes: it grows with every notice.
		ss.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: token, Progress: float64(total), Message: tail})
		select {
		case <-time.After(interval):
		case <-p.done:
			return
		}
	}
}

// stop ends the reports, before the result goes out, and returns the
// output kept.
func (p *progress) stop() (stdout, stderr []byte) {
	close(p.done)
	p.finished.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stdout, p.stderr
}

func intPtr(n int) *int           { return &n }
func floatPtr(f float64) *float64 { return &f }
