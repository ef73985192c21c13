package egress

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// clientHello returns the first TLS record crypto/tls sends as a client.
func clientHello(t testing.TB, cfg *tls.Config) []byte {
	t.Helper()
	c1, c2 := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		tls.Client(c1, cfg).Handshake()
	}()
	defer func() {
		c2.Close()
		c1.Close()
		<-done
	}()
	hdr := make([]byte, recordHeaderLen)
	if _, err := io.ReadFull(c2, hdr); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
	if _, err := io.ReadFull(c2, body); err != nil {
		t.Fatal(err)
	}
	return append(hdr, body...)
}

// fragment splits a single-record hello into records of at most n bytes
// of payload each, as a TLS stack may.
func fragment(hello []byte, n int) []byte {
	var out []byte
	payload := hello[recordHeaderLen:]
	for len(payload) > 0 {
		k := min(n, len(payload))
		out = append(out, hello[0], hello[1], hello[2], byte(k>>8), byte(k))
		out = append(out, payload[:k]...)
		payload = payload[k:]
	}
	return out
}

func TestReadClientHello(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  *tls.Config
		sni  string
	}{
		{"tls13", &tls.Config{ServerName: "allowed.test"}, "allowed.test"},
		{"tls12 only", &tls.Config{ServerName: "allowed.test", MaxVersion: tls.VersionTLS12}, "allowed.test"},
		{"upper case", &tls.Config{ServerName: "Allowed.TEST"}, "Allowed.TEST"},
		{"trailing dot", &tls.Config{ServerName: "allowed.test."}, "allowed.test"}, // crypto/tls drops it
		{"no SNI", &tls.Config{InsecureSkipVerify: true}, ""},
		{"IP: no SNI", &tls.Config{ServerName: "127.0.0.1"}, ""},
		{"classic curves", &tls.Config{ServerName: "a.test", CurvePreferences: []tls.CurveID{tls.X25519}}, "a.test"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			hello := clientHello(t, tt.cfg)
			for _, in := range [][]byte{hello, fragment(hello, 100), fragment(hello, 1)} {
				rest := []byte("after")
				br := bufio.NewReader(bytes.NewReader(append(bytes.Clone(in), rest...)))
				raw, sni, err := readClientHello(br)
				if err != nil || sni != tt.sni || !bytes.Equal(raw, in) {
					t.Fatalf("readClientHello = %d bytes of %d, %q, %v; want %q", len(raw), len(in), sni, err, tt.sni)
				}
				if left, _ := io.ReadAll(br); !bytes.Equal(left, rest) {
					t.Fatalf("read past the hello: %q left", left)
				}
			}
			// Every truncation is an error, and not "not TLS".
			for i := recordHeaderLen; i < len(hello); i += 37 {
				_, _, err := readClientHello(bufio.NewReader(bytes.NewReader(hello[:i])))
				if err == nil || errors.Is(err, errNotTLS) {
					t.Fatalf("truncated at %d: %v", i, err)
				}
			}
		})
	}
	for _, in := range []string{"GET / HTTP/1.1\r\n", "\x16\x01\x00\x00\x05", "\x17\x03\x03\x00\x05", "\x16\x03\x01\x00\x00", "\x16\x03\x01\x48\x01"} {
		if _, _, err := readClientHello(bufio.NewReader(strings.NewReader(in + "xxxxxxxx"))); !errors.Is(err, errNotTLS) {
			t.Errorf("%q: %v, want errNotTLS", in, err)
		}
	}
}

// goServerName is crypto/tls's reading of a ClientHello: the server name
// it reports, and whether it parsed the hello at all.
func goServerName(b []byte) (string, bool) {
	c1, c2 := net.Pipe()
	var wg sync.WaitGroup
	wg.Go(func() {
		c1.Write(b)
		c1.Close() // the server reads EOF after the input, rather than waiting
	})
	wg.Go(func() { io.Copy(io.Discard, c1) })
	defer func() {
		c2.Close()
		c1.Close()
		wg.Wait()
	}()
	var name string
	var ok bool
	c2.SetDeadline(time.Now().Add(time.Second))
	srv := tls.Server(c2, &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		name, ok = h.ServerName, true
		return nil, errors.New("enough")
	}})
	srv.Handshake()
	return name, ok
}

func FuzzClientHello(f *testing.F) {
	for _, name := range []string{"allowed.test", "x", ""} {
		hello := clientHello(f, &tls.Config{ServerName: name, InsecureSkipVerify: true})
		f.Add(hello)
		f.Add(fragment(hello, 64))
	}
	f.Add([]byte("\x16\x03\x01\x00\x04\x01\x00\x00\x00"))
	f.Add([]byte("\x16\x03\x01\x00\x05\x01\xff\xff\xff\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		raw, sni, err := readClientHello(bufio.NewReader(bytes.NewReader(b)))
		if len(raw) > len(b) || !bytes.Equal(raw, b[:len(raw)]) {
			t.Fatalf("raw is not a prefix of the input")
		}
		if len(raw) > maxHelloLen+(maxHelloLen/maxRecordLen+2)*(recordHeaderLen+maxRecordLen) {
			t.Fatalf("read %d bytes", len(raw))
		}
		if errors.Is(err, errNotTLS) && len(raw) != 0 {
			t.Fatal("errNotTLS after consuming input")
		}
		if err != nil {
			return
		}
		if len(sni) > maxHostLen+1 || strings.ContainsFunc(sni, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
			t.Fatalf("server name %q", sni)
		}
		// Where crypto/tls also reads the hello and finds a name, it is
		// the same name: a server sees what the proxy checked.
		if name, ok := goServerName(b); ok && name != "" && name != sni {
			t.Fatalf("proxy read SNI %q, crypto/tls %q", sni, name)
		}
	})
}

// FuzzServe feeds Serve arbitrary bytes as a client, SOCKS5 and HTTP
// alike: it must neither panic nor hang. Upstreams are in-memory pipes
// that answer one HTTP response.
func FuzzServe(f *testing.F) {
	for _, s := range []string{
		"\x05\x01\x00\x05\x01\x00\x03\x0callowed.test\x00\x50GET / HTTP/1.1\r\n\r\n",
		"\x05\x01\x00\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x50",
		"\x05\x02\x02\x00\x05\x01\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x01\xbb",
		"\x05\x01\x00\x05\x02\x00\x03\x01a\x00\x01",
		"\x05\x00",
		"GET http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\nGET http://evil.test/ HTTP/1.1\r\n\r\n",
		"POST http://allowed.test/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"CONNECT allowed.test:443 HTTP/1.1\r\n\r\n\x16\x03\x01\x00\x04\x01\x00\x00\x00",
		"CONNECT 127.0.0.1:80 HTTP/1.1\r\n\r\nhello",
		"CONNECT [::1]:80 HTTP/1.1\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Add(append([]byte("CONNECT allowed.test:443 HTTP/1.1\r\n\r\n"), clientHello(f, &tls.Config{ServerName: "evil.test"})...))
	al, err := ParseAllowlist([]string{"allowed.test", "127.0.0.1"}, []string{"127.0.0.1"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var wg sync.WaitGroup
		defer wg.Wait()
		cfg := &Config{
			Allow:   func() *Allowlist { return al },
			Resolve: testResolve,
			Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, s := net.Pipe()
				wg.Go(func() {
					defer s.Close()
					s.SetDeadline(time.Now().Add(time.Second))
					s.Read(make([]byte, 4096))
					io.WriteString(s, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				})
				return c, nil
			},
			HandshakeTimeout: 20 * time.Millisecond,
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond) // tunnels end here
		defer cancel()
		client, server := net.Pipe()
		wg.Go(func() { client.Write(in) })
		wg.Go(func() { io.Copy(io.Discard, client) })
		done := make(chan struct{})
		go func() {
			Serve(ctx, server, cfg)
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("Serve did not return")
		}
		client.Close()
	})
}
