package bench

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLoadTrace(t *testing.T) {
	tr, err := LoadTrace("testdata/workloads/traces/smoke.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if tr.ID != "smoke" || len(tr.Calls) != 12 || tr.Calls[4].ReturnCode != 2 {
		t.Fatalf("trace: %s, %d calls, %+v", tr.ID, len(tr.Calls), tr.Calls[4])
	}
	argv := tr.Calls[1].Argv("/w/tree")
	if want := []string{"/bin/bash", "-c", "cat README && cat /w/tree/src/demo/__init__.py"}; !slices.Equal(argv, want) {
		t.Errorf("argv %q, want %q", argv, want)
	}
	if n := len(tr.Head(3).Calls); n != 3 || len(tr.Calls) != 12 {
		t.Errorf("Head(3) has %d calls (trace now %d)", n, len(tr.Calls))
	}
	dir := t.TempDir()
	for name, body := range map[string]string{
		"bad.jsonl":   "{not json}\n",
		"empty.jsonl": "\n",
		"kind.jsonl":  `{"kind": "edit", "command": "x"}` + "\n",
		"nocmd.jsonl": `{"kind": "bash"}` + "\n",
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o644)
		if _, err := LoadTrace(p); err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
}

// TestRealTraces checks that the shared traces parse, when present.
func TestRealTraces(t *testing.T) {
	files, err := DefaultWorkloads().Traces()
	if err != nil {
		if os.Getenv("CORDON_BENCH_FULL") != "" {
			t.Fatal(err)
		}
		t.Skipf("workloads not on this machine (%v); CORDON_BENCH_FULL is unset", err)
	}
	for _, f := range files {
		if _, err := LoadTrace(f); err != nil {
			t.Error(err)
		}
	}
}

func TestParseModes(t *testing.T) {
	m, err := ParseModes("library, percall,library,bare")
	if err != nil || !slices.Equal(m, []Mode{ModeBare, ModeLibrary, ModePerCall}) {
		t.Errorf("ParseModes = %v, %v", m, err)
	}
	if _, err := ParseModes("bare,docker"); err == nil {
		t.Error("unknown mode accepted")
	}
}

func TestStats(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	d := distOf(ds)
	if d.N != 100 || d.P50MS != 50.5 || d.P99MS != 99 || d.MeanMS != 50.5 {
		t.Errorf("dist %+v", d)
	}
	if median([]time.Duration{3, 1, 2}) != 2 || median(nil) != 0 {
		t.Error("median")
	}
}

func TestNormalise(t *testing.T) {
	in := "/w/run/tree/x/a.py: <Obj at 0x7f3a2b4c5d60> in /w/run/home and /w/run/home.tmp/t1 and /home/cordon\n1 passed in 0.12s\n"
	got := normalise([]byte(in), "/w/run/tree/x", "/w/run/home")
	want := "/testbed/a.py: <Obj at 0x<ADDR>> in ~ and /tmp/t1 and ~\n1 passed in <T>s\n"
	if got != want {
		t.Errorf("normalise:\n got %q\nwant %q", got, want)
	}
	if strings.Contains(normalise([]byte("exit 0x1f"), "", ""), "ADDR") {
		t.Error("short hex numbers are not addresses")
	}
}
