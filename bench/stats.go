package bench

import (
	"regexp"
	"slices"
	"strings"
	"time"
)

// Dist summarises durations.
type Dist struct {
	N      int     `json:"n"`
	P50MS  float64 `json:"p50_ms"`
	P99MS  float64 `json:"p99_ms"`
	MeanMS float64 `json:"mean_ms"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// percentile is the nearest-rank percentile of sorted ds.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	n := len(s)
	switch {
	case n == 0:
		return 0
	case n%2 == 1:
		return s[n/2]
	default:
		return (s[n/2-1] + s[n/2]) / 2
	}
}

func distOf(ds []time.Duration) Dist {
	if len(ds) == 0 {
		return Dist{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return Dist{N: len(s), P50MS: ms(median(s)), P99MS: ms(percentile(s, 99)), MeanMS: ms(sum / time.Duration(len(s)))}
}

// normaliser rewrites what legitimately differs between two replays of
// the same call before outputs are compared. It is kept minimal; every
// rule is named in the report.
type normaliser struct {
	name string
	re   *regexp.Regexp
	repl string
}

// Normalisations lists the rules applied to outputs before comparing.
var normalisations = []normaliser{
	// pytest's and unittest's wall-clock summaries: "in 0.12s", "Ran 3 tests in 0.004s".
	{"durations", regexp.MustCompile(`\bin [0-9]+\.[0-9]+s\b`), "in <T>s"},
	// Python object reprs print addresses: "<Foo object at 0x7f3a...>".
	{"addresses", regexp.MustCompile(`\b0x[0-9a-f]{8,16}\b`), "0x<ADDR>"},
}

// NormalisationNames names the rules, for the report.
func NormalisationNames() []string {
	out := []string{"tree path -> /testbed", "HOME (bare's temporary HOME, a session's /home/cordon) -> ~", "bare's TMPDIR -> /tmp"}
	for _, n := range normalisations {
		out = append(out, n.name+": "+n.re.String()+" -> "+n.repl)
	}
	return out
}

func normalise(b []byte, tree, home string) string {
	s := string(b)
	if tree != "" {
		s = strings.ReplaceAll(s, tree, testbed)
	}
	if home != "" {
		s = strings.ReplaceAll(s, home+".tmp", "/tmp")
		s = strings.ReplaceAll(s, home, "~")
	}
	s = strings.ReplaceAll(s, sandboxHome, "~")
	for _, n := range normalisations {
		s = n.re.ReplaceAllString(s, n.repl)
	}
	return s
}
