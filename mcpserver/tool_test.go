package mcpserver

import "testing"

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"plain\ttext\nnext line":        "plain\ttext\nnext line",
		"\x1b]52;c;cGF5bG9hZA==\a":      `\x1b]52;c;cGF5bG9hZA==\a`,
		"ok\rfake":                      `ok\rfake`,
		"csi \u009b6n and é":            `csi \u009b6n and é`,
		"\x1b]8;;http://x\x1b\\link":    `\x1b]8;;http://x\x1b\link`,
		"del\x7f":                       `del\x7f`,
		"unicode stays: \u2603 \u00a0x": "unicode stays: \u2603 \u00a0x",
	} {
		if got := printable(in); got != want {
			t.Errorf("printable(%q) = %q, want %q", in, got, want)
		}
	}
}
