package kaudit

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fixtureLines seeds the fuzzers with the captured records.
func fixtureLines(f *testing.F) []string {
	b, err := os.ReadFile(filepath.Join("testdata", "records.log"))
	if err != nil {
		f.Fatal(err)
	}
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

// FuzzParseRecord feeds arbitrary record text, as a process on the
// host could partly choose it (a file name, a command line), to the
// parser and the event builders.
func FuzzParseRecord(f *testing.F) {
	for _, l := range fixtureLines(f) {
		if r, err := parseLogLine(l); err == nil {
			_, text, _ := strings.Cut(l, "msg=")
			f.Add(r.Type, text)
		}
	}
	f.Add(uint16(typeLandlockAccess), `audit(1.000:1): path="a b" name='x y' comm=ZZ exe=4 =v k= "`)
	f.Add(uint16(typeSyscall), "audit(1.999:18446744073709551615): a=\x1db=c")
	f.Fuzz(func(t *testing.T, typ uint16, text string) {
		r, err := parseRecord(typ, text)
		if err != nil {
			return
		}
		if len(r.Fields) > maxFields {
			t.Fatalf("%d fields", len(r.Fields))
		}
		for _, fl := range r.Fields {
			if fl.Key == "" || strings.ContainsAny(fl.Key, "= \x1d") {
				t.Fatalf("bad key %q in %q", fl.Key, text)
			}
			if v := decode(fl.Key, fl.Value); len(v) > len(fl.Value) {
				t.Fatalf("decoded %q longer than %q", v, fl.Value)
			}
		}
		d := denialFrom(r, r, r, true, true)
		if d.Serial != r.Serial || d.Fields == nil {
			t.Fatalf("denial %+v from %+v", d, r)
		}
		if dom := domainFrom(r); dom.Serial != r.Serial {
			t.Fatalf("domain %+v from %+v", dom, r)
		}
	})
}

// FuzzAssemble feeds arbitrary lines, in any order and with any
// serials, through the assembler, with time passing.
func FuzzAssemble(f *testing.F) {
	lines := fixtureLines(f)
	f.Add(strings.Join(lines, "\n"))
	f.Add(strings.Join(lines[:12], "\n"))
	f.Add("type=1423 msg=audit(1.000:1): domain=a\ntype=1320 msg=audit(1.000:1): \ntype=1320 msg=audit(1.000:1): ")
	f.Fuzz(func(t *testing.T, data string) {
		const maxPending = 8
		a := newAssembler(time.Second, maxPending)
		now := time.Unix(0, 0)
		serials := map[uint64]bool{}
		check := func(es []Event) {
			for _, e := range es {
				switch {
				case e.Denial != nil && e.Domain == nil:
					if !serials[e.Denial.Serial] {
						t.Fatalf("denial of serial %d that never came", e.Denial.Serial)
					}
				case e.Domain != nil && e.Denial == nil:
				default:
					t.Fatalf("event %+v", e)
				}
			}
		}
		for i, l := range strings.Split(data, "\n") {
			r, err := parseLogLine(l)
			if err != nil {
				continue
			}
			if r.Type == typeLandlockAccess {
				serials[r.Serial] = true
			}
			now = now.Add(time.Duration(i%7) * 100 * time.Millisecond)
			check(a.add(r, now))
			check(a.expire(now))
			if len(a.pending) > maxPending {
				t.Fatalf("%d groups pending", len(a.pending))
			}
			if dl, ok := a.deadline(); ok && dl.Before(now) {
				t.Fatalf("deadline %v passed at %v after expire", dl, now)
			}
		}
		check(a.flush())
		if len(a.pending) != 0 {
			t.Fatalf("%d groups after flush", len(a.pending))
		}
	})
}
