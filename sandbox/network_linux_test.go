package sandbox_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cordon-sandbox/cordon/events"
	"github.com/cordon-sandbox/cordon/policy"
	"github.com/cordon-sandbox/cordon/sandbox"
)

// netLab is what the network tests run on the host's loopback: an HTTP
// server, a TLS server with a certificate from a test CA, a git
// smart-HTTP server and a Go module proxy, all reached from sessions by
// names the test resolver maps to 127.0.0.1.
type netLab struct {
	plainPort, tlsPort string
	caFile             string // the test CA, in the workspace for the session's clients
	hits               atomic.Int64
}

// labNames are the names the test resolver knows.
var labNames = map[string]netip.Addr{
	"plain.test":   netip.MustParseAddr("127.0.0.1"),
	"secure.test":  netip.MustParseAddr("127.0.0.1"),
	"git.test":     netip.MustParseAddr("127.0.0.1"),
	"goproxy.test": netip.MustParseAddr("127.0.0.1"),
	"later.test":   netip.MustParseAddr("127.0.0.1"),
	"granted.test": netip.MustParseAddr("127.0.0.1"),
	"denied.test":  netip.MustParseAddr("127.0.0.1"),
	"rebind.test":  netip.MustParseAddr("127.0.0.2"),       // loopback, outside allow_private
	"meta.test":    netip.MustParseAddr("169.254.169.254"), // the metadata address
}

func labResolve(_ context.Context, host string) ([]netip.Addr, error) {
	if a, ok := labNames[host]; ok {
		return []netip.Addr{a}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func startLab(t *testing.T, ws string) *netLab {
	t.Helper()
	lab := &netLab{}
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		lab.hits.Add(1)
		fmt.Fprintf(w, "hello from %s\n", r.Host)
	})
	mux.Handle("/git/", gitBackend(t))
	mux.Handle("/mod/", http.StripPrefix("/mod", goModuleProxy(t)))

	plain := httptest.NewServer(mux)
	t.Cleanup(plain.Close)
	_, lab.plainPort, _ = net.SplitHostPort(plain.Listener.Addr().String())

	caPEM, cert := testCertificates(t, "secure.test", "git.test", "goproxy.test", "later.test", "denied.test")
	secure := httptest.NewUnstartedServer(mux)
	secure.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	secure.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are the point
	secure.StartTLS()
	t.Cleanup(secure.Close)
	_, lab.tlsPort, _ = net.SplitHostPort(secure.Listener.Addr().String())

	lab.caFile = filepath.Join(ws, "ca.pem")
	if err := os.WriteFile(lab.caFile, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return lab
}

// testCertificates makes a CA and a server certificate it signs for names.
func testCertificates(t *testing.T, names ...string) (caPEM []byte, cert tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cordon test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ = x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// gitBackend serves a bare repository with one commit through
// git http-backend (smart HTTP).
func gitBackend(t *testing.T) http.Handler {
	t.Helper()
	root := t.TempDir()
	src := filepath.Join(root, "src")
	run := func(dir string, args ...string) {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t", "GIT_CONFIG_NOSYSTEM=1", "HOME="+root)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	os.Mkdir(src, 0o755)
	run(src, "init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(src, "README"), []byte("cloned through the egress proxy\n"), 0o644)
	run(src, "add", "README")
	run(src, "commit", "-q", "-m", "first")
	run(root, "clone", "-q", "--bare", src, "repo.git")
	gitExec, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Skipf("git: %v", err)
	}
	return &cgi.Handler{
		Path: filepath.Join(strings.TrimSpace(string(gitExec)), "git-http-backend"),
		Root: "/git",
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "HOME=" + root},
	}
}

// goModuleProxy serves one module, example.test/hello v1.0.0, in the
// GOPROXY protocol.
func goModuleProxy(t *testing.T) http.Handler {
	t.Helper()
	const mod = "module example.test/hello\n\ngo 1.21\n"
	var zipBuf bytes.Buffer
	zw := zip.NewWriter(&zipBuf)
	for name, body := range map[string]string{
		"go.mod":   mod,
		"hello.go": "package hello\n\n// Greeting is what the module says.\nconst Greeting = \"hello\"\n",
	} {
		w, _ := zw.Create("example.test/hello@v1.0.0/" + name)
		w.Write([]byte(body))
	}
	zw.Close()
	files := map[string][]byte{
		"/example.test/hello/@v/list":        []byte("v1.0.0\n"),
		"/example.test/hello/@v/v1.0.0.info": []byte(`{"Version":"v1.0.0","Time":"2026-01-01T00:00:00Z"}`),
		"/example.test/hello/@v/v1.0.0.mod":  []byte(mod),
		"/example.test/hello/@v/v1.0.0.zip":  zipBuf.Bytes(),
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	})
}

func openNet(t *testing.T, ws string, allow, private []string) *sandbox.Session {
	s, _ := openNetBus(t, ws, allow, private)
	return s
}

func openNetBus(t *testing.T, ws string, allow, private []string) (*sandbox.Session, *events.Subscription) {
	t.Helper()
	pol := policy.Default()
	pol.Network.Allow = allow
	pol.Network.AllowPrivate = private
	bus := events.NewBus()
	sub := bus.Subscribe(1024)
	s, err := sandbox.Open(context.Background(), sandbox.Options{Workspace: ws, Policy: pol, Resolve: labResolve, Bus: bus})
	if err != nil {
		t.Fatalf("opening session: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, sub
}

// netDenial finds the net deny event for target in a result.
func netDenial(r *sandbox.ExecResult, target string) *events.Event {
	for _, d := range r.Denials {
		if d.Kind == events.Deny && d.Layer == events.LayerNet && d.Target == target {
			return d
		}
	}
	return nil
}

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed (.ci/run installs it)", tool)
		}
	}
}

// TestEgress drives real clients inside a session through the egress
// proxy to servers on the host's loopback. Every refusal has a control:
// the same client and server, allowlisted, gets through.
func TestEgress(t *testing.T) {
	need(t, "curl", "git", "go")
	ws := workspace(t)
	lab := startLab(t, ws)
	s, sub := openNetBus(t, ws,
		[]string{"plain.test", "secure.test", "git.test", "goproxy.test", "rebind.test", "meta.test"},
		[]string{"127.0.0.1"})
	trust := fmt.Sprintf("export CURL_CA_BUNDLE=%[1]s GIT_SSL_CAINFO=%[1]s SSL_CERT_FILE=%[1]s; ", lab.caFile)

	t.Run("http", func(t *testing.T) {
		r := sh(t, s, "curl -sS -m 20 http://plain.test:"+lab.plainPort+"/hello")
		if got := string(r.Stdout); got != "hello from plain.test:"+lab.plainPort+"\n" {
			t.Errorf("allowlisted HTTP: %q %q", got, r.Stderr)
		}
		// What left is on the record: host, bytes both ways.
		deadline := time.After(5 * time.Second)
		for seen := false; !seen; {
			select {
			case e := <-sub.C:
				seen = e.Kind == events.NetConnect && e.Call == r.Call && e.Target == "plain.test:"+lab.plainPort &&
					e.Detail["bytes_up"].(int64) > 0 && e.Detail["bytes_down"].(int64) > 0
			case <-deadline:
				t.Fatal("no net.connect event for the allowed request")
			}
		}
		r = sh(t, s, "curl -sS -m 20 http://denied.test:"+lab.plainPort+"/hello")
		if !strings.Contains(string(r.Stdout), "net.connect:denied.test") {
			t.Errorf("refused HTTP: body %q does not name the capability", r.Stdout)
		}
		d := netDenial(r, "denied.test:"+lab.plainPort)
		if d == nil || d.Remedy == nil || d.Remedy.Capability != "net.connect:denied.test" {
			t.Errorf("refused HTTP: deny event %+v in %+v", d, r.Denials)
		}
	})
	t.Run("https", func(t *testing.T) {
		r := sh(t, s, trust+"curl -sS -m 20 https://secure.test:"+lab.tlsPort+"/hello")
		if got := string(r.Stdout); got != "hello from secure.test:"+lab.tlsPort+"\n" {
			t.Errorf("allowlisted HTTPS: %q %q", got, r.Stderr)
		}
		r = sh(t, s, trust+"curl -sS -m 20 https://denied.test:"+lab.tlsPort+"/hello")
		if r.ExitCode == 0 || netDenial(r, "denied.test:"+lab.tlsPort) == nil {
			t.Errorf("refused HTTPS: exit %d, %q, denials %+v", r.ExitCode, r.Stdout, r.Denials)
		}
	})
	t.Run("git clone", func(t *testing.T) {
		r := sh(t, s, trust+"git clone -q https://git.test:"+lab.tlsPort+"/git/repo.git cloned && cat cloned/README")
		if !strings.Contains(string(r.Stdout), "cloned through the egress proxy") {
			t.Errorf("allowlisted clone: %q %q", r.Stdout, r.Stderr)
		}
		r = sh(t, s, trust+"git clone -q https://denied.test:"+lab.tlsPort+"/git/repo.git refused")
		if r.ExitCode == 0 || netDenial(r, "denied.test:"+lab.tlsPort) == nil {
			t.Errorf("refused clone: exit %d, %q, denials %+v", r.ExitCode, r.Stderr, r.Denials)
		}
	})
	t.Run("go mod download", func(t *testing.T) {
		gomod := func(host string) *sandbox.ExecResult {
			return sh(t, s, trust+"export GOMODCACHE=/tmp/modcache-"+host+" GOSUMDB=off GOFLAGS=-modcacherw GOPROXY=https://"+host+":"+lab.tlsPort+"/mod; "+
				"mkdir -p /tmp/m-"+host+" && cd /tmp/m-"+host+" && go mod init example.test/m >/dev/null 2>&1; go mod download -json example.test/hello@v1.0.0")
		}
		r := gomod("goproxy.test")
		if r.ExitCode != 0 || !strings.Contains(string(r.Stdout), `"Version": "v1.0.0"`) {
			t.Errorf("allowlisted module proxy: exit %d %q %q", r.ExitCode, r.Stdout, r.Stderr)
		}
		r = gomod("denied.test")
		if r.ExitCode == 0 || netDenial(r, "denied.test:"+lab.tlsPort) == nil {
			t.Errorf("refused module proxy: exit %d %q, denials %+v", r.ExitCode, r.Stderr, r.Denials)
		}
	})
	t.Run("ip literal", func(t *testing.T) {
		// NO_PROXY names 127.0.0.1 (the session's own loopback); clear it
		// so that curl asks the proxy for the host's.
		const viaProxy = "NO_PROXY= no_proxy= "
		r := sh(t, s, viaProxy+"curl -sS -m 20 -k https://127.0.0.1:"+lab.tlsPort+"/hello")
		if r.ExitCode == 0 || netDenial(r, "127.0.0.1:"+lab.tlsPort) == nil {
			t.Errorf("CONNECT to an IP literal: exit %d %q, denials %+v", r.ExitCode, r.Stdout, r.Denials)
		}
		// Control: the literal allowlisted (in a second session).
		s2 := openNet(t, ws, []string{"127.0.0.1"}, []string{"127.0.0.1"})
		r = sh(t, s2, viaProxy+"curl -sS -m 20 -k https://127.0.0.1:"+lab.tlsPort+"/hello")
		if !strings.Contains(string(r.Stdout), "hello from") {
			t.Errorf("control: allowlisted IP literal: %q %q", r.Stdout, r.Stderr)
		}
	})
	t.Run("sni mismatch", func(t *testing.T) {
		// CONNECT secure.test, then a ClientHello for another name:
		// domain fronting.
		front := func(sni string) *sandbox.ExecResult {
			return sh(t, s, fmt.Sprintf(`python3 - <<'EOF'
import socket, ssl
s = socket.create_connection(("127.0.0.1", 3128), timeout=20)
s.sendall(b"CONNECT secure.test:%[1]s HTTP/1.1\r\nHost: secure.test:%[1]s\r\n\r\n")
print(s.recv(4096).split(b"\r\n")[0].decode())
ctx = ssl.create_default_context(cafile=%[2]q)
ctx.check_hostname = False
try:
    t = ctx.wrap_socket(s, server_hostname=%[3]q)
    t.sendall(b"GET /hello HTTP/1.0\r\nHost: secure.test\r\n\r\n")
    print(t.recv(4096).decode().split("\r\n\r\n")[-1])
except (OSError, ssl.SSLError) as e:
    print("refused:", e)
EOF`, lab.tlsPort, lab.caFile, sni))
		}
		r := front("secure.test")
		if !strings.Contains(string(r.Stdout), "hello from") {
			t.Errorf("control: matching SNI: %q %q", r.Stdout, r.Stderr)
		}
		r = front("evil.test")
		if strings.Contains(string(r.Stdout), "hello from") || netDenial(r, "secure.test:"+lab.tlsPort) == nil {
			t.Errorf("SNI mismatch: %q, denials %+v", r.Stdout, r.Denials)
		}
	})
	t.Run("private addresses", func(t *testing.T) {
		for _, host := range []string{"rebind.test", "meta.test"} {
			r := sh(t, s, "curl -sS -m 20 http://"+host+":"+lab.plainPort+"/hello")
			d := netDenial(r, host+":"+lab.plainPort)
			if strings.Contains(string(r.Stdout), "hello from") || d == nil || d.Rule != "network.private" {
				t.Errorf("%s (private address): %q, denial %+v", host, r.Stdout, d)
			}
		}
		// Control: rebind.test's address admitted explicitly. 127.0.0.2
		// is loopback on the host too, and the lab listens on 127.0.0.1
		// only, so a refused connect (not a policy refusal) is the
		// proof the proxy let it through.
		s2 := openNet(t, ws, []string{"rebind.test"}, []string{"127.0.0.0/8"})
		r := sh(t, s2, "curl -sS -m 20 http://rebind.test:"+lab.plainPort+"/hello")
		if netDenial(r, "rebind.test:"+lab.plainPort) != nil {
			t.Errorf("control: rebind.test with allow_private 127.0.0.0/8 refused: %q %+v", r.Stdout, r.Denials)
		}
	})
	t.Run("direct", func(t *testing.T) {
		// A TCP and a UDP listener on the host's loopback: nothing a
		// session sends arrives, with or without the proxy variables.
		tcp, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer tcp.Close()
		var arrived atomic.Int64
		go func() {
			for {
				c, err := tcp.Accept()
				if err != nil {
					return
				}
				arrived.Add(1)
				c.Close()
			}
		}()
		udp, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer udp.Close()
		go func() {
			buf := make([]byte, 512)
			for {
				if _, _, err := udp.ReadFrom(buf); err != nil {
					return
				}
				arrived.Add(1)
			}
		}()
		tport := tcp.Addr().(*net.TCPAddr).Port
		uport := udp.LocalAddr().(*net.UDPAddr).Port
		r := sh(t, s, fmt.Sprintf(`python3 -c '
import socket
try:
    socket.create_connection(("127.0.0.1", %d), timeout=5).sendall(b"x"); print("tcp connected")
except OSError as e: print("tcp:", e.errno)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(3): u.sendto(b"x", ("127.0.0.1", %d))
try:
    u.sendto(b"x", ("192.0.2.53", 53)); print("sent off loopback")
except OSError as e: print("udp off loopback:", e.errno)
try:
    socket.getaddrinfo("example.com", 443); print("resolved")
except OSError as e: print("no resolver:", e)
'; curl -sS -m 5 --noproxy '*' http://192.0.2.1/`, tport, uport))
		time.Sleep(200 * time.Millisecond)
		if n := arrived.Load(); n != 0 {
			t.Errorf("%d connections or datagrams from the session reached host loopback listeners", n)
		}
		out := string(r.Stdout)
		if strings.Contains(out, "tcp connected") || strings.Contains(out, "sent off loopback") || strings.Contains(out, "resolved") {
			t.Errorf("a datagram left or a name resolved inside the session: %q", out)
		}
		if netDenial(r, "192.0.2.1:80") == nil {
			t.Errorf("curl --noproxy to 192.0.2.1: no net deny event: %q %+v", r.Stderr, r.Denials)
		}
		// Control: the same listeners hear the host.
		c, err := net.Dial("tcp", tcp.Addr().String())
		if err == nil {
			c.Close()
		}
		u, err := net.Dial("udp", udp.LocalAddr().String())
		if err == nil {
			u.Write([]byte("x"))
			u.Close()
		}
		for i := 0; i < 50 && arrived.Load() < 2; i++ {
			time.Sleep(10 * time.Millisecond)
		}
		if arrived.Load() < 2 {
			t.Error("control: the host's own connection and datagram did not arrive")
		}
	})
	t.Run("allowlist change", func(t *testing.T) {
		url := "http://later.test:" + lab.plainPort + "/hello"
		if r := sh(t, s, "curl -sS -m 20 "+url); strings.Contains(string(r.Stdout), "hello from") {
			t.Fatalf("later.test reachable before it was allowed: %q", r.Stdout)
		}
		if err := s.AllowHosts("later.test"); err != nil {
			t.Fatal(err)
		}
		if r := sh(t, s, "curl -sS -m 20 "+url); !strings.Contains(string(r.Stdout), "hello from later.test") {
			t.Errorf("later.test after AllowHosts: %q %q", r.Stdout, r.Stderr)
		}
		if err := s.AllowHosts("bad host!"); err == nil {
			t.Error("AllowHosts took an invalid pattern")
		}
		// A grant of net.connect:HOST lets the next call through; its
		// revocation refuses it again, and keeps what AllowHosts added.
		granted := "http://granted.test:" + lab.plainPort + "/hello"
		reach := func(url string) bool {
			return strings.Contains(string(sh(t, s, "curl -sS -m 20 "+url).Stdout), "hello from")
		}
		if reach(granted) {
			t.Fatal("granted.test reachable before the grant")
		}
		if err := s.ApplyGrants([]string{"net.connect:granted.test"}); err != nil {
			t.Fatal(err)
		}
		if !reach(granted) {
			t.Error("granted.test refused under net.connect:granted.test")
		}
		if err := s.ApplyGrants(nil); err != nil {
			t.Fatal(err)
		}
		if reach(granted) || !reach(url) {
			t.Error("after revoking net.connect:granted.test: granted.test still reachable, or later.test lost")
		}
	})
}
