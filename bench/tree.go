package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Workloads locates the shared workloads directory: prepare.sh and
// traces/*.jsonl.
type Workloads struct {
	Dir string
}

// DefaultWorkloads is where the workloads live unless CORDON_WORKLOADS
// or a flag says otherwise.
func DefaultWorkloads() Workloads {
	if d := os.Getenv("CORDON_WORKLOADS"); d != "" {
		return Workloads{Dir: d}
	}
	return Workloads{Dir: "/work/shared/workloads"}
}

// Traces lists the trace files, sorted.
func (w Workloads) Traces() ([]string, error) {
	files, err := filepath.Glob(filepath.Join(w.Dir, "traces", "*.jsonl"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no traces in %s", filepath.Join(w.Dir, "traces"))
	}
	return files, nil
}

// Cache holds prepared trees and the fresh copies the replays run on.
type Cache struct {
	Workloads Workloads
	// Dir holds prepared/ID (kept between runs when Dir is persistent)
	// and run/ (fresh copies).
	Dir string
}

// PreparedPath is where the prepared tree of a trace is cached.
func (c Cache) PreparedPath(id string) string { return filepath.Join(c.Dir, "prepared", id) }

// Prepared reports whether the trace's tree is already in the cache.
func (c Cache) Prepared(id string) bool {
	_, err := os.Stat(filepath.Join(c.PreparedPath(id), ".git"))
	return err == nil
}

// Prepare builds the trace's starting tree with prepare.sh unless it is
// cached, and returns its path.
func (c Cache) Prepare(ctx context.Context, t *Trace) (string, error) {
	dst := c.PreparedPath(t.ID)
	if c.Prepared(t.ID) {
		return dst, nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "/bin/bash", filepath.Join(c.Workloads.Dir, "prepare.sh"), t.Path, dst)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		os.RemoveAll(dst)
		return "", fmt.Errorf("preparing the tree of %s: %w: %s", t.ID, err, strings.TrimSpace(out.String()))
	}
	return dst, nil
}

// Fresh copies the prepared tree of id to run/NAME (replacing what was
// there) and returns the copy's path. Every replay starts from one.
func (c Cache) Fresh(id, name string) (string, error) {
	dst := filepath.Join(c.Dir, "run", name)
	if err := os.RemoveAll(dst); err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", err
	}
	if out, err := exec.Command("cp", "-a", c.PreparedPath(id), dst).CombinedOutput(); err != nil {
		return "", fmt.Errorf("copying the tree of %s: %w: %s", id, err, strings.TrimSpace(string(out)))
	}
	return dst, nil
}

// Scratch makes an empty directory run/NAME (a bare replay's HOME, a
// micro-benchmark's workspace).
func (c Cache) Scratch(name string) (string, error) {
	dst := filepath.Join(c.Dir, "run", name)
	if err := os.RemoveAll(dst); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return "", err
	}
	return dst, os.Chmod(dst, 0o755)
}

// CleanRuns removes the fresh copies, keeping the prepared trees.
func (c Cache) CleanRuns() error { return os.RemoveAll(filepath.Join(c.Dir, "run")) }

// Home makes the fresh HOME of a bare replay, run/NAME, and its TMPDIR
// next to it (run/NAME.tmp), both empty.
func (c Cache) Home(name string) (string, error) {
	if _, err := c.Scratch(name + ".tmp"); err != nil {
		return "", err
	}
	return c.Scratch(name)
}
