package policy

import (
	"errors"
	"fmt"
	"math"
	"path"
	"strings"
)

// Minimums below which a session cannot do useful work; a smaller value is
// almost certainly a unit mistake.
const (
	MinMemory  = 16 * MiB
	MinPids    = 8
	MinTimeout = Duration(1e6) // 1ms
)

// Directories a mount may not be placed at or under: the session gets
// fresh ones, built by the supervisor.
var reservedDirs = []string{"/proc", "/dev", "/sys"}

// Validate checks the policy's meaning: paths, limits, names and patterns.
// It returns nil or an *Error listing every problem, with the line each
// came from when the policy was parsed. Paths that still contain "~/" or
// ${VAR} are checked for syntax here and again, expanded, by Expand.
func (p *Policy) Validate() error {
	v := validator{p: p, err: &Error{Source: p.source}}
	v.version()
	v.workspace()
	v.filesystem()
	v.network()
	v.env()
	v.limits()
	v.capabilities()
	return v.err.orNil()
}

type validator struct {
	p   *Policy
	err *Error
}

func (v *validator) addf(field, format string, args ...any) {
	v.err.add(v.p.Line(field), field, fmt.Sprintf(format, args...))
}

func (v *validator) version() {
	if v.p.Version != Version {
		v.addf("version", "unsupported version %d; this cordon reads version %d", v.p.Version, Version)
	}
}

func (v *validator) workspace() {
	if !v.p.Workspace.Access.valid() {
		v.addf("workspace.access", "invalid access %q: want \"write\" or \"read\"", v.p.Workspace.Access)
	}
	checkEntries(v, "workspace.protect", v.p.Workspace.Protect, func(e string) (string, error) {
		if msg := checkProtect(e); msg != "" {
			return "", errors.New(msg)
		}
		return e, nil
	})
}

func (v *validator) filesystem() {
	fs := v.p.Filesystem
	type placed struct{ field, target string }
	var targets []placed // known in-session locations, read before write
	for _, list := range []struct {
		name   string
		mounts []Mount
	}{{"filesystem.read", fs.Read}, {"filesystem.write", fs.Write}} {
		for i, m := range list.mounts {
			field := fmt.Sprintf("%s[%d]", list.name, i)
			v.mount(field, m)
			t, known := v.mountTarget(m)
			if !known {
				continue
			}
			for _, o := range targets {
				if o.target != t {
					continue
				}
				if strings.HasPrefix(o.field, "filesystem.read") && list.name == "filesystem.write" {
					v.addf(field, "%s is also in %s; a path is either read-only or writable, not both", t, o.field)
				} else {
					v.addf(field, "%s is already mounted by %s", t, o.field)
				}
				break
			}
			targets = append(targets, placed{field, t})
		}
	}
	seen := map[string]string{}
	for i, h := range fs.Hide {
		field := fmt.Sprintf("filesystem.hide[%d]", i)
		if msg := checkViewPath(h); msg != "" {
			v.addf(field, "%s", msg)
			continue
		}
		if h == "/" {
			v.addf(field, "cannot hide /")
			continue
		}
		if first, dup := seen[h]; dup {
			v.addf(field, "%s is already listed at %s", h, first)
			continue
		}
		seen[h] = field
	}
}

// mountTarget returns the in-session location of m, and false when it is
// not known before Expand (At empty and Path not yet expanded) or Path is
// unusable.
func (v *validator) mountTarget(m Mount) (string, bool) {
	if m.At != "" {
		return m.At, checkViewPath(m.At) == ""
	}
	if !v.p.expanded && (strings.HasPrefix(m.Path, "~/") || strings.Contains(m.Path, "$")) {
		return "", false
	}
	return m.Path, checkViewPath(m.Path) == ""
}

func (v *validator) mount(field string, m Mount) {
	check := checkHostPath
	if v.p.expanded {
		check = checkViewPath // a literal absolute host path
	}
	if msg := check(m.Path); msg != "" {
		v.addf(field+".path", "%s", msg)
		return
	}
	if m.At != "" {
		if msg := checkTarget(m.At); msg != "" {
			v.addf(field+".at", "%s", msg)
		}
		return
	}
	if t, known := v.mountTarget(m); known {
		if msg := checkTarget(t); msg != "" {
			v.addf(field+".path", "%s (set \"at\" to mount it elsewhere)", msg)
		}
	}
}

// checkHostPath checks a Mount.Path before expansion; "" means fine.
func checkHostPath(p string) string {
	switch {
	case p == "":
		return "path is empty"
	case strings.IndexByte(p, 0) >= 0:
		return "path contains a NUL byte"
	}
	if err := checkVars(p); err != "" {
		return err
	}
	// Treat each ${VAR} as one opaque path element for the shape checks.
	shape := varPattern.ReplaceAllString(strings.ReplaceAll(p, "$$", "_"), "v")
	switch {
	case strings.HasPrefix(shape, "~/"):
		rest := shape[2:]
		if rest == "" || path.Clean(rest) != rest || rest == "." || rest == ".." || strings.HasPrefix(rest, "../") || strings.HasPrefix(rest, "/") {
			return fmt.Sprintf("%q is not a clean path under ~/ (no \"..\", \".\", \"//\" or trailing \"/\")", p)
		}
	case strings.HasPrefix(shape, "/"), strings.HasPrefix(p, "${"):
		if path.Clean(shape) != shape {
			return fmt.Sprintf("%q is not clean (no \"..\", \".\", \"//\" or trailing \"/\")", p)
		}
	default:
		return fmt.Sprintf("%q must be absolute or start with \"~/\"", p)
	}
	return ""
}

// checkViewPath checks a path inside the session: absolute and clean.
func checkViewPath(p string) string {
	switch {
	case p == "":
		return "path is empty"
	case strings.IndexByte(p, 0) >= 0:
		return "path contains a NUL byte"
	case !strings.HasPrefix(p, "/"):
		return fmt.Sprintf("%q must be absolute", p)
	case path.Clean(p) != p:
		return fmt.Sprintf("%q is not clean (no \"..\", \".\", \"//\" or trailing \"/\")", p)
	}
	return ""
}

// checkTarget checks where a mount is placed in the session.
func checkTarget(p string) string {
	if msg := checkViewPath(p); msg != "" {
		return msg
	}
	if p == "/" {
		return "cannot mount over / of the session"
	}
	for _, d := range reservedDirs {
		if p == d || strings.HasPrefix(p, d+"/") {
			return fmt.Sprintf("cannot mount at %s: %s is built by cordon", p, d)
		}
	}
	return ""
}

// ValidEnvName reports whether s is a POSIX environment variable name:
// [A-Za-z_][A-Za-z0-9_]*.
func ValidEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range []byte(s) {
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func (v *validator) env() {
	checkEntries(v, "env.pass", v.p.Env.Pass, func(name string) (string, error) {
		if !ValidEnvName(name) {
			return "", fmt.Errorf("invalid variable name %q: want [A-Za-z_][A-Za-z0-9_]*", name)
		}
		return name, nil
	})
	for _, name := range sortedKeys(v.p.Env.Set) {
		field := "env.set." + name
		if !ValidEnvName(name) {
			v.addf(field, "invalid variable name %q: want [A-Za-z_][A-Za-z0-9_]*", name)
		}
		if strings.IndexByte(v.p.Env.Set[name], 0) >= 0 {
			v.addf(field, "value contains a NUL byte")
		}
	}
}

// checkEntries checks every entry of the list field name with parse, and
// reports an entry that means the same as an earlier one (the same parsed
// key), naming where it was first listed.
func checkEntries[K comparable](v *validator, name string, entries []string, parse func(string) (K, error)) {
	seen := map[K]string{}
	for i, s := range entries {
		field := fmt.Sprintf("%s[%d]", name, i)
		k, err := parse(s)
		if err != nil {
			v.addf(field, "%v", err)
			continue
		}
		if first, dup := seen[k]; dup {
			v.addf(field, "%q is already listed at %s", s, first)
			continue
		}
		seen[k] = field
	}
}

func (v *validator) limits() {
	l := v.p.Limits
	sizes := []struct {
		field string
		value ByteSize
	}{{"limits.memory", l.Memory}, {"limits.output", l.Output}, {"limits.tmp", l.Tmp}, {"limits.home", l.Home}, {"limits.disk_free", l.DiskFree}}
	for _, s := range sizes {
		if s.value < 0 {
			v.addf(s.field, "must not be negative (got %s); 0 means unset", s.value)
		}
	}
	if l.Memory > 0 && l.Memory < MinMemory {
		v.addf("limits.memory", "%s is below the minimum of %s", l.Memory, MinMemory)
	}
	switch {
	case l.Pids < 0:
		v.addf("limits.pids", "must not be negative (got %d); 0 means unset", l.Pids)
	case l.Pids > 0 && l.Pids < MinPids:
		v.addf("limits.pids", "%d is below the minimum of %d", l.Pids, MinPids)
	}
	switch {
	case math.IsNaN(l.CPU) || math.IsInf(l.CPU, 0):
		v.addf("limits.cpu", "must be a finite number of cores")
	case l.CPU < 0:
		v.addf("limits.cpu", "must not be negative (got %g); 0 means unlimited", l.CPU)
	}
	if l.DiskFreeInodes < 0 {
		v.addf("limits.disk_free_inodes", "must not be negative (got %d); 0 means unset", l.DiskFreeInodes)
	}
	switch {
	case l.Timeout < 0:
		v.addf("limits.timeout", "must not be negative (got %s); 0 means unset", l.Timeout)
	case l.Timeout > 0 && l.Timeout < MinTimeout:
		v.addf("limits.timeout", "%s is below the minimum of %s", l.Timeout, MinTimeout)
	}
}

func (v *validator) capabilities() {
	c := v.p.Capabilities
	for _, list := range []struct {
		name     string
		patterns []string
	}{{"capabilities.auto", c.Auto}, {"capabilities.ask", c.Ask}, {"capabilities.never", c.Never}} {
		for i, pat := range list.patterns {
			if err := CheckPattern(pat); err != nil {
				v.addf(fmt.Sprintf("%s[%d]", list.name, i), "%v", err)
			}
		}
	}
}
