package policy

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

func TestParseByteSize(t *testing.T) {
	good := map[string]ByteSize{
		"0":          0,
		"4096":       4096,
		"1B":         1,
		"1KiB":       KiB,
		"2GiB":       2 * GiB,
		"512MiB":     512 * MiB,
		"1.5GiB":     1536 * MiB,
		"0.5KiB":     512,
		"1kB":        1000,
		"1KB":        1000,
		"1.5GB":      1500000000,
		"7EiB":       7 * EiB,
		"-1MiB":      -MiB,
		"-8EiB":      math.MinInt64,
		"8EB":        8e18,
		"0.000001MB": 1,
	}
	for s, want := range good {
		got, err := ParseByteSize(s)
		if err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "GiB", "1 GiB", "1gib", "1Gi", "1.GiB", ".5GiB", "1e9", "0x10", "8EiB", "10EB", "+1", "1.0000001KiB", "--1", "1KiBB"} {
		if got, err := ParseByteSize(s); err == nil {
			t.Errorf("ParseByteSize(%q) = %d, want error", s, got)
		}
	}
}

func TestByteSizeString(t *testing.T) {
	for b, want := range map[ByteSize]string{
		0:             "0",
		1:             "1B",
		1000:          "1000B",
		KiB:           "1KiB",
		1536 * KiB:    "1536KiB",
		4 * GiB:       "4GiB",
		16 * MiB:      "16MiB",
		-MiB:          "-1MiB",
		math.MinInt64: "-8EiB",
		math.MaxInt64: "9223372036854775807B",
	} {
		if got := b.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int64(b), got, want)
		}
		back, err := ParseByteSize(b.String())
		if err != nil || back != b {
			t.Errorf("ParseByteSize(%q) = %d, %v", b.String(), back, err)
		}
	}
}

func TestDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                                "0s",
		10 * time.Minute:                 "10m",
		time.Hour:                        "1h",
		90 * time.Minute:                 "1h30m",
		time.Hour + time.Second:          "1h0m1s",
		10 * time.Second:                 "10s",
		1500 * time.Millisecond:          "1.5s",
		time.Millisecond:                 "1ms",
		-10 * time.Minute:                "-10m",
		20*time.Minute + time.Nanosecond: "20m0.000000001s",
	} {
		if got := Duration(d).String(); got != want {
			t.Errorf("Duration(%v).String() = %q, want %q", d, got, want)
		}
		back, err := ParseDuration(Duration(d).String())
		if err != nil || time.Duration(back) != d {
			t.Errorf("ParseDuration(%q) = %v, %v", Duration(d).String(), back, err)
		}
	}
	for _, s := range []string{"", "10", "ten minutes", "1d"} {
		if _, err := ParseDuration(s); err == nil {
			t.Errorf("ParseDuration(%q) accepted", s)
		}
	}
}

func TestUnitsJSON(t *testing.T) {
	type pair struct {
		B ByteSize `json:"b"`
		D Duration `json:"d"`
	}
	for _, in := range []string{`{"b": "2GiB", "d": "10m"}`, `{"b": 2147483648, "d": "600s"}`, `{"b": "2147483648", "d": "10m0s"}`} {
		var p pair
		if err := json.Unmarshal([]byte(in), &p); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if p.B != 2*GiB || time.Duration(p.D) != 10*time.Minute {
			t.Errorf("%s decoded to %+v", in, p)
		}
		out, _ := json.Marshal(p)
		if string(out) != `{"b":"2GiB","d":"10m"}` {
			t.Errorf("marshal = %s", out)
		}
	}
	var z pair
	if err := json.Unmarshal([]byte(`{"b": 0, "d": 0}`), &z); err != nil {
		t.Error(err)
	}
	for _, in := range []string{`{"b": "2XB"}`, `{"b": 1.5}`, `{"d": 10}`, `{"d": "x"}`, `{"b": true}`} {
		var p pair
		if json.Unmarshal([]byte(in), &p) == nil {
			t.Errorf("%s accepted", in)
		}
	}
}
