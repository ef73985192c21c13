package sandbox

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"strings"
	"syscall"
	"time"

	"github.com/cordon-sandbox/cordon/events"
	"github.com/cordon-sandbox/cordon/internal/proto"
)

// Exec runs a command in the session and waits for it. An error means the
// call could not run (bad input, a refused working directory, a closed
// session); a command that ran and failed is a result with its exit code.
func (s *Session) Exec(ctx context.Context, r ExecRequest) (*ExecResult, error) {
	t0 := time.Now()
	call := s.newCall()
	argv := r.Argv
	if r.Command != "" {
		if len(argv) > 0 {
			return nil, s.refuse(call, "exec", "", &Error{Code: CodeInvalid, Message: "exec takes argv or command, not both"})
		}
		argv = []string{"/bin/sh", "-c", r.Command}
	}
	if len(argv) == 0 || argv[0] == "" {
		return nil, s.refuse(call, "exec", "", &Error{Code: CodeInvalid, Message: "exec needs a command"})
	}
	for _, a := range argv {
		if strings.IndexByte(a, 0) >= 0 {
			return nil, s.refuse(call, "exec", "", &Error{Code: CodeInvalid, Message: "command arguments cannot contain NUL bytes"})
		}
	}
	for k, v := range r.Env {
		if !envName.MatchString(k) || strings.IndexByte(v, 0) >= 0 {
			return nil, s.refuse(call, "exec", "", &Error{Code: CodeInvalid, Message: fmt.Sprintf("invalid environment variable %q", k)})
		}
	}
	cwd := ""
	if r.Cwd != "" {
		c, err := cleanPath(s.plan.Workspace, r.Cwd)
		if err != nil {
			return nil, s.refuse(call, "exec", r.Cwd, pathError("cwd", r.Cwd, err))
		}
		cwd = c
	}
	if r.MaxOutput < 0 || r.Timeout < 0 {
		return nil, s.refuse(call, "exec", "", &Error{Code: CodeInvalid, Message: "timeout and output cap cannot be negative"})
	}
	req := &proto.Request{
		Call: call, Op: proto.OpExec, Argv: argv, Stdin: r.Stdin, Env: r.Env, Cwd: cwd,
		TimeoutMS: cmp.Or(r.Timeout.Milliseconds(), s.limits.Load().TimeoutMS), MaxOutput: min(r.MaxOutput, maxOutput), Stream: r.Output != nil,
		StdinStream: r.StdinReader != nil,
	}
	var afterSend func()
	if r.StdinReader != nil {
		req.Stdin = nil
		stdinDone := make(chan struct{})
		defer close(stdinDone)
		afterSend = func() { go s.streamStdin(call, r.StdinReader, stdinDone) }
	}
	s.bus.Publish(&events.Event{Session: s.id, Call: call, Kind: events.CallStart, Op: "exec", Target: argv[0],
		Detail: map[string]any{"argv": argv}})
	res, err := s.call(ctx, req, r.Output, afterSend)
	if err != nil {
		s.endCall(call, "exec", t0, nil, map[string]any{"error": err.Error()})
		return nil, err
	}
	if res.Error != nil {
		return nil, s.finishError(call, "exec", t0, res)
	}
	out := &ExecResult{
		Call: call, ExitCode: res.ExitCode, Signal: res.Signal, Stdout: res.Stdout, Stderr: res.Stderr,
		Truncated: res.Truncated, TimedOut: res.TimedOut, Limit: res.Limit, Denials: res.Denials, Timing: res.Timing,
	}
	out.Denials = append(out.Denials, s.limitEvents(call, res, r)...)
	if out.Limit == "" {
		for _, d := range out.Denials {
			if d.Kind == events.Limit {
				out.Limit, _ = d.Detail["limit"].(string)
			}
		}
	}
	out.Explanation = events.Explain(out.Denials)
	out.Timing["total_us"] = time.Since(t0).Microseconds()
	s.endCall(call, "exec", t0, out.Timing, map[string]any{
		"exit_code": out.ExitCode, "signal": out.Signal, "stdout_bytes": res.StdoutBytes,
		"stderr_bytes": res.StderrBytes, "truncated": out.Truncated, "timed_out": out.TimedOut,
		"denials": len(out.Denials),
	})
	return out, nil
}

// stdinChunk is the largest stdin frame.
const stdinChunk = 32 << 10

// streamStdin sends what r yields as the call's stdin, then its end.
func (s *Session) streamStdin(call string, r io.Reader, done <-chan struct{}) {
	buf := make([]byte, stdinChunk)
	for {
		n, err := r.Read(buf)
		select {
		case <-done:
			return
		default:
		}
		if n > 0 {
			if s.conn.Send(&proto.Request{Call: call, Op: proto.OpStdin, Stdin: append([]byte(nil), buf[:n]...)}) != nil {
				return
			}
		}
		if err != nil {
			_ = s.conn.Send(&proto.Request{Call: call, Op: proto.OpStdin, Close: true})
			return
		}
	}
}

// limitEvents makes the limit events of a finished call and publishes
// them: the executor's timeout and output cap, and the cgroup's OOM and
// pids counters read around the call.
func (s *Session) limitEvents(call string, res *proto.Result, r ExecRequest) []*events.Event {
	var out []*events.Event
	add := func(limit, rule, capability string, value any) {
		e := &events.Event{Session: s.id, Call: call, Kind: events.Limit, Layer: events.LayerLimit, Op: "exec",
			Target: limit, Rule: rule, Detail: map[string]any{"limit": limit, "value": value}}
		if capability != "" {
			e.Remedy = &events.Remedy{Capability: capability}
		}
		s.allowRemedy(e)
		s.bus.Publish(e)
		out = append(out, e)
	}
	if res.TimedOut {
		t := r.Timeout
		if t <= 0 {
			t = time.Duration(s.limits.Load().TimeoutMS) * time.Millisecond
		}
		add("timeout", "limits.timeout", "limit.timeout:"+(2*t).String(), t.String())
	}
	if res.Truncated {
		add("output", "limits.output", "", r.MaxOutput)
		if r.MaxOutput <= 0 {
			out[len(out)-1].Detail["value"] = s.limits.Load().OutputBytes
		}
	}
	if s.cg != nil {
		before, after := s.countersSince()
		double := func(name string, v int64) string {
			if v <= 0 {
				return "" // unlimited: a cap of the host's, not the policy's, was hit
			}
			return "limit." + name + ":" + fmt.Sprint(2*v)
		}
		if after.oom > before.oom {
			add("memory", "limits.memory", double("memory", s.limits.Load().MemoryBytes), s.limits.Load().MemoryBytes)
		}
		if after.pids > before.pids {
			add("pids", "limits.pids", double("pids", s.limits.Load().Pids), s.limits.Load().Pids)
		}
	}
	return out
}

type countersSnapshot struct{ oom, pids int64 }

// countersSince reads the cgroup's limit counters once per call and
// returns them with the values the previous read saw: a limit hit
// between two call ends is reported by the later call. (With calls in
// parallel, the session-wide counters cannot say which one hit it.)
func (s *Session) countersSince() (before, after countersSnapshot) {
	c := s.cg.Counters()
	after = countersSnapshot{oom: c.OOMKills, pids: c.PidsMax}
	s.mu.Lock()
	before, s.lastCounters = s.lastCounters, after
	s.mu.Unlock()
	return before, after
}

func (s *Session) endCall(call, op string, t0 time.Time, timing map[string]int64, detail map[string]any) {
	if timing == nil {
		timing = map[string]int64{"total_us": time.Since(t0).Microseconds()}
	}
	s.bus.Publish(&events.Event{Session: s.id, Call: call, Kind: events.CallEnd, Op: op, Timing: timing, Detail: detail})
}

// refuse reports a call the host refused before sending it: a deny event
// from the policy layer, and the error.
func (s *Session) refuse(call, op, target string, err *Error) error {
	e := &events.Event{Session: s.id, Call: call, Kind: events.Deny, Layer: events.LayerPolicy, Op: op, Target: target,
		Rule: "policy.input", Detail: map[string]any{"reason": err.Message}}
	if err.Code == CodeDenied {
		e.Rule = "policy.workspace.beneath"
	}
	s.bus.Publish(e)
	err.Denials = []*events.Event{e}
	return err
}

func pathError(what, p string, err error) *Error {
	code := CodeInvalid
	if err == errOutside {
		code = CodeDenied
	}
	return &Error{Code: code, Message: fmt.Sprintf("%s %q: %v", what, p, err)}
}

// finishError turns a call's structured failure into an *Error and ends
// the call's record.
func (s *Session) finishError(call, op string, t0 time.Time, res *proto.Result) error {
	e := &Error{Code: res.Error.Code, Message: res.Error.Message, Denials: res.Denials, Errno: res.Error.Errno}
	s.endCall(call, op, t0, res.Timing, map[string]any{"error": e.Message, "denials": len(e.Denials)})
	return e
}

func (s *Session) fileCall(ctx context.Context, op proto.Op, p string, fill func(*proto.Request)) (*proto.Result, error) {
	t0 := time.Now()
	call := s.newCall()
	rel, err := cleanPath(s.plan.Workspace, p)
	if err != nil {
		return nil, s.refuse(call, string(op), p, pathError(string(op), p, err))
	}
	req := &proto.Request{Call: call, Op: op, Path: rel}
	if fill != nil {
		fill(req)
	}
	if op == proto.OpWrite {
		if e := s.diskRefusal(call, int64(len(req.Data))); e != nil {
			s.record(e)
			reason, _ := e.Detail["reason"].(string)
			return nil, &Error{Code: CodeDenied, Message: reason, Denials: []*events.Event{e}, Errno: int(syscall.ENOSPC)}
		}
	}
	s.bus.Publish(&events.Event{Session: s.id, Call: call, Kind: events.CallStart, Op: string(op), Target: p})
	res, err := s.call(ctx, req, nil, nil)
	if err != nil {
		s.endCall(call, string(op), t0, nil, map[string]any{"error": err.Error()})
		return nil, err
	}
	if res.Error != nil {
		res.Error.Message = strings.Replace(res.Error.Message, rel, p, 1)
		return nil, s.finishError(call, string(op), t0, res)
	}
	res.Timing["total_us"] = time.Since(t0).Microseconds()
	s.endCall(call, string(op), t0, res.Timing, map[string]any{"bytes": len(res.Data) + len(req.Data)})
	return res, nil
}

// ReadFile returns the contents of a file in the workspace, at most the
// session's file limit; truncated reports a cut.
func (s *Session) ReadFile(ctx context.Context, p string) (data []byte, truncated bool, err error) {
	res, err := s.fileCall(ctx, proto.OpRead, p, nil)
	if err != nil {
		return nil, false, err
	}
	return res.Data, res.Truncated, nil
}

// WriteFile creates or replaces a file in the workspace, creating missing
// parent directories.
func (s *Session) WriteFile(ctx context.Context, p string, data []byte) error {
	_, err := s.fileCall(ctx, proto.OpWrite, p, func(r *proto.Request) { r.Data = data })
	return err
}

// ListDir lists a directory in the workspace.
func (s *Session) ListDir(ctx context.Context, p string) ([]FileInfo, error) {
	res, err := s.fileCall(ctx, proto.OpList, p, nil)
	if err != nil {
		return nil, err
	}
	return res.Entries, nil
}

// Stat describes a file in the workspace without following a final
// symlink.
func (s *Session) Stat(ctx context.Context, p string) (*FileInfo, error) {
	res, err := s.fileCall(ctx, proto.OpStat, p, nil)
	if err != nil {
		return nil, err
	}
	return res.Info, nil
}

// Run is the per-call mode: it opens a session, runs one command and
// closes the session.
func Run(ctx context.Context, o Options, r ExecRequest) (*ExecResult, error) {
	s, err := Open(ctx, o)
	if err != nil {
		return nil, err
	}
	res, err := s.Exec(ctx, r)
	if cerr := s.Close(); err == nil && cerr != nil {
		return res, &Error{Code: CodeFailed, Message: "closing the session: " + cerr.Error()}
	}
	return res, err
}
