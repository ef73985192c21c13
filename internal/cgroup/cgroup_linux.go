// Package cgroup places a session in a cgroup with memory and pids limits:
// cgroup v2 where the unified hierarchy has the memory and pids
// controllers, the v1 memory and pids hierarchies otherwise.
package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ErrUnavailable means no usable hierarchy (or no permission to use it).
var ErrUnavailable = errors.New("no writable cgroup hierarchy with memory and pids controllers")

// Group is one session's cgroup, in one (v2) or two (v1) hierarchies.
type Group struct {
	V2     bool
	memory string // directory holding the memory controller files
	pids   string // directory holding the pids controller files

	// The counter files stay open: Counters re-reads them from offset 0
	// with one pread each, on every tool call.
	mu              sync.Mutex
	oomFile, pidsFi *os.File
}

func hasControllers(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	var mem, pids bool
	for _, c := range f {
		mem = mem || c == "memory"
		pids = pids || c == "pids"
	}
	return mem && pids
}

// New creates the cgroup for session name, in directory parent of each
// hierarchy, with the given limits (0: none).
func New(parent, name string, memory, pids int64) (*Group, error) {
	root := parent
	for _, base := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var st unix.Statfs_t
		if unix.Statfs(base, &st) != nil || st.Type != unix.CGROUP2_SUPER_MAGIC || !hasControllers(base) {
			continue
		}
		parent := filepath.Join(base, root)
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		_ = os.WriteFile(filepath.Join(base, "cgroup.subtree_control"), []byte("+memory +pids"), 0)
		_ = os.WriteFile(filepath.Join(parent, "cgroup.subtree_control"), []byte("+memory +pids"), 0)
		dir := filepath.Join(parent, name)
		if err := mkdirUnder(parent, dir); err != nil {
			return nil, fmt.Errorf("creating cgroup: %w", err)
		}
		g := &Group{V2: true, memory: dir, pids: dir}
		return g, g.limit(memory, pids, "memory.max", "memory.swap.max")
	}
	mem, pid := "/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids"
	for _, d := range []string{mem, pid} {
		if _, err := os.Stat(filepath.Join(d, "cgroup.procs")); err != nil {
			return nil, ErrUnavailable
		}
	}
	g := &Group{memory: filepath.Join(mem, root, name), pids: filepath.Join(pid, root, name)}
	for _, d := range []string{g.memory, g.pids} {
		if err := mkdirUnder(filepath.Dir(d), d); err != nil {
			g.Destroy()
			return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
	}
	return g, g.limit(memory, pids, "memory.limit_in_bytes", "memory.memsw.limit_in_bytes")
}

// mkdirUnder creates dir in parent, creating parent as needed. Another
// session's Destroy may remove an empty parent at any moment; then it
// tries again.
func mkdirUnder(parent, dir string) error {
	var err error
	for range 3 {
		if err = os.MkdirAll(parent, 0o755); err != nil {
			return err
		}
		if err = os.Mkdir(dir, 0o755); !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return err
}

func (g *Group) limit(memory, pids int64, memFile, swapFile string) error {
	if memory > 0 {
		if err := write(g.memory, memFile, strconv.FormatInt(memory, 10)); err != nil {
			g.Destroy()
			return err
		}
		// Without a swap bound the memory limit only moves pages to
		// swap; best effort, as swap accounting may be off.
		v := "0"
		if !g.V2 {
			v = strconv.FormatInt(memory, 10)
		}
		_ = write(g.memory, swapFile, v)
	}
	if pids > 0 {
		if err := write(g.pids, "pids.max", strconv.FormatInt(pids, 10)); err != nil {
			g.Destroy()
			return err
		}
	}
	return nil
}

// SetLimits changes the limits of a live group (0: none). In cgroup v1
// the memory+swap bound must never be below the memory bound, so the
// order of the two writes follows the direction of the change.
func (g *Group) SetLimits(memory, pids int64) error {
	num := func(v int64) string {
		switch {
		case v > 0:
			return strconv.FormatInt(v, 10)
		case g.V2:
			return "max"
		default:
			return "-1"
		}
	}
	if g.V2 {
		if err := write(g.memory, "memory.max", num(memory)); err != nil {
			return err
		}
	} else {
		files := []string{"memory.memsw.limit_in_bytes", "memory.limit_in_bytes"} // raising
		var cur int64
		if b, err := os.ReadFile(filepath.Join(g.memory, "memory.limit_in_bytes")); err == nil {
			cur, _ = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		}
		if memory > 0 && memory < cur {
			files[0], files[1] = files[1], files[0]
		}
		for _, f := range files {
			err := write(g.memory, f, num(memory))
			if err != nil && f == "memory.limit_in_bytes" {
				return err
			}
		}
	}
	return write(g.pids, "pids.max", num(pids))
}

func write(dir, file, v string) error {
	if err := os.WriteFile(filepath.Join(dir, file), []byte(v), 0); err != nil {
		return fmt.Errorf("setting %s: %w", file, err)
	}
	return nil
}

// Add moves pid into the group.
func (g *Group) Add(pid int) error {
	for _, d := range g.dirs() {
		if err := write(d, "cgroup.procs", strconv.Itoa(pid)); err != nil {
			return err
		}
	}
	return nil
}

func (g *Group) dirs() []string {
	if g.V2 || g.memory == g.pids {
		return []string{g.memory}
	}
	return []string{g.memory, g.pids}
}

// Counters are the limit hits the kernel counted for the group.
type Counters struct {
	OOMKills int64 // processes killed by the memory limit
	PidsMax  int64 // forks refused by the pids limit
}

// Counters reads the group's limit hit counters.
func (g *Group) Counters() Counters {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.oomFile == nil {
		name := "memory.oom_control"
		if g.V2 {
			name = "memory.events"
		}
		g.oomFile, _ = os.Open(filepath.Join(g.memory, name))
		g.pidsFi, _ = os.Open(filepath.Join(g.pids, "pids.events"))
	}
	return Counters{OOMKills: field(g.oomFile, "oom_kill"), PidsMax: field(g.pidsFi, "max")}
}

func field(f *os.File, key string) int64 {
	if f == nil {
		return 0
	}
	var buf [512]byte
	n, err := f.ReadAt(buf[:], 0)
	if n == 0 && err != nil {
		return 0
	}
	b := buf[:n]
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == key {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

// Destroy kills whatever is still in the group and removes it.
func (g *Group) Destroy() error {
	g.mu.Lock()
	for _, f := range []*os.File{g.oomFile, g.pidsFi} {
		if f != nil {
			f.Close()
		}
	}
	g.oomFile, g.pidsFi = nil, nil
	g.mu.Unlock()
	var errs []error
	for _, d := range g.dirs() {
		if _, err := os.Stat(d); errors.Is(err, os.ErrNotExist) {
			continue
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			if g.V2 {
				_ = os.WriteFile(filepath.Join(d, "cgroup.kill"), []byte("1"), 0)
			} else {
				killAll(d)
			}
			err := unix.Rmdir(d)
			if err == nil || err == unix.ENOENT {
				break
			}
			if time.Now().After(deadline) {
				errs = append(errs, &os.PathError{Op: "rmdir", Path: d, Err: err})
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		// Remove cordon's parent too once no session uses it, so that a
		// host without sessions has nothing of cordon's; it fails while
		// another session lives.
		_ = unix.Rmdir(filepath.Dir(d))
	}
	return errors.Join(errs...)
}

// Sweep removes every session cgroup under parent, killing what is left
// in them: what a crashed owner of those sessions could not clean up.
// It returns how many it removed.
func Sweep(parent string) (int, error) {
	n := 0
	var errs []error
	for _, base := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids"} {
		dir := filepath.Join(base, parent)
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if !e.IsDir() {
				continue
			}
			g := &Group{memory: filepath.Join(dir, e.Name()), pids: filepath.Join(dir, e.Name())}
			_, statErr := os.Stat(filepath.Join(dir, e.Name(), "cgroup.kill"))
			g.V2 = statErr == nil
			if err := g.Destroy(); err != nil {
				errs = append(errs, err)
				continue
			}
			n++
		}
	}
	return n, errors.Join(errs...)
}

// SweepAbandoned removes the session groups in directory parent that hold
// no process and were made more than age ago: sessions whose host died
// without closing them (the kernel killed their processes with the
// supervisor, but only a host removes a cgroup). A live session's group
// holds its supervisor from a few milliseconds after it is made, so age
// keeps a session that is still opening out of reach. It is best effort:
// a group it cannot remove is left.
func SweepAbandoned(parent string, age time.Duration) int {
	n := 0
	for _, base := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids"} {
		dir := filepath.Join(base, parent)
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			d := filepath.Join(dir, e.Name())
			fi, err := e.Info()
			if !e.IsDir() || err != nil || time.Since(fi.ModTime()) < age {
				continue
			}
			if b, err := os.ReadFile(filepath.Join(d, "cgroup.procs")); err != nil || len(b) > 0 {
				continue
			}
			if unix.Rmdir(d) == nil {
				n++
			}
		}
	}
	return n
}

func killAll(dir string) {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return
	}
	for _, s := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(s); err == nil {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
}
