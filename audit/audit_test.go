package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func record(i int) Record {
	return Record{
		Kind:       GrantRequest,
		Session:    "s1",
		Grant:      fmt.Sprintf("g%d", i),
		Capability: "net.connect:github.com",
		Scope:      "session",
		DecidedBy:  "uid:1000",
		Reason:     fmt.Sprintf("fetch module %d", i),
		PolicyHash: strings.Repeat("ab", 32),
	}
}

// writeLog appends n records to a new log and returns its path.
func writeLog(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := 1; i <= n; i++ {
		if _, err := l.Append(record(i)); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func readLines(t *testing.T, path string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.SplitAfter(data, []byte("\n"))[:bytes.Count(data, []byte("\n"))]
}

func sum(line []byte) string {
	s := sha256.Sum256(bytes.TrimSuffix(line, []byte("\n")))
	return hex.EncodeToString(s[:])
}

func TestRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "cordon")
	path := filepath.Join(dir, "audit.jsonl")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if h := l.Head(); h != (Head{0, GenesisHash}) {
		t.Fatalf("empty log head %+v", h)
	}
	var got []Record
	for i := 1; i <= 3; i++ {
		r, err := l.Append(record(i))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	for _, p := range []struct {
		path string
		mode os.FileMode
	}{{dir, 0o700 | os.ModeDir}, {path, 0o600}} {
		if fi, err := os.Stat(p.path); err != nil || fi.Mode() != p.mode {
			t.Errorf("%s: mode %v, %v; want %v", p.path, fi.Mode(), err, p.mode)
		}
	}

	lines := readLines(t, path)
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3", len(lines))
	}
	prev := GenesisHash
	for i, line := range lines {
		var r Record
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatal(err)
		}
		if r.V != 1 || r.Seq != uint64(i+1) || r.Prev != prev || r.Time.Location().String() != "UTC" {
			t.Errorf("line %d: %+v", i+1, r)
		}
		if r.Reason != record(i+1).Reason || r.Kind != GrantRequest || !r.Time.Equal(got[i].Time) || r.Prev != got[i].Prev {
			t.Errorf("line %d = %+v, Append returned %+v", i+1, r, got[i])
		}
		prev = sum(line)
	}
	if h := l.Head(); h != (Head{3, prev}) {
		t.Errorf("head %+v, want {3 %s}", h, prev)
	}
	f, _ := os.Open(path)
	defer f.Close()
	if n, err := Verify(f); n != 3 || err != nil {
		t.Errorf("Verify = %d, %v", n, err)
	}
}

func TestReopenContinues(t *testing.T) {
	path := writeLog(t, 2)
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, path)
	if h := l.Head(); h != (Head{2, sum(lines[1])}) {
		t.Errorf("reopened head %+v", h)
	}
	r, err := l.Append(record(3))
	if err != nil {
		t.Fatal(err)
	}
	if r.Seq != 3 || r.Prev != sum(lines[1]) {
		t.Errorf("appended after reopen: %+v", r)
	}
	l.Close()
	data, _ := os.ReadFile(path)
	if n, err := Verify(bytes.NewReader(data)); n != 3 || err != nil {
		t.Errorf("Verify = %d, %v", n, err)
	}
}

func TestOpenRefusesBrokenChain(t *testing.T) {
	for _, tt := range []struct {
		name   string
		tamper func([]byte) []byte
		line   int
	}{
		{"edited", func(b []byte) []byte { return bytes.Replace(b, []byte("module 1"), []byte("module X"), 1) }, 2},
		{"truncated", func(b []byte) []byte { return b[:len(b)-10] }, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := writeLog(t, 3)
			data, _ := os.ReadFile(path)
			os.WriteFile(path, tt.tamper(data), 0o600)
			l, err := Open(path)
			var verr *VerifyError
			if !errors.As(err, &verr) || verr.Line != tt.line {
				if l != nil {
					l.Close()
				}
				t.Fatalf("Open = %v, want a *VerifyError at line %d", err, tt.line)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("line %d:", tt.line)) {
				t.Errorf("error %q does not name line %d", err, tt.line)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(after, tt.tamper(data)) {
				t.Error("Open changed a broken log")
			}
		})
	}
}

func TestOpenIsExclusive(t *testing.T) {
	path := writeLog(t, 1)
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if l2, err := Open(path); err == nil {
		l2.Close()
		t.Fatal("a second Open of a log in use succeeded")
	}
	l.Close()
	l3, err := Open(path) // control: free again once closed
	if err != nil {
		t.Fatal(err)
	}
	l3.Close()
}

// TestVerifyDetects tampers with copies of one good log; the untouched
// original verifies (the positive control).
func TestVerifyDetects(t *testing.T) {
	path := writeLog(t, 5)
	orig, _ := os.ReadFile(path)
	lines := readLines(t, path)
	join := func(ls ...[]byte) []byte { return bytes.Join(ls, nil) }

	// A forged record that follows line 2 correctly, inserted after it.
	var forged Record
	json.Unmarshal(lines[1], &forged)
	forged.Seq, forged.Prev, forged.Reason = 3, sum(lines[1]), "forged"
	forgedLine, _ := json.Marshal(forged)
	forgedLine = append(forgedLine, '\n')

	cases := []struct {
		name      string
		data      []byte
		line      int
		seq       uint64
		reasonHas string
	}{
		{"edited", join(lines[0], bytes.Replace(lines[1], []byte("module 2"), []byte("module 9"), 1), lines[2], lines[3], lines[4]), 3, 3, "prev does not match"},
		{"deleted", join(lines[0], lines[1], lines[3], lines[4]), 3, 4, "out of sequence, want seq 3"},
		{"swapped", join(lines[0], lines[2], lines[1], lines[3], lines[4]), 2, 3, "out of sequence, want seq 2"},
		{"inserted copy", join(lines[0], lines[1], lines[1], lines[2], lines[3], lines[4]), 3, 2, "out of sequence, want seq 3"},
		{"inserted forgery", join(lines[0], lines[1], forgedLine, lines[2], lines[3], lines[4]), 4, 3, "out of sequence, want seq 4"},
		{"first deleted", join(lines[1], lines[2], lines[3], lines[4]), 1, 2, "out of sequence, want seq 1"},
		{"truncated last line", orig[:len(orig)-5], 5, 5, "no newline"},
		{"blank line", join(lines[0], []byte("\n"), lines[1]), 2, 2, "empty line"},
		{"garbage", join(lines[0], []byte("{\"v\":1,\n")), 2, 2, "not a JSON record"},
	}
	for _, c := range cases {
		n, err := Verify(bytes.NewReader(c.data))
		var verr *VerifyError
		if !errors.As(err, &verr) {
			t.Errorf("%s: Verify = %d, %v; want a *VerifyError", c.name, n, err)
			continue
		}
		if verr.Line != c.line || verr.Seq != c.seq || !strings.Contains(verr.Reason, c.reasonHas) || n != c.line-1 {
			t.Errorf("%s: Verify = %d, %+v; want line %d seq %d %q and %d good records", c.name, n, verr, c.line, c.seq, c.reasonHas, c.line-1)
		}
	}
	if n, err := Verify(bytes.NewReader(orig)); n != 5 || err != nil {
		t.Fatalf("control: the original log: Verify = %d, %v", n, err)
	}
	if n, err := Verify(strings.NewReader("")); n != 0 || err != nil {
		t.Errorf("empty log: Verify = %d, %v", n, err)
	}
}

// TestCheckHead: what the chain alone misses (the last record removed or
// edited) is caught against a head kept earlier; a head kept earlier is
// still found after the log grew.
func TestCheckHead(t *testing.T) {
	path := writeLog(t, 5)
	orig, _ := os.ReadFile(path)
	lines := readLines(t, path)
	head := sum(lines[4])

	h, err := Check(bytes.NewReader(orig), head)
	if err != nil || h != (Head{5, head}) {
		t.Fatalf("control: Check(original, its head) = %+v, %v", h, err)
	}
	if _, err := Check(bytes.NewReader(orig), sum(lines[2])); err != nil {
		t.Errorf("an older head is not found in the grown log: %v", err)
	}
	if _, err := Check(bytes.NewReader(orig), GenesisHash); err != nil {
		t.Errorf("the empty head: %v", err)
	}

	dropped := bytes.Join(lines[:4], nil)
	edited := append(bytes.Join(lines[:4], nil), bytes.Replace(lines[4], []byte("module 5"), []byte("module 6"), 1)...)
	for name, data := range map[string][]byte{"last deleted": dropped, "last edited": edited} {
		if _, err := Verify(bytes.NewReader(data)); err != nil {
			t.Errorf("%s: Verify = %v; the chain alone is expected to miss this", name, err)
		}
		if _, err := Check(bytes.NewReader(data), head); !errors.Is(err, ErrHeadNotFound) {
			t.Errorf("%s: Check with the kept head = %v, want ErrHeadNotFound", name, err)
		}
	}
}

func TestConcurrentAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 8, 25
	var wg sync.WaitGroup
	seqs := make(chan uint64, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				r, err := l.Append(record(w*each + i))
				if err != nil {
					t.Error(err)
					return
				}
				seqs <- r.Seq
			}
		})
	}
	wg.Wait()
	close(seqs)
	seen := map[uint64]bool{}
	for s := range seqs {
		if seen[s] {
			t.Errorf("seq %d given twice", s)
		}
		seen[s] = true
	}
	l.Close()
	data, _ := os.ReadFile(path)
	if n, err := Verify(bytes.NewReader(data)); n != writers*each || err != nil {
		t.Errorf("Verify = %d, %v; want %d records", n, err, writers*each)
	}
}

func TestAppendRefuses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	bad := record(1)
	bad.Kind = "grant.bogus"
	if _, err := l.Append(bad); err == nil {
		t.Error("unknown kind accepted")
	}
	long := record(1)
	long.Reason = strings.Repeat("x", MaxLine)
	if _, err := l.Append(long); err == nil {
		t.Error("over-long record accepted")
	}
	if r, err := l.Append(record(1)); err != nil || r.Seq != 1 {
		t.Errorf("control: a good record after refusals: %+v, %v", r, err)
	}
}

// TestAppendAfterWriteFailure: a failed write fails every later Append,
// and what is on disk still verifies.
func TestAppendAfterWriteFailure(t *testing.T) {
	path := writeLog(t, 2)
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	l.f.Close() // the next write fails
	if _, err := l.Append(record(3)); err == nil {
		t.Fatal("Append to a closed file succeeded")
	}
	if _, err := l.Append(record(3)); err == nil {
		t.Fatal("Append after a failed write succeeded")
	}
	if h := l.Head(); h.Seq != 2 {
		t.Errorf("head moved to %+v on a failed write", h)
	}
	data, _ := os.ReadFile(path)
	if n, err := Verify(bytes.NewReader(data)); n != 2 || err != nil {
		t.Errorf("Verify = %d, %v", n, err)
	}
}

func TestVerifyLongLine(t *testing.T) {
	path := writeLog(t, 1)
	data, _ := os.ReadFile(path)
	data = append(data, bytes.Repeat([]byte("x"), MaxLine+10)...)
	data = append(data, '\n')
	n, err := Verify(bytes.NewReader(data))
	var verr *VerifyError
	if !errors.As(err, &verr) || verr.Line != 2 || n != 1 {
		t.Errorf("Verify = %d, %v; want a *VerifyError at line 2", n, err)
	}
}

func TestDefaultPath(t *testing.T) {
	if os.Geteuid() == 0 {
		if p := DefaultPath(); p != "/var/lib/cordon/audit.jsonl" {
			t.Errorf("root: DefaultPath = %q", p)
		}
		return
	}
	t.Setenv("XDG_STATE_HOME", "/xdg/state")
	if p := DefaultPath(); p != "/xdg/state/cordon/audit.jsonl" {
		t.Errorf("DefaultPath = %q", p)
	}
	t.Setenv("XDG_STATE_HOME", "relative") // ignored, as the XDG spec says
	t.Setenv("HOME", "/home/ann")
	if p := DefaultPath(); p != "/home/ann/.local/state/cordon/audit.jsonl" {
		t.Errorf("DefaultPath = %q", p)
	}
}

func FuzzVerify(f *testing.F) {
	dir := f.TempDir()
	l, err := Open(filepath.Join(dir, "audit.jsonl"))
	if err != nil {
		f.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		l.Append(record(i))
	}
	l.Close()
	good, _ := os.ReadFile(l.Path())
	f.Add(good)
	f.Add(good[:len(good)-3])
	f.Add([]byte("\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := Verify(bytes.NewReader(data))
		var verr *VerifyError
		switch {
		case err == nil:
			if n != bytes.Count(data, []byte("\n")) {
				t.Fatalf("%d records from %d lines", n, bytes.Count(data, []byte("\n")))
			}
		case !errors.As(err, &verr):
			t.Fatalf("error %v is %T, not *VerifyError", err, err)
		case n != verr.Line-1:
			t.Fatalf("%d good records before the break at line %d", n, verr.Line)
		}
	})
}
