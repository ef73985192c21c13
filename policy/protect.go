package policy

import (
	"fmt"
	"strings"
)

// Limits of a workspace.protect entry, as the kernel's (PATH_MAX,
// NAME_MAX).
const (
	maxProtectPath = 4096
	maxProtectName = 255
)

// checkProtect checks one workspace.protect entry; "" means fine. An entry
// is a clean path relative to the workspace, below it, with wildcards in
// at most one element and no "**": finding what an entry names then reads
// at most one directory, so session start stays fast on any tree.
func checkProtect(e string) string {
	switch {
	case e == "":
		return "path is empty"
	case strings.IndexByte(e, 0) >= 0:
		return "path contains a NUL byte"
	case len(e) > maxProtectPath:
		return fmt.Sprintf("path is %d bytes long; the limit is %d", len(e), maxProtectPath)
	case strings.HasPrefix(e, "/"):
		return fmt.Sprintf("%q must be relative to the workspace", e)
	case e == ".":
		return fmt.Sprintf("%q is the workspace itself; set workspace.access: read to make all of it read-only", e)
	}
	wild := 0
	for _, el := range strings.Split(e, "/") {
		switch {
		case el == "..":
			return fmt.Sprintf("%q leaves the workspace", e)
		case el == "" || el == ".":
			return fmt.Sprintf("%q is not clean (no \"..\", \".\", \"//\" or trailing \"/\")", e)
		case len(el) > maxProtectName:
			return fmt.Sprintf("%q has a %d byte name; the limit is %d", e, len(el), maxProtectName)
		case strings.Contains(el, "**"):
			return fmt.Sprintf("%q: \"**\" is not supported: protecting at any depth would walk the whole workspace at every session start; list the paths, or use \"*\" for one level", e)
		}
		if HasWildcard(el) {
			wild++
		}
	}
	if wild > 1 {
		return fmt.Sprintf("%q has wildcards in %d elements; one at most, so that finding what it names reads one directory", e, wild)
	}
	return ""
}

// HasWildcard reports whether an element of a workspace.protect entry
// has a wildcard ("*" or "?").
func HasWildcard(el string) bool { return strings.ContainsAny(el, "*?") }

// MatchName reports whether name, one file name, matches el, one element
// of a workspace.protect entry: "*" matches any run of characters, "?"
// one character, and every other character itself. A leading "." is not
// special: "*" matches ".git".
func MatchName(el, name string) bool {
	if strings.IndexByte(name, '/') >= 0 {
		return false
	}
	return glob(el, name)
}
