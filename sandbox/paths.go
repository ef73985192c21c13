package sandbox

import (
	"fmt"
	"path"
	"strings"
)

// Path limits, as the kernel's (PATH_MAX, NAME_MAX).
const (
	maxPath = 4096
	maxName = 255
)

// cleanPath checks a caller's path lexically and returns it relative to
// the workspace ("." for the workspace itself). It refuses NUL bytes,
// over-long paths and names, ".." that climbs out, and absolute paths
// outside the workspace. Symlinks are the executor's job: it resolves
// with RESOLVE_BENEATH, which no lexical check can replace.
func cleanPath(ws, p string) (string, error) {
	switch {
	case p == "":
		return "", fmt.Errorf("empty path")
	case strings.IndexByte(p, 0) >= 0:
		return "", fmt.Errorf("path contains a NUL byte")
	case len(p) > maxPath:
		return "", fmt.Errorf("path is %d bytes long; the limit is %d", len(p), maxPath)
	}
	for _, name := range strings.Split(p, "/") {
		if len(name) > maxName {
			return "", fmt.Errorf("path has a %d byte name; the limit is %d", len(name), maxName)
		}
	}
	if path.IsAbs(p) {
		c := path.Clean(p)
		if c == ws {
			return ".", nil
		}
		rel, ok := strings.CutPrefix(c, ws+"/")
		if !ok {
			return "", errOutside
		}
		return rel, nil
	}
	c := path.Clean(p)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", errOutside
	}
	return c, nil
}

var errOutside = fmt.Errorf("path is outside the workspace")
