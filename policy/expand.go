package policy

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
)

var varPattern = regexp.MustCompile(`\$\{[A-Za-z_][A-Za-z0-9_]*\}`)

// checkVars checks the "$" syntax of a host path: every "$" starts
// "${NAME}" or is doubled ("$$" is a literal "$"). "" means fine.
func checkVars(p string) string {
	for i := 0; i < len(p); i++ {
		if p[i] != '$' {
			continue
		}
		if i+1 < len(p) && p[i+1] == '$' {
			i++
			continue
		}
		if i+1 >= len(p) || p[i+1] != '{' {
			return fmt.Sprintf("%q: a \"$\" must start ${NAME}, or be written \"$$\" for a literal \"$\"", p)
		}
		end := strings.IndexByte(p[i:], '}')
		if end < 0 {
			return fmt.Sprintf("%q: unterminated ${", p)
		}
		if name := p[i+2 : i+end]; !ValidEnvName(name) {
			return fmt.Sprintf("%q: invalid variable name %q in ${...}", p, name)
		}
		i += end
	}
	return ""
}

// expandPath expands "~/" and ${VAR} in a host path that passed
// checkHostPath. unset names the first variable that getenv left empty.
func expandPath(p, home string, getenv func(string) string) (out, unset string) {
	var b strings.Builder
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		b.WriteString(home)
		b.WriteByte('/')
		p = rest
	}
	for i := 0; i < len(p); i++ {
		if p[i] != '$' {
			b.WriteByte(p[i])
			continue
		}
		if p[i+1] == '$' {
			b.WriteByte('$')
			i++
			continue
		}
		end := strings.IndexByte(p[i:], '}')
		name := p[i+2 : i+end]
		val := ""
		if getenv != nil {
			val = getenv(name)
		}
		if val == "" && unset == "" {
			unset = name
		}
		b.WriteString(val)
		i += end
	}
	return b.String(), unset
}

// Expand returns a copy of the policy with "~/" (home) and ${VAR} (getenv)
// expanded in every Mount.Path. getenv returning "" counts as unset: a
// required mount that uses an unset variable is an error, an optional one
// is dropped. An expanded path must be absolute; it is cleaned, but one
// with a ".." element is an error. home must be absolute and is needed
// only when a path starts with "~/".
//
// Expand then validates the copy (an expanded path may now land under
// /proc, or on top of another mount) and returns an *Error listing every
// problem, so its result needs no further Validate.
func (p *Policy) Expand(home string, getenv func(string) string) (*Policy, error) {
	if p.expanded {
		return p.Clone(), nil
	}
	q := p.Clone()
	q.expanded = true
	perr := &Error{Source: p.source}
	homeOK := home != "" && checkViewPath(home) == "" && home != "/"
	lines := q.lines
	for _, list := range []struct {
		name   string
		mounts *[]Mount
	}{{"filesystem.read", &q.Filesystem.Read}, {"filesystem.write", &q.Filesystem.Write}} {
		var kept []Mount
		var keptFrom []int
		for i, m := range *list.mounts {
			field := fmt.Sprintf("%s[%d].path", list.name, i)
			line := p.Line(field)
			if msg := checkHostPath(m.Path); msg != "" {
				perr.add(line, field, msg)
				continue
			}
			if strings.HasPrefix(m.Path, "~/") && !homeOK {
				perr.add(line, field, fmt.Sprintf("cannot expand \"~/\": home directory %q is not an absolute clean path", home))
				continue
			}
			out, unset := expandPath(m.Path, home, getenv)
			if unset != "" {
				if !m.Optional {
					perr.add(line, field, fmt.Sprintf("%q: ${%s} is not set (mark the mount optional to skip it instead)", m.Path, unset))
				}
				continue
			}
			switch {
			case strings.IndexByte(out, 0) >= 0:
				perr.add(line, field, fmt.Sprintf("%q expands to a path with a NUL byte", m.Path))
				continue
			case !strings.HasPrefix(out, "/"):
				perr.add(line, field, fmt.Sprintf("%q expands to %q, which is not absolute", m.Path, out))
				continue
			case slices.Contains(strings.Split(out, "/"), ".."):
				perr.add(line, field, fmt.Sprintf("%q expands to %q, which contains \"..\"", m.Path, out))
				continue
			}
			m.Path = path.Clean(out)
			kept = append(kept, m)
			keptFrom = append(keptFrom, i)
		}
		if len(kept) == 0 && *list.mounts != nil {
			kept = []Mount{}
		}
		*list.mounts = kept
		q.lines = renumber(q.lines, lines, list.name, keptFrom)
	}
	if len(perr.Problems) > 0 {
		perr.sort()
		return nil, perr
	}
	if err := q.Validate(); err != nil {
		return nil, err
	}
	return q, nil
}

// renumber moves the positions of list items "name[from[j]]..." in old to
// "name[j]..." in a copy of cur, dropping those of removed items.
func renumber(cur, old map[string]int, name string, from []int) map[string]int {
	if old == nil {
		return cur
	}
	out := make(map[string]int, len(cur))
	prefix := name + "["
	for k, v := range cur {
		if !strings.HasPrefix(k, prefix) {
			out[k] = v
		}
	}
	for j, i := range from {
		oldPrefix := fmt.Sprintf("%s[%d]", name, i)
		newPrefix := fmt.Sprintf("%s[%d]", name, j)
		for k, v := range old {
			if rest, ok := strings.CutPrefix(k, oldPrefix); ok && (rest == "" || rest[0] == '.' || rest[0] == '[') {
				out[newPrefix+rest] = v
			}
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
