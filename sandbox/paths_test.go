package sandbox

import (
	"path"
	"strings"
	"testing"
)

func TestCleanPath(t *testing.T) {
	ws := "/work/ws"
	ok := map[string]string{
		"a.txt": "a.txt", "./a/../b": "b", "/work/ws": ".", "/work/ws/x/y": "x/y", ".": ".", "a//b/": "a/b",
	}
	for in, want := range ok {
		if got, err := cleanPath(ws, in); err != nil || got != want {
			t.Errorf("cleanPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "..", "../x", "a/../../x", "/etc/passwd", "/work/wsx/y", "/work", "a\x00b", strings.Repeat("n", 256), strings.Repeat("a/", 2049)} {
		if got, err := cleanPath(ws, in); err == nil {
			t.Errorf("cleanPath(%.30q) = %q, want an error", in, got)
		}
	}
}

// FuzzCleanPath: whatever the caller sends, an accepted path is relative,
// clean, and stays beneath the workspace lexically.
func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{"a", "../b", "/work/ws/c", "a/./b/../../..", "/", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		rel, err := cleanPath("/work/ws", p)
		if err != nil {
			return
		}
		if path.IsAbs(rel) || rel != path.Clean(rel) || rel == ".." || strings.HasPrefix(rel, "../") || strings.ContainsRune(rel, 0) {
			t.Fatalf("cleanPath(%q) accepted %q", p, rel)
		}
		if j := path.Join("/work/ws", rel); j != "/work/ws" && !strings.HasPrefix(j, "/work/ws/") {
			t.Fatalf("cleanPath(%q) = %q escapes to %q", p, rel, j)
		}
	})
}
