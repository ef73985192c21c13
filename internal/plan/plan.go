// Package plan holds a session's resolved plan: the policy joined with the
// facts of this host (which paths exist and what they are, which uid the
// session runs as, what the kernel offers). The host resolves it, the
// supervisor and executor apply it. It is plain data, sent as JSON over an
// inherited file descriptor.
package plan

import (
	"path"
	"strings"
)

// Plan is everything the session's stages need to build and lock down the
// session. Paths are inside-the-session paths unless a field says host.
type Plan struct {
	Session  string `json:"session"`
	Hostname string `json:"hostname"`

	// Workspace is the workspace's path, the same inside as on the host.
	Workspace string `json:"workspace"`
	// WorkspaceWritable is false for a read-only workspace.
	WorkspaceWritable bool `json:"workspace_writable"`
	// WorkspaceFD is set when the host passes the workspace as a
	// detached, idmapped mount tree (rootful sessions) instead of a path
	// to bind.
	WorkspaceFD bool `json:"workspace_fd"`

	// Home is the session's private $HOME (a tmpfs).
	Home string `json:"home"`
	// Binds are host paths made visible in the view, in mount order.
	Binds []Bind `json:"binds"`
	// Hide lists paths inside the view covered by an empty file or
	// directory; entries that do not exist in the view are skipped.
	Hide []string `json:"hide"`
	// Protect lists paths in the workspace that the view binds over
	// themselves once the workspace is in place, parents first: the
	// workspace.protect entries the host found, and the directories
	// that lead to them.
	Protect []Protect `json:"protect,omitempty"`
	// Unprotect lists absolute paths, each one an fs.write grant: a
	// read-only protection at or beneath one of them is not applied, and
	// is lifted when the executor restarts.
	Unprotect []string `json:"unprotect,omitempty"`

	TmpBytes  int64 `json:"tmp_bytes"`
	HomeBytes int64 `json:"home_bytes"`

	// UID and GID are the executor's ids inside the session. The
	// supervisor is 0 inside.
	UID int `json:"uid"`
	GID int `json:"gid"`
	// User is the executor's user name for the generated /etc/passwd.
	User string `json:"user"`

	// Env is the base environment of every call, as KEY=VALUE.
	Env []string `json:"env"`

	Limits Limits `json:"limits"`

	// AllowPtrace widens the seccomp filter for a proc.ptrace grant.
	AllowPtrace bool `json:"allow_ptrace"`

	// LandlockAudit is set when the host reads Landlock's kernel audit
	// records (package kaudit): the executor's domain then logs what it
	// refuses after exec, and the executor gets an audit session of its
	// own so that the host can tell the session's records from others'.
	// Without it the supervisor's write observer predicts Landlock's
	// refusals of writes instead.
	LandlockAudit bool `json:"landlock_audit"`
}

// BindKind says what a bind's host source is.
type BindKind string

// Bind kinds.
const (
	BindDir     BindKind = "dir"
	BindFile    BindKind = "file"
	BindSymlink BindKind = "symlink" // recreated as a symlink, not mounted
)

// Bind makes host path Source visible at Target.
type Bind struct {
	Source   string   `json:"source"` // host path
	Target   string   `json:"target"`
	Kind     BindKind `json:"kind"`
	Writable bool     `json:"writable"`
	// Link is the symlink's target for BindSymlink.
	Link string `json:"link,omitempty"`
	// FD, when positive, is the descriptor (inherited by the supervisor)
	// of a detached copy of Source's mount tree made by the host. A
	// root-started session uses these: its supervisor runs as an
	// unprivileged host uid that may not be able to reach Source by
	// path (a module cache under /root).
	FD int `json:"fd,omitempty"`
}

// Limits are the session's resource limits. Zero means unlimited.
type Limits struct {
	MemoryBytes int64 `json:"memory_bytes"`
	Pids        int64 `json:"pids"`
	// CgroupManaged is true when the host placed the session in a
	// cgroup with these limits; otherwise the executor falls back to
	// rlimits.
	CgroupManaged  bool  `json:"cgroup_managed"`
	TimeoutMS      int64 `json:"timeout_ms"`
	OutputBytes    int64 `json:"output_bytes"`
	FileReadBytes  int64 `json:"file_read_bytes"`
	FileWriteBytes int64 `json:"file_write_bytes"`
	// DiskFreeBytes and DiskFreeInodes are the floors under the free
	// space and inodes of the host filesystems the session writes
	// (limits.disk_free, limits.disk_free_inodes); 0: none. The
	// supervisor refuses a fallocate that would cross the first; the
	// host stops calls that cross either.
	DiskFreeBytes  int64 `json:"disk_free_bytes,omitempty"`
	DiskFreeInodes int64 `json:"disk_free_inodes,omitempty"`
}

// HostWritable returns the paths in the session, the workspace and the
// writable binds, that lie on host filesystems the session can write:
// those whose free space limits.disk_free keeps.
func (p *Plan) HostWritable() []string {
	var out []string
	if p.WorkspaceWritable {
		out = append(out, p.Workspace)
	}
	for _, b := range p.Binds {
		if b.Writable && b.Kind != BindSymlink {
			out = append(out, b.Target)
		}
	}
	return out
}

// ProxyPort is the loopback port, the same in every session, on which the
// supervisor accepts connections for the host's egress proxy. Tools find
// it in HTTP_PROXY and the other proxy variables.
const ProxyPort = 3128

// ProtectKind says what a protection does.
type ProtectKind string

// Protection kinds.
const (
	// ProtectReadOnly binds the path over itself read-only: nothing at
	// or beneath it can be written, created, renamed or removed.
	ProtectReadOnly ProtectKind = "read_only"
	// ProtectPin binds a directory over itself read-write: its contents
	// stay writable, but it cannot be renamed away and replaced, which
	// would take the read-only paths beneath it along.
	ProtectPin ProtectKind = "pin"
)

// Protect is one path in the workspace that the view protects.
type Protect struct {
	// Path is relative to the workspace, clean, and had no symbolic link
	// in it when the host resolved it.
	Path string      `json:"path"`
	Kind ProtectKind `json:"kind"`
	// Dir says whether Path is a directory.
	Dir bool `json:"dir"`
	// Entry is the workspace.protect entry that asked for it, as written
	// in the policy.
	Entry string `json:"entry"`
}

// ViewPath returns where pr is in the session.
func (p *Plan) ViewPath(pr Protect) string { return path.Join(p.Workspace, pr.Path) }

// Lifted reports whether an fs.write grant in Unprotect lifts pr: a
// grant lifts the read-only protections at or beneath its path.
func (p *Plan) Lifted(pr Protect) bool {
	if pr.Kind != ProtectReadOnly {
		return false
	}
	at := p.ViewPath(pr)
	for _, u := range p.Unprotect {
		if within(at, path.Clean(u)) {
			return true
		}
	}
	return false
}

// Protecting returns the read-only protection in force that covers name
// (a path in the session, or one relative to the workspace), or nil. It
// names the rule when a write there is refused.
func (p *Plan) Protecting(name string) *Protect {
	if !path.IsAbs(name) {
		name = path.Join(p.Workspace, name)
	}
	name = path.Clean(name)
	for i := range p.Protect {
		pr := &p.Protect[i]
		if pr.Kind == ProtectReadOnly && within(name, p.ViewPath(*pr)) && !p.Lifted(*pr) {
			return pr
		}
	}
	return nil
}

// within reports whether name is dir or beneath it; both are clean.
func within(name, dir string) bool {
	return name == dir || dir == "/" || strings.HasPrefix(name, dir+"/")
}
