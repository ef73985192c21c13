package bench

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cordon-sandbox/cordon/daemon"
)

// daemonClient runs `cordon serve` as a child and drives it over its unix
// socket with the daemon's client (kept-alive connections).
type daemonClient struct {
	cmd    *exec.Cmd
	exited chan error
	api    *daemon.Client
	mu     sync.Mutex
	stderr bytes.Buffer
}

func (d *daemonClient) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stderr.Len() < 64<<10 {
		d.stderr.Write(p)
	}
	return len(p), nil
}

func (d *daemonClient) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return strings.TrimSpace(d.stderr.String())
}

// startDaemon starts BIN serve --socket DIR/cordon.sock as a child and
// waits until the socket answers. The caller owns dir.
func startDaemon(bin, dir string) (*daemonClient, error) {
	sock := filepath.Join(dir, "cordon.sock")
	d := &daemonClient{exited: make(chan error, 1)}
	d.cmd = exec.Command(bin, "serve", "--socket", sock)
	d.cmd.Stdout, d.cmd.Stderr = d, d
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s serve: %w", bin, err)
	}
	go func() { d.exited <- d.cmd.Wait() }()
	return d, d.waitReady(sock)
}

func (d *daemonClient) waitReady(sock string) error {
	d.api = daemon.NewClient(sock)
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-d.exited:
			d.exited <- err
			return fmt.Errorf("cordon serve exited (%v): %s", err, d.output())
		default:
		}
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			d.stop()
			return fmt.Errorf("cordon serve: socket did not appear within 10s: %s", d.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends the daemon: SIGTERM, then SIGKILL after 5 s.
func (d *daemonClient) stop() {
	d.api.CloseIdleConnections()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(5 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
	}
}

// open creates a session on tree.
func (d *daemonClient) open(ctx context.Context, tree, home string) (Runner, error) {
	id, err := d.api.Create(ctx, daemon.CreateRequest{Workspace: tree})
	if err != nil {
		return nil, fmt.Errorf("POST /v1/sessions: %w", err)
	}
	return &daemonRunner{d: d, id: id}, nil
}

type daemonRunner struct {
	d  *daemonClient
	id string
}

// execResult is the `cordon run --json` result object.
type execResult struct {
	ExitCode     int              `json:"exit_code"`
	Signal       *string          `json:"signal"`
	Stdout       string           `json:"stdout"`
	Stderr       string           `json:"stderr"`
	StdoutBase64 string           `json:"stdout_base64"`
	StderrBase64 string           `json:"stderr_base64"`
	Truncated    bool             `json:"truncated"`
	TimedOut     bool             `json:"timed_out"`
	Denials      []any            `json:"denials"`
	Timing       map[string]int64 `json:"timing"`
}

func textBytes(text, b64 string) []byte {
	if b64 != "" {
		if b, err := base64.StdEncoding.DecodeString(b64); err == nil {
			return b
		}
	}
	return []byte(text)
}

func (r *daemonRunner) Exec(ctx context.Context, argv []string) (Outcome, error) {
	raw, err := r.d.api.Exec(ctx, r.id, daemon.ExecRequest{Argv: argv, Env: TraceEnv(), TimeoutMS: CallTimeout.Milliseconds()})
	if err != nil {
		return Outcome{}, fmt.Errorf("exec: %w", err)
	}
	var res execResult
	if err := json.Unmarshal(raw, &res); err != nil {
		return Outcome{}, fmt.Errorf("exec: decoding the result: %w", err)
	}
	return Outcome{ExitCode: res.ExitCode, Stdout: textBytes(res.Stdout, res.StdoutBase64),
		Stderr: textBytes(res.Stderr, res.StderrBase64), TimedOut: res.TimedOut, Truncated: res.Truncated,
		Denials: len(res.Denials), Timing: res.Timing}, nil
}

func (r *daemonRunner) ReadFile(ctx context.Context, rel string) ([]byte, error) {
	return r.d.api.ReadFile(ctx, r.id, rel)
}

func (r *daemonRunner) Close() error {
	return r.d.api.Remove(context.Background(), r.id)
}
