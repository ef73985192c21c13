package policy

import (
	"testing"
)

func FuzzParse(f *testing.F) {
	f.Add(DefaultYAML())
	f.Add([]byte(minimal))
	f.Add([]byte("version: 1\nfilesystem:\n  read: [/a, {path: ~/b, at: /c, optional: true}]\n  hide: [/x]\nlimits: {memory: 1.5GiB, timeout: 1h, cpu: 2.5, pids: 9}\n"))
	f.Add([]byte("version: 1\nenv: {pass: [A], set: {B: \"x\\ty\"}}\nnetwork: {allow: [\"*.a.com:443\", \"[::1]\"], allow_private: [10.0.0.0/8, \"::1\"]}\ncapabilities: {never: [\"fs.*:/root/**\"]}\n"))
	f.Add([]byte(`{"version": 1, "limits": {"output": 1000}}`))
	f.Add([]byte("version: 1\nworkspace: {access: write, protect: [.git/hooks, \"*/.git/config\", \"**\", ../x, /y]}\n"))
	f.Add([]byte("version: 1\n---\nversion: 1\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data, "fuzz")
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error %v is %T, not *Error", err, err)
			}
			return
		}
		_ = p.Validate()
		_, _ = p.Expand("/home/fuzz", func(string) string { return "/v" })
		_ = p.Capabilities.Decide("fs.read:/opt/x")
		out, err := p.Marshal()
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		q, err := Parse(out, "fuzz-out")
		if err != nil {
			t.Fatalf("Parse(Marshal(p)): %v\ninput:\n%q\nmarshalled:\n%s", err, data, out)
		}
		if !p.Equal(q) {
			t.Fatalf("round trip changed the policy\ninput:\n%q\nmarshalled:\n%s\n%+v\n%+v", data, out, p, q)
		}
	})
}

func FuzzByteSize(f *testing.F) {
	for _, s := range []string{"0", "2GiB", "1.5GB", "-8EiB", "0.5KiB", "9223372036854775807", "1e3", "12.000000000000000000001EiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseByteSize(s)
		if err != nil {
			return
		}
		back, err := ParseByteSize(b.String())
		if err != nil || back != b {
			t.Fatalf("%q -> %d -> %q -> %d, %v", s, int64(b), b.String(), int64(back), err)
		}
	})
}

func FuzzGlob(f *testing.F) {
	f.Add("/home/*/.ssh/**", "/home/a/.ssh/id")
	f.Add("*.github.com", "api.github.com")
	f.Fuzz(func(t *testing.T, pattern, s string) {
		if len(pattern) > 64 || len(s) > 256 {
			return
		}
		// Every start of a match is a prefix of a match.
		if glob(pattern, s) {
			for k := 0; k <= len(s); k++ {
				if !globPrefix(pattern, s[:k]) {
					t.Fatalf("%q matches %q but globPrefix(%q) is false", pattern, s, s[:k])
				}
			}
		}
		// A pattern without globs matches exactly itself.
		if glob(s, s) != true && !containsGlob(s) {
			t.Fatalf("literal %q does not match itself", s)
		}
	})
}

func containsGlob(s string) bool {
	for _, c := range s {
		if c == '*' || c == '?' {
			return true
		}
	}
	return false
}
