package executor

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
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
	env = append(env, "PWD="+dir)

	path := req.Argv[0]
	if !strings.Contains(path, "/") {
		lp, err := lookPath(path, env)
		if err != nil {
			return &proto.Result{ExitCode: 127, Stderr: []byte("cordon: " + path + ": command not found\n"), Timing: map[string]int64{}}
		}
		path = lp
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return failed(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return failed(err)
	}
	cmd := &exec.Cmd{
		Path:        path,
		Args:        req.Argv,
		Env:         env,
		Dir:         dir,
		Stdout:      outW,
		Stderr:      errW,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	var stdinW *os.File
	switch {
	case req.StdinStream:
		r, w, err := os.Pipe()
		if err != nil {
			outR.Close()
			errR.Close()
			return failed(err)
		}
		cmd.Stdin, stdinW = r, w
	case len(req.Stdin) > 0:
		cmd.Stdin = bytes.NewReader(req.Stdin)
	}
	max := req.MaxOutput
	if max <= 0 {
		max = e.plan.Limits.OutputBytes
	}
	out := &capture{
		max: max, stream: req.Stream, call: req.Call, conn: e.conn,
		buf:   map[proto.Kind]*bytes.Buffer{proto.KindStdout: {}, proto.KindStderr: {}},
		total: map[proto.Kind]int64{},
	}

	tSpawn := time.Now()
	e.mu.Lock() // the orphan reaper must not see the command before it is registered
	err = cmd.Start()
	if err == nil {
		e.running[req.Call] = cmd.Process.Pid
		e.calls[cmd.Process.Pid] = req.Call
	}
	e.mu.Unlock()
	outW.Close()
	errW.Close()
	if r, ok := cmd.Stdin.(*os.File); ok {
		// The command has its copy; ours would keep the pipe open after
		// the command exits and leave the pump writing to nobody.
		r.Close()
	}
	if stdinW != nil {
		e.mu.Lock()
		st := e.stdin[req.Call]
		e.mu.Unlock()
		go pump(st.ch, stdinW)
	}
	if err != nil {
		outR.Close()
		errR.Close()
		code := 126
		if errors.Is(err, os.ErrNotExist) {
			code = 127
		}
		return &proto.Result{ExitCode: code, Stderr: []byte("cordon: " + err.Error() + "\n"), Timing: map[string]int64{}}
	}
	spawned := time.Now()
	_ = e.conn.Send(&proto.Response{Call: req.Call, Kind: proto.KindSpawn, PID: cmd.Process.Pid})
	defer func() {
		e.mu.Lock()
		delete(e.running, req.Call)
		delete(e.calls, cmd.Process.Pid)
		e.mu.Unlock()
	}()

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); out.read(outR, proto.KindStdout) }()
	go func() { defer wg.Done(); out.read(errR, proto.KindStderr) }()

	timeout := time.Duration(req.TimeoutMS) * time.Millisecond
	if timeout <= 0 {
		timeout = time.Duration(e.plan.Limits.TimeoutMS) * time.Millisecond
	}
	var timedOut bool
	var timer *time.Timer
	var mu sync.Mutex
	if timeout > 0 {
		pgid := cmd.Process.Pid
		timer = time.AfterFunc(timeout, func() {
			mu.Lock()
			timedOut = true
			mu.Unlock()
			_ = unix.Kill(-pgid, unix.SIGKILL)
		})
	}
	waitErr := cmd.Wait()
	exited := time.Now()
	if timer != nil {
		timer.Stop()
	}
	mu.Lock()
	to := timedOut
	mu.Unlock()
	if to {
		// Nothing of a timed-out call may keep its output open.
		_ = unix.Kill(-cmd.Process.Pid, unix.SIGKILL)
	}
	e.endStdin(req.Call)
	deadline := exited.Add(pipeGrace)
	_ = outR.SetReadDeadline(deadline)
	_ = errR.SetReadDeadline(deadline)
	wg.Wait()
	outR.Close()
	errR.Close()
	done := time.Now()

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
	st, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	switch {
	case st.Signaled():
		res.ExitCode = 128 + int(st.Signal())
		res.Signal = unix.SignalName(st.Signal())
	case waitErr != nil && cmd.ProcessState == nil:
		return failed(waitErr)
	default:
		res.ExitCode = st.ExitStatus()
	}
	return res
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
// on a full pipe, and streams chunks when the caller asked for it.
type capture struct {
	max    int64
	stream bool
	call   string
	conn   *proto.Conn

	mu        sync.Mutex
	kept      int64
	truncated bool
	buf       map[proto.Kind]*bytes.Buffer
	total     map[proto.Kind]int64
}

func (c *capture) read(r *os.File, kind proto.Kind) {
	chunk := make([]byte, outputChunk)
	for {
		n, err := r.Read(chunk)
		if n > 0 {
			c.add(kind, chunk[:n])
		}
		if err != nil {
			return
		}
	}
}

func (c *capture) add(kind proto.Kind, p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
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
