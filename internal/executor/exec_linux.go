package executor

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cordon-sandbox/cordon/internal/proto"
)

// pipeGrace is how long output is still collected after a command exits,
// for descendants it left behind that still hold its stdout or stderr
// (`server &`). After that the call ends; they live on in the session.
const pipeGrace = 100 * time.Millisecond

// outputChunk is the largest output frame streamed to the caller.
const outputChunk = 64 << 10

// exec runs one command as a child of the executor.
func (e *executor) exec(req *proto.Request) *proto.Result {
	t0 := time.Now()
	if len(req.Argv) == 0 || req.Argv[0] == "" {
		return invalid("exec needs a command")
	}
	dir, cerr := e.resolveDir(req.Cwd)
	if cerr != nil {
		return &proto.Result{Error: cerr}
	}
	env := append([]string(nil), e.plan.Env...)
	for k, v := range req.Env {
		env = append(env, k+"="+v)
	}
	env = dedupEnv(append(env, "PWD="+dir))

	path := req.Argv[0]
	if !strings.Contains(path, "/") {
		lp, err := lookPath(path, env)
		if err != nil {
			return &proto.Result{ExitCode: 127, Stderr: []byte("cordon: " + path + ": command not found\n"), Timing: map[string]int64{}}
		}
		path = lp
	}
	out := &capture{
		max: req.MaxOutput, stream: req.Stream, call: req.Call, conn: e.conn,
		buf:   map[proto.Kind]*bytes.Buffer{proto.KindStdout: {}, proto.KindStderr: {}},
		total: map[proto.Kind]int64{},
	}
	if out.max <= 0 {
		out.max = e.plan.Limits.OutputBytes
	}
	p, err := newPipes()
	if err != nil {
		return failed(err)
	}
	defer p.close()
	stdin, stdinW, err := e.stdinFor(req)
	if err != nil {
		return failed(err)
	}

	tSpawn := time.Now()
	pidfd := -1
	attr := &syscall.ProcAttr{
		Dir: dir, Env: env, Files: []uintptr{stdin.Fd(), uintptr(p.outW), uintptr(p.errW)},
		Sys: &syscall.SysProcAttr{Setpgid: true, PidFD: &pidfd},
	}
	e.mu.Lock() // the orphan reaper must not see the command before it is registered
	pid, err := syscall.ForkExec(path, req.Argv, attr)
	if err == nil {
		e.running[req.Call] = pid
		e.calls[pid] = req.Call
	}
	e.mu.Unlock()
	// The command has its copies; ours would keep its output open after
	// it exits, or leave a stdin writer writing to nobody.
	p.closeWriteEnds()
	if stdin != e.devNull {
		stdin.Close()
	}
	if err != nil {
		if stdinW != nil {
			stdinW.Close()
		}
		e.endStdin(req.Call)
		code := 126
		if errors.Is(err, os.ErrNotExist) {
			code = 127
		}
		err = &os.PathError{Op: "fork/exec", Path: path, Err: err}
		return &proto.Result{ExitCode: code, Stderr: []byte("cordon: " + err.Error() + "\n"), Timing: map[string]int64{}}
	}
	if stdinW != nil {
		if req.StdinStream {
			e.mu.Lock()
			st := e.stdin[req.Call]
			e.mu.Unlock()
			go pump(st.ch, stdinW)
		} else {
			go func() {
				_, _ = stdinW.Write(req.Stdin) // EPIPE: the command did not read it all
				stdinW.Close()
			}()
		}
	}
	spawned := time.Now()
	_ = e.conn.Send(&proto.Response{Call: req.Call, Kind: proto.KindSpawn, PID: pid})
	defer func() {
		e.mu.Lock()
		delete(e.running, req.Call)
		delete(e.calls, pid)
		e.mu.Unlock()
	}()

	timeout := time.Duration(req.TimeoutMS) * time.Millisecond
	if timeout <= 0 {
		timeout = time.Duration(e.plan.Limits.TimeoutMS) * time.Millisecond
	}
	var timedOut atomic.Bool
	var timer *time.Timer
	if timeout > 0 {
		timer = time.AfterFunc(timeout, func() {
			timedOut.Store(true)
			_ = unix.Kill(-pid, unix.SIGKILL)
		})
	}
	w, werr := p.watch(pidfd)
	if werr == nil {
		werr = w.untilExit(out)
	}
	if werr != nil {
		_ = unix.Kill(-pid, unix.SIGKILL) // not to wait below for a command nobody reads
	}
	var ws syscall.WaitStatus
	_, err = wait4(pid, &ws)
	unix.Close(pidfd)
	exited := time.Now()
	if timer != nil {
		timer.Stop()
	}
	to := timedOut.Load()
	if to {
		// Nothing of a timed-out call may keep its output open.
		_ = unix.Kill(-pid, unix.SIGKILL)
	}
	e.endStdin(req.Call)
	if werr == nil {
		w.untilClosed(out, exited.Add(pipeGrace))
	}
	if w != nil {
		w.close()
	}
	done := time.Now()
	if werr != nil {
		return failed(fmt.Errorf("collecting the command's output: %w", werr))
	}
	if err != nil {
		return failed(err)
	}

	res := &proto.Result{
		Stdout: out.buf[proto.KindStdout].Bytes(), Stderr: out.buf[proto.KindStderr].Bytes(),
		Truncated: out.truncated, TimedOut: to,
		StdoutBytes: out.total[proto.KindStdout], StderrBytes: out.total[proto.KindStderr],
		Timing: map[string]int64{
			"prepare_us": tSpawn.Sub(t0).Microseconds(),
			"spawn_us":   spawned.Sub(tSpawn).Microseconds(),
			"run_us":     exited.Sub(spawned).Microseconds(),
			"relay_us":   done.Sub(exited).Microseconds(),
		},
	}
	if req.Stream {
		res.Stdout, res.Stderr = nil, nil
	}
	switch {
	case to:
		res.Limit = "timeout"
	case out.truncated:
		res.Limit = "output"
	}
	if ws.Signaled() {
		res.ExitCode = 128 + int(ws.Signal())
		res.Signal = unix.SignalName(ws.Signal())
	} else {
		res.ExitCode = ws.ExitStatus()
	}
	return res
}

// stdinFor returns what a command reads as its stdin: the executor's
// /dev/null, or the read end of a pipe whose write end (returned too)
// takes the request's bytes or its stream.
func (e *executor) stdinFor(req *proto.Request) (r, w *os.File, err error) {
	if !req.StdinStream && len(req.Stdin) == 0 {
		return e.devNull, nil, nil
	}
	return os.Pipe()
}

// wait4 reaps pid, retrying EINTR.
func wait4(pid int, ws *syscall.WaitStatus) (int, error) {
	for {
		wpid, err := syscall.Wait4(pid, ws, 0, nil)
		if err != syscall.EINTR {
			if err != nil {
				return wpid, os.NewSyscallError("wait4", err)
			}
			return wpid, nil
		}
	}
}

// pump writes a call's streamed stdin into the command's stdin pipe
// until the stream ends or the command stops reading.
func pump(ch <-chan []byte, w *os.File) {
	defer w.Close()
	for chunk := range ch {
		if _, err := w.Write(chunk); err != nil {
			break // EPIPE: the command closed its stdin
		}
	}
	// Drain what still arrives so feed never blocks on a dead call.
	go func() {
		for range ch {
		}
	}()
}

// capture collects a command's stdout and stderr under one byte cap,
// keeps reading (and counting) past the cap so the command never blocks
// on a full pipe, and streams chunks when the caller asked for it. One
// goroutine, the call's, feeds it (see watcher).
type capture struct {
	max    int64
	stream bool
	call   string
	conn   *proto.Conn

	kept      int64
	truncated bool
	buf       map[proto.Kind]*bytes.Buffer
	total     map[proto.Kind]int64
}

func (c *capture) add(kind proto.Kind, p []byte) {
	c.total[kind] += int64(len(p))
	keep := p
	if c.max > 0 && c.kept+int64(len(p)) > c.max {
		keep = p[:c.max-c.kept]
		c.truncated = true
	}
	if len(keep) == 0 {
		return
	}
	c.kept += int64(len(keep))
	if c.stream {
		_ = c.conn.Send(&proto.Response{Call: c.call, Kind: kind, Data: append([]byte(nil), keep...)})
		return
	}
	c.buf[kind].Write(keep)
}

// dedupEnv keeps the last of the entries that set the same variable (a
// request's env overrides the policy's), in the order of those last
// entries, as os/exec does.
func dedupEnv(env []string) []string {
	seen := make(map[string]bool, len(env))
	out := make([]string, 0, len(env))
	for i := len(env) - 1; i >= 0; i-- {
		k, _, _ := strings.Cut(env[i], "=")
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, env[i])
	}
	slices.Reverse(out)
	return out
}

// lookPath finds file in the command's PATH, as the shell would.
func lookPath(file string, env []string) (string, error) {
	pathEnv := ""
	for _, kv := range env {
		if strings.HasPrefix(kv, "PATH=") {
			pathEnv = kv[len("PATH="):]
		}
	}
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, file)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", os.ErrNotExist
}

func invalid(msg string) *proto.Result {
	return &proto.Result{Error: &proto.CallError{Code: proto.CodeInvalid, Message: msg}}
}

func failed(err error) *proto.Result {
	return &proto.Result{Error: &proto.CallError{Code: proto.CodeFailed, Message: err.Error()}}
}
