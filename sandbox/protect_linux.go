package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cordon-sandbox/cordon/internal/linux"
	"github.com/cordon-sandbox/cordon/internal/plan"
	"github.com/cordon-sandbox/cordon/policy"
)

// maxProtectScan bounds how many directory entries beneath protected
// directories the host examines for links at session start; past it,
// what is left is not examined and a warning says so.
const maxProtectScan = 1024

// resolveProtect finds what the workspace.protect entries name in the
// workspace ws (a canonical host path) and returns the protections the
// view is to make, parents first, with warnings about what it cannot
// protect.
//
// It reads the workspace as it is now; the supervisor opens every path
// again inside the view, refusing symbolic links, and mounts over the
// very object it opened, so a change made in between fails the session
// instead of moving a mount. What the host sees here only decides which
// paths are asked for.
//
// For each entry:
//   - a path that does not exist is skipped (nothing to cover);
//   - a symbolic link at or above it is not protected, with a warning:
//     a mount cannot pin a link, and the session could replace it;
//   - a regular file where the entry has a directory is protected itself
//     (a ".git" file names the repository git uses);
//   - the directories between the workspace and the path are pinned.
//
// Beneath each protected directory (up to maxProtectScan entries), a link
// to a file or directory elsewhere in the workspace gets its target
// protected too, since whoever reads the link reads the target. A
// protected file (an entry or a link's target) with other hard links
// gets a warning, since those stay writable; files inside protected
// directories are not checked for hard links (a stat each).
func resolveProtect(ws string, entries []string) ([]plan.Protect, []string, error) {
	how := unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_NO_SYMLINKS}
	fd, err := unix.Openat2(unix.AT_FDCWD, ws, &how)
	if err != nil {
		return nil, nil, &os.PathError{Op: "openat2", Path: ws, Err: err}
	}
	s := &protectScan{ws: ws, root: fd, found: map[string]*plan.Protect{}, stats: map[string]statResult{}, dirs: map[string]dirResult{}, scanned: map[string]bool{}}
	defer unix.Close(fd)
	for _, e := range entries {
		s.walk(e, "", strings.Split(e, "/"))
	}
	s.scanAll()
	return s.list(), s.warnings, nil
}

type protectScan struct {
	ws       string
	root     int // the workspace, O_PATH
	found    map[string]*plan.Protect
	stats    map[string]statResult
	dirs     map[string]dirResult
	scanned  map[string]bool // read-only directories already scanned
	budget   int             // entries examined beneath protected directories
	linked   []string        // protected files with other hard links
	warnings []string
}

func (s *protectScan) warn(format string, args ...any) {
	w := "workspace.protect: " + fmt.Sprintf(format, args...)
	if !slices.Contains(s.warnings, w) {
		s.warnings = append(s.warnings, w)
	}
}

// exists reports whether rel exists, following links (a wildcard in it
// is taken literally).
func (s *protectScan) exists(rel string) bool {
	var st unix.Stat_t
	return unix.Fstatat(s.root, rel, &st, 0) == nil
}

// stat lstats rel (relative to the workspace; "" is the workspace), once
// per scan: entries share their first elements (".git").
func (s *protectScan) stat(rel string) (*unix.Stat_t, error) {
	if r, ok := s.stats[rel]; ok {
		return r.st, r.err
	}
	st := new(unix.Stat_t)
	err := unix.Fstatat(s.root, orDot(rel), st, unix.AT_SYMLINK_NOFOLLOW)
	if err != nil {
		st = nil
	}
	s.stats[rel] = statResult{st, err}
	return st, err
}

type statResult struct {
	st  *unix.Stat_t
	err error
}

// walk resolves the elements els of entry e from directory dir: a
// literal element with one lstat, a wildcard from the directory's
// listing (one read per directory, however many entries look in it,
// and the listing's types spare a stat of each name). Listing every
// directory instead would cost more in a workspace whose top holds
// thousands of names.
func (s *protectScan) walk(e, dir string, els []string) {
	el, rest := els[0], els[1:]
	wild := policy.HasWildcard(el)
	cands := []linux.Dirent{{Name: el, Type: unix.DT_UNKNOWN}}
	if wild {
		ents, err := s.readDir(dir)
		if err != nil {
			s.warn("%s: reading %s: %v", e, orDot(dir), errors.Unwrap(err))
			return
		}
		cands = cands[:0]
		for _, d := range ents {
			// On the way to a deeper element only directories
			// matter (links a wildcard meets are passed over).
			if len(rest) > 0 && d.Type != unix.DT_DIR && d.Type != unix.DT_UNKNOWN {
				continue
			}
			if policy.MatchName(el, d.Name) {
				cands = append(cands, d)
			}
		}
	}
	for _, d := range cands {
		rel := path.Join(dir, d.Name)
		typ, err := s.typeOf(rel, d)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			continue
		}
		if err != nil {
			s.warn("%s: %s: %v", e, rel, err)
			continue
		}
		switch {
		case typ == unix.DT_LNK:
			// Said when something is there to protect: the link
			// itself, or what the entry names through it. (Links
			// that a wildcard meets on the way are passed over: a
			// stat each, in a directory that may hold thousands.)
			if len(rest) == 0 || !wild && s.exists(path.Join(rel, path.Join(rest...))) {
				s.warn("%s is a symbolic link; %s is not protected (a mount cannot pin a link)", rel, path.Join(rel, path.Join(rest...)))
			}
		case len(rest) == 0:
			s.add(rel, typ == unix.DT_DIR, e)
		case typ == unix.DT_DIR:
			s.walk(e, rel, rest)
		case typ == unix.DT_REG && !wild:
			// What tools read instead of the directory the entry
			// expects: a .git file names the repository.
			s.add(rel, false, e)
		}
	}
}

// typeOf returns the type (DT_*) of entry d at rel, with an lstat when
// the listing did not say (or there was no listing).
func (s *protectScan) typeOf(rel string, d linux.Dirent) (uint8, error) {
	if d.Type != unix.DT_UNKNOWN {
		return d.Type, nil
	}
	st, err := s.stat(rel)
	if err != nil {
		return 0, err
	}
	return uint8((st.Mode & unix.S_IFMT) >> 12), nil // DT_* is S_IFMT>>12
}

func orDot(rel string) string {
	if rel == "" {
		return "."
	}
	return rel
}

// readDir lists directory rel of the workspace, once per scan, in the
// kernel's order.
func (s *protectScan) readDir(rel string) ([]linux.Dirent, error) {
	if r, ok := s.dirs[rel]; ok {
		return r.ents, r.err
	}
	ents, err := s.read(rel)
	s.dirs[rel] = dirResult{ents, err}
	return ents, err
}

type dirResult struct {
	ents []linux.Dirent
	err  error
}

func (s *protectScan) read(rel string) ([]linux.Dirent, error) {
	how := unix.OpenHow{Flags: unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS}
	fd, err := unix.Openat2(s.root, orDot(rel), &how)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: orDot(rel), Err: err}
	}
	defer unix.Close(fd)
	return linux.ReadDir(fd, orDot(rel))
}

// add records a read-only protection of rel and pins the directories
// that lead to it.
func (s *protectScan) add(rel string, dir bool, e string) {
	for a := path.Dir(rel); a != "."; a = path.Dir(a) {
		if _, ok := s.found[a]; !ok {
			s.found[a] = &plan.Protect{Path: a, Kind: plan.ProtectPin, Dir: true, Entry: e}
		}
	}
	if pr, ok := s.found[rel]; ok {
		pr.Kind = plan.ProtectReadOnly // a pin asked for by another entry
		return
	}
	s.found[rel] = &plan.Protect{Path: rel, Kind: plan.ProtectReadOnly, Dir: dir, Entry: e}
	if st, err := s.stat(rel); err == nil && !dir && st.Nlink > 1 {
		s.linked = append(s.linked, rel)
	}
}

// scanAll examines what is beneath every protected directory until
// nothing new is added.
func (s *protectScan) scanAll() {
	for {
		var next []*plan.Protect
		for _, pr := range s.found {
			if pr.Kind == plan.ProtectReadOnly && pr.Dir && !s.scanned[pr.Path] {
				next = append(next, pr)
			}
		}
		if len(next) == 0 {
			break
		}
		sort.Slice(next, func(i, j int) bool { return next[i].Path < next[j].Path })
		for _, pr := range next {
			s.scanned[pr.Path] = true
			if d := path.Dir(pr.Path); d == "." || !s.protected(d) {
				s.scan(pr.Path, pr.Entry)
			}
		}
	}
	if n := len(s.linked); n > 0 {
		sort.Strings(s.linked)
		names := strings.Join(s.linked[:min(n, 3)], ", ")
		if n > 3 {
			names += ", ..."
		}
		s.warn("%d protected files have other hard links, which stay writable: %s", n, names)
	}
}

// scan examines the tree beneath protected directory dir for links.
func (s *protectScan) scan(dir, e string) {
	ents, err := s.readDir(dir)
	if err != nil {
		s.warn("%s: reading %s: %v", e, dir, errors.Unwrap(err))
		return
	}
	for _, d := range ents {
		if s.budget++; s.budget == maxProtectScan+1 {
			s.warn("more than %d files beneath protected directories; links past them were not examined", maxProtectScan)
		}
		if s.budget > maxProtectScan {
			return
		}
		rel := path.Join(dir, d.Name)
		typ, err := s.typeOf(rel, d)
		if err != nil {
			continue // gone meanwhile
		}
		switch typ {
		case unix.DT_DIR:
			s.scan(rel, e)
		case unix.DT_LNK:
			s.linkTarget(rel, e)
		}
	}
}

// linkTarget protects the target of link rel, found beneath a protected
// directory, when it is elsewhere in the workspace: the link cannot
// change, but the target could. A target outside the workspace is the
// policy's mounts' business. The workspace itself, a directory that
// holds the link, or one that leads to other protected paths is not
// protected (that would make the repository read-only), with a warning.
func (s *protectScan) linkTarget(rel, e string) {
	real, err := filepath.EvalSymlinks(filepath.Join(s.ws, rel))
	if err != nil {
		return // dangling
	}
	target, inside := strings.CutPrefix(real, s.ws+"/")
	if real == s.ws || inside && (strings.HasPrefix(rel, target+"/") || s.found[target] != nil && s.found[target].Kind == plan.ProtectPin) {
		s.warn("%s links to %s, which holds protected paths; the target is not protected", rel, orDot(target))
		return
	}
	if !inside || s.protected(target) {
		return
	}
	st, err := s.stat(target)
	if err != nil || st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return // changed meanwhile
	}
	s.add(target, st.Mode&unix.S_IFMT == unix.S_IFDIR, e)
}

// protected reports whether rel is at or beneath a read-only protection.
func (s *protectScan) protected(rel string) bool {
	for p := rel; p != "."; p = path.Dir(p) {
		if pr, ok := s.found[p]; ok && pr.Kind == plan.ProtectReadOnly {
			return true
		}
	}
	return false
}

// list returns the protections parents first, without those beneath a
// read-only one (it covers them already).
func (s *protectScan) list() []plan.Protect {
	out := make([]plan.Protect, 0, len(s.found))
	for _, pr := range s.found {
		if d := path.Dir(pr.Path); d != "." && s.protected(d) {
			continue
		}
		out = append(out, *pr)
	}
	sort.Slice(out, func(i, j int) bool {
		di, dj := strings.Count(out[i].Path, "/"), strings.Count(out[j].Path, "/")
		if di != dj {
			return di < dj
		}
		return out[i].Path < out[j].Path
	})
	return out
}

// protectedPaths lists the read-only protections of p in force, relative
// to the workspace, for the session.start event.
func protectedPaths(p *plan.Plan) []string {
	var out []string
	for _, pr := range p.Protect {
		if pr.Kind == plan.ProtectReadOnly && !p.Lifted(pr) {
			out = append(out, pr.Path)
		}
	}
	return out
}
