package linux

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"golang.org/x/sys/unix"
)

// TestReadDir compares ReadDir with the standard library on a directory
// with every common type of entry and more names than one read returns.
func TestReadDir(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	os.Symlink("sub", filepath.Join(dir, "link"))
	for i := range 300 {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("file-with-a-long-name-%03d", i)), nil, 0o644)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	got, err := ReadDir(fd, dir)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(got, func(i, j int) bool { return got[i].Name < got[j].Name })
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
	types := map[os.FileMode]uint8{0: unix.DT_REG, os.ModeDir: unix.DT_DIR, os.ModeSymlink: unix.DT_LNK}
	for i, w := range want {
		if got[i].Name != w.Name() || got[i].Type != types[w.Type()] {
			t.Errorf("entry %d: %+v, want %s %v", i, got[i], w.Name(), w.Type())
		}
	}
	if slices.ContainsFunc(got, func(d Dirent) bool { return d.Name == "." || d.Name == ".." }) {
		t.Error(". or .. listed")
	}
}
