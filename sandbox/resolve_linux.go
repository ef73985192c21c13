package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cordon-sandbox/cordon/internal/plan"
	"github.com/cordon-sandbox/cordon/policy"
)

// DefaultHome is the session's $HOME when the policy does not set one.
const DefaultHome = "/home/cordon"

// Runtime defaults for limits a policy leaves unset (zero). There is
// always a timeout and an output cap: a call never waits forever, and a
// result always fits in one frame.
const (
	defaultTimeout = 10 * time.Minute
	defaultOutput  = 16 << 20
	maxOutput      = 48 << 20 // below proto.MaxFrame, with room for the header
	defaultTmpfs   = 1 << 30
)

func orDefault(v, def int64) int64 {
	if v <= 0 {
		return def
	}
	return v
}

// checkWorkspace returns the workspace's canonical host path.
func checkWorkspace(ws string) (string, error) {
	if ws == "" {
		return "", &Error{Code: CodeInvalid, Message: "no workspace given"}
	}
	abs, err := filepath.Abs(ws)
	if err != nil {
		return "", &Error{Code: CodeInvalid, Message: fmt.Sprintf("workspace %q: %v", ws, err)}
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", &Error{Code: CodeInvalid, Message: fmt.Sprintf("workspace %s: %v", abs, errors.Unwrap(err))}
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", &Error{Code: CodeInvalid, Message: fmt.Sprintf("workspace %s: %v", abs, err)}
	}
	if !fi.IsDir() {
		return "", &Error{Code: CodeInvalid, Message: fmt.Sprintf("workspace %s is not a directory", abs)}
	}
	for _, bad := range []string{"/", "/proc", "/dev", "/sys"} {
		if real == bad || (bad != "/" && strings.HasPrefix(real, bad+"/")) {
			return "", &Error{Code: CodeInvalid, Message: fmt.Sprintf("workspace %s: %s cannot be a workspace", abs, bad)}
		}
	}
	return real, nil
}

// resolve joins the policy with this host's facts into a plan. The
// warnings say what the policy asks for that this workspace does not
// allow (a protected path that is a symbolic link).
func resolve(pol *policy.Policy, ws string, id string, ids idMap, caller *Caller) (*plan.Plan, []string, error) {
	home, _ := os.UserHomeDir()
	if caller != nil {
		home = caller.Home
	}
	exp, err := pol.Expand(home, os.Getenv)
	if err != nil {
		return nil, nil, err
	}
	p := &plan.Plan{
		Session:           id,
		Hostname:          "cordon",
		Workspace:         ws,
		WorkspaceWritable: exp.Workspace.Access.OrDefault() == policy.AccessWrite,
		Home:              DefaultHome,
		Hide:              append(slices.Clone(exp.Filesystem.Hide), runtimeHide...),
		TmpBytes:          orDefault(int64(exp.Limits.Tmp), defaultTmpfs),
		HomeBytes:         orDefault(int64(exp.Limits.Home), defaultTmpfs),
		UID:               ids.execUID,
		GID:               ids.execUID,
		User:              "cordon",
		Limits: plan.Limits{
			MemoryBytes:    int64(exp.Limits.Memory),
			Pids:           int64(exp.Limits.Pids),
			TimeoutMS:      orDefault(time.Duration(exp.Limits.Timeout).Milliseconds(), defaultTimeout.Milliseconds()),
			OutputBytes:    min(orDefault(int64(exp.Limits.Output), defaultOutput), maxOutput),
			FileReadBytes:  fileLimit(orDefault(int64(exp.Limits.Output), defaultOutput)),
			FileWriteBytes: fileLimit(orDefault(int64(exp.Limits.Output), defaultOutput)),
			DiskFreeBytes:  int64(exp.Limits.DiskFree),
			DiskFreeInodes: exp.Limits.DiskFreeInodes,
		},
	}
	if h := exp.Env.Set["HOME"]; h != "" {
		p.Home = filepath.Clean(h)
	}
	for _, m := range exp.Filesystem.Read {
		if err := addBind(p, m, false); err != nil {
			return nil, nil, fmt.Errorf("filesystem.read: %w", err)
		}
	}
	for _, m := range exp.Filesystem.Write {
		if err := addBind(p, m, true); err != nil {
			return nil, nil, fmt.Errorf("filesystem.write: %w", err)
		}
	}
	if err := checkTargets(p); err != nil {
		return nil, nil, err
	}
	var warnings []string
	if p.WorkspaceWritable && len(exp.Workspace.Protect) > 0 {
		if p.Protect, warnings, err = resolveProtect(ws, exp.Workspace.Protect); err != nil {
			return nil, nil, &Error{Code: CodeFailed, Message: "workspace.protect: " + err.Error()}
		}
	}

	p.Env = environ(exp.Env, p.Home)
	return p, warnings, nil
}

// foreign reports whether the session is opened for a user other than
// this process's: then the caller's own access decides what it may bind.
func foreign(c *Caller) bool { return c != nil && c.UID != os.Geteuid() }

// walkOpen opens path (absolute, clean, without symlinks: resolve it
// first) one component at a time, each relative to the descriptor of the
// one before, refusing any symlink on the way. With uid >= 0 it also
// checks, conservatively, that uid could have walked there itself:
// search permission on every directory and read permission on the end,
// by owner bits when uid owns the object and by "other" bits otherwise
// (group access is not counted, so a path open to uid only through a
// group is refused). The check is made on the very objects opened, so
// that nothing can be swapped in between (a symlink, a renamed
// directory). A root process acting for a user uses this before it
// clones a tree into that user's session: a bind mount would show what
// the directories above it hide.
func walkOpen(path string, uid int) (*os.File, error) {
	if !filepath.IsAbs(path) || filepath.Clean(path) != path {
		return nil, fmt.Errorf("%s: not an absolute clean path", path)
	}
	fd, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: "/", Err: err}
	}
	cur := "/"
	check := func(want uint32) error {
		if uid < 0 {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return &os.PathError{Op: "fstat", Path: cur, Err: err}
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR && want == 0o4 {
			want = 0o5
		}
		if !permits(uid, &st, want) {
			return fmt.Errorf("uid %d cannot reach %s", uid, cur)
		}
		return nil
	}
	for _, name := range strings.Split(strings.TrimPrefix(path, "/"), "/") {
		if name == "" {
			continue
		}
		if err := check(0o1); err != nil {
			unix.Close(fd)
			return nil, err
		}
		next, err := unix.Openat(fd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		cur = filepath.Join(cur, name)
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: cur, Err: err}
		}
		fd = next
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return nil, &os.PathError{Op: "fstat", Path: cur, Err: err}
		}
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			unix.Close(fd)
			return nil, fmt.Errorf("%s changed into a symlink", cur)
		}
	}
	if err := check(0o4); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), path), nil
}

// permits tests the owner bits for the owner and the other bits for
// everyone else.
func permits(uid int, st *unix.Stat_t, want uint32) bool {
	if int(st.Uid) == uid {
		return (st.Mode>>6)&want == want
	}
	return st.Mode&want == want
}

// checkTargets refuses binds that would cover what the session itself
// provides: its root, its private /tmp and $HOME, or the workspace.
// (A bind below /tmp or $HOME, like the module cache, is fine.)
func checkTargets(p *plan.Plan) error {
	reserved := map[string]string{"/": "the view's root", "/tmp": "the session's /tmp", p.Home: "the session's $HOME", p.Workspace: "the workspace"}
	for _, b := range p.Binds {
		if what, ok := reserved[b.Target]; ok {
			return &Error{Code: CodeInvalid, Message: fmt.Sprintf("filesystem: %s would cover %s", b.Target, what)}
		}
	}
	return nil
}

// fileLimit bounds one file tool transfer: the output cap, at least 1 MiB
// and at most 64 MiB minus framing, so a file always fits in a frame.
func fileLimit(output int64) int64 {
	const lo, hi = 1 << 20, 48 << 20
	switch {
	case output < lo:
		return lo
	case output > hi:
		return hi
	}
	return output
}

func addBind(p *plan.Plan, m policy.Mount, writable bool) error {
	src := filepath.Clean(m.Path)
	target := m.Target()
	fi, err := os.Lstat(src)
	if errors.Is(err, os.ErrNotExist) && m.Optional {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", src, errors.Unwrap(err))
	}
	b := plan.Bind{Source: src, Target: target, Writable: writable}
	switch {
	case fi.Mode()&os.ModeSymlink != 0 && target == src:
		// Merged-/usr systems have /bin -> usr/bin: recreate the link
		// so paths resolve as on the host.
		link, err := os.Readlink(src)
		if err != nil {
			return err
		}
		b.Kind, b.Link = plan.BindSymlink, link
	case fi.Mode()&os.ModeSymlink != 0:
		real, err := filepath.EvalSymlinks(src)
		if err != nil {
			if m.Optional {
				return nil
			}
			return fmt.Errorf("%s: %w", src, err)
		}
		rfi, err := os.Stat(real)
		if err != nil {
			return err
		}
		b.Source = real
		b.Kind = kindOf(rfi)
	default:
		b.Kind = kindOf(fi)
	}
	p.Binds = append(p.Binds, b)
	return nil
}

func kindOf(fi os.FileInfo) plan.BindKind {
	if fi.IsDir() {
		return plan.BindDir
	}
	return plan.BindFile
}

// runtimeHide are covered in every view whatever the policy says: the
// host's resolver configuration names servers the session cannot reach
// (its only way out is the egress proxy, which resolves names itself), so
// resolvers inside fail at once on an empty file instead of waiting out
// their timeouts on a nameserver they cannot reach.
var runtimeHide = []string{"/etc/resolv.conf"}

// proxyEnv points the usual clients at the session's egress proxy; the
// policy's env.set can override any of it.
func proxyEnv() map[string]string {
	http := fmt.Sprintf("http://127.0.0.1:%d", plan.ProxyPort)
	socks := fmt.Sprintf("socks5h://127.0.0.1:%d", plan.ProxyPort)
	noProxy := "localhost,127.0.0.1,::1"
	return map[string]string{
		"HTTP_PROXY": http, "http_proxy": http,
		"HTTPS_PROXY": http, "https_proxy": http,
		"ALL_PROXY": socks, "all_proxy": socks,
		"NO_PROXY": noProxy, "no_proxy": noProxy,
		// npm and pip read their own settings before the variables above.
		"npm_config_proxy": http, "npm_config_https_proxy": http,
		"PIP_PROXY": http,
		// Go's module fetcher, git and curl use HTTPS_PROXY/https_proxy.
	}
}

// environ builds the base environment: the proxy settings, the variables
// the policy passes through from the caller's environment, then its fixed
// values.
func environ(e policy.Env, home string) []string {
	vars := proxyEnv()
	vars["HOME"] = home
	for _, name := range e.Pass {
		if v, ok := os.LookupEnv(name); ok {
			vars[name] = v
		}
	}
	for k, v := range e.Set {
		vars[k] = v
	}
	out := make([]string, 0, len(vars))
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}
