package egress

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestCurl drives the proxy with curl, the client agents most often
// reach for: HTTP forwarding, CONNECT and SOCKS5 with remote names.
func TestCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed")
	}
	up := upstreamHTTP(t, "origin")
	_, tlsUp := upstreamTLS(t)
	p := startProxy(t, []string{"allowed.test"}, loopback)
	run := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, curl, append([]string{"--silent", "--show-error", "--max-time", "10"}, args...)...)
		cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()} // no proxy variables, no ~/.curlrc
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	httpProxy := "http://" + p.addr

	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"http proxy", []string{"-x", httpProxy, fmt.Sprintf("http://allowed.test:%d/c", up)}, "origin GET /c"},
		{"https through CONNECT", []string{"-k", "-x", httpProxy, fmt.Sprintf("https://allowed.test:%d/", tlsUp)}, fmt.Sprintf("tls allowed.test:%d", tlsUp)},
		{"socks5 remote names", []string{"--socks5-hostname", p.addr, fmt.Sprintf("http://allowed.test:%d/s", up)}, "origin GET /s"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, err := run(tt.args...)
			if err != nil || out != tt.want {
				t.Fatalf("curl %q: %v\n%s", tt.args, err, out)
			}
		})
	}

	// Refused: the agent reads the reason from curl's output.
	out, _ := run("-x", httpProxy, fmt.Sprintf("http://evil.test:%d/", up))
	if !strings.HasPrefix(out, fmt.Sprintf("cordon: refused connection to evil.test:%d: host is not in this session's network allowlist", up)) {
		t.Errorf("refused http: %q", out)
	}
	out, err = run("-k", "-x", httpProxy, fmt.Sprintf("https://evil.test:%d/", tlsUp))
	if err == nil || !strings.Contains(out, "403") {
		t.Errorf("refused CONNECT: %v %q", err, out)
	}
	out, err = run("--socks5-hostname", p.addr, fmt.Sprintf("http://evil.test:%d/", up))
	// Older curl prints the reply code, newer its meaning.
	if err == nil || !strings.Contains(out, "(2)") && !strings.Contains(strings.ToLower(out), "not allowed") {
		t.Errorf("refused SOCKS5: %v %q", err, out)
	}
}
