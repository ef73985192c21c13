package redteam

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The network probes speak to the session's egress proxy themselves, so
// every attack sends exactly the bytes it means (no client library
// normalises a Host header or a URL), and the suite needs no curl or nc
// in the view.

// proxyAddr is the session's proxy (the HTTP_PROXY the session sets).
func proxyAddr() string {
	if v := os.Getenv("HTTP_PROXY"); v != "" {
		return strings.TrimSuffix(strings.TrimPrefix(v, "http://"), "/")
	}
	return "127.0.0.1:3128"
}

// dialProxy connects to the session's proxy; the connection's deadline
// is d from now.
func dialProxy(d time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", proxyAddr(), 2*time.Second)
	if err == nil {
		_ = c.SetDeadline(time.Now().Add(d))
	}
	return c, err
}

// printReply prints every HTTP status line of what the proxy (or the
// server behind it) answered, and the answer's first bytes.
func printReply(b []byte) {
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "HTTP/1.") {
			fmt.Printf("status %s\n", strings.TrimSpace(l))
		}
	}
	fmt.Printf("reply %q\n", tail(string(b), 600))
}

// unquoteArg reads a probe argument written with Go escapes (qarg).
func unquoteArg(a string) (string, error) { return strconv.Unquote(`"` + a + `"`) }

// proxy QUOTED: send the Go-quoted bytes to the proxy as they are and
// print what comes back (for 3 s at most).
func probeProxy(args []string) {
	if len(args) < 1 {
		return
	}
	msg, err := strconv.Unquote(`"` + args[0] + `"`)
	if err != nil {
		report("unquote", err)
		return
	}
	c, err := dialProxy(3 * time.Second)
	if err != nil {
		report("connect proxy", err)
		return
	}
	defer c.Close()
	_, _ = io.WriteString(c, msg)
	b, _ := io.ReadAll(io.LimitReader(c, 64<<10))
	printReply(b)
}

// openTunnel asks the proxy for a tunnel to hostport, by CONNECT or by
// SOCKS5 (host as a domain name, or as an address when it is one); mode
// "direct" connects to hostport without the proxy (host-side controls).
func openTunnel(mode, hostport string) (net.Conn, *bufio.Reader, error) {
	addr := proxyAddr()
	if mode == "direct" { // no proxy: the harness's controls
		addr = hostport
	}
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, nil, err
	}
	_ = c.SetDeadline(time.Now().Add(4 * time.Second))
	br := bufio.NewReader(c)
	switch mode {
	case "direct":
	case "connect":
		fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", hostport, hostport)
		status, err := br.ReadString('\n')
		if err != nil {
			c.Close()
			return nil, nil, err
		}
		for {
			l, err := br.ReadString('\n')
			if err != nil || l == "\r\n" {
				break
			}
		}
		if !strings.Contains(status, " 200 ") {
			rest, _ := io.ReadAll(io.LimitReader(br, 512))
			c.Close()
			return nil, nil, fmt.Errorf("proxy answered %q %q", strings.TrimSpace(status), rest)
		}
	case "socks":
		host, port, err := net.SplitHostPort(hostport)
		if err != nil {
			c.Close()
			return nil, nil, err
		}
		if code, err := socksConnect(c, br, host, port); err != nil || code != 0 {
			c.Close()
			if err == nil {
				err = fmt.Errorf("SOCKS5 reply %#x", code)
			}
			return nil, nil, err
		}
	default:
		c.Close()
		return nil, nil, fmt.Errorf("mode %q", mode)
	}
	return c, br, nil
}

// socksConnect does a SOCKS5 CONNECT (no authentication) to host:port,
// as an address when host is one, else as a domain name.
func socksConnect(c net.Conn, br *bufio.Reader, host, port string) (byte, error) {
	p, err := strconv.Atoi(port)
	if err != nil {
		return 0, err
	}
	if _, err := c.Write([]byte{5, 1, 0}); err != nil {
		return 0, err
	}
	var sel [2]byte
	if _, err := io.ReadFull(br, sel[:]); err != nil {
		return 0, err
	}
	if sel[1] != 0 {
		return sel[1], fmt.Errorf("method refused")
	}
	req := []byte{5, 1, 0}
	if name, ok := strings.CutPrefix(host, "dom:"); ok { // a domain name, even if it reads as an address
		req = append(append(req, 3, byte(len(name))), name...)
	} else if a, err := netip.ParseAddr(host); err == nil {
		if a.Is4() {
			req = append(append(req, 1), a.AsSlice()...)
		} else {
			req = append(append(req, 4), a.AsSlice()...)
		}
	} else {
		req = append(append(req, 3, byte(len(host))), host...)
	}
	req = binary.BigEndian.AppendUint16(req, uint16(p))
	if _, err := c.Write(req); err != nil {
		return 0, err
	}
	var rep [4]byte
	if _, err := io.ReadFull(br, rep[:]); err != nil {
		return 0, err
	}
	if rep[1] == 0 { // skip the bound address
		n := map[byte]int{1: 4, 4: 16}[rep[3]]
		if rep[3] == 3 {
			l, _ := br.ReadByte()
			n = int(l)
		}
		_, _ = io.ReadFull(br, make([]byte, n+2))
	}
	return rep[1], nil
}

// tunnel MODE HOSTPORT QUOTED: open a tunnel (connect or socks) and send
// the bytes, printing the answer.
func probeTunnel(args []string) {
	if len(args) < 3 {
		return
	}
	msg, err := strconv.Unquote(`"` + args[2] + `"`)
	if err != nil {
		report("unquote", err)
		return
	}
	c, br, err := openTunnel(args[0], args[1])
	report("tunnel "+args[0]+" "+args[1], err)
	if err != nil {
		return
	}
	defer c.Close()
	_, _ = io.WriteString(c, msg)
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	b, _ := io.ReadAll(io.LimitReader(br, 4096))
	printReply(b)
}

// tls MODE HOSTPORT SNI PATH: open a tunnel, handshake TLS naming SNI
// ("-" for none) and GET PATH with Host SNI.
func probeTLS(args []string) {
	if len(args) < 4 {
		return
	}
	c, br, err := openTunnel(args[0], args[1])
	report("tunnel "+args[0]+" "+args[1], err)
	if err != nil {
		return
	}
	defer c.Close()
	sni := args[2]
	cfg := &tls.Config{InsecureSkipVerify: true} // the fake internet's certificate is made up
	if sni != "-" {
		cfg.ServerName = sni
	}
	tc := tls.Client(&bufferedConn{Conn: c, r: br}, cfg)
	if err := tc.Handshake(); err != nil {
		report("tls handshake sni="+sni, err)
		return
	}
	report("tls handshake sni="+sni, nil)
	host := sni
	if host == "-" {
		host, _, _ = net.SplitHostPort(args[1])
	}
	fmt.Fprintf(tc, "GET /%s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", args[3], host)
	b, _ := io.ReadAll(io.LimitReader(tc, 4096))
	printReply(b)
}

// socks HOST PORT [PAYLOAD]: a SOCKS5 CONNECT (host as an address when
// it is one), then PAYLOAD.
func probeSOCKS(args []string) {
	if len(args) < 2 {
		return
	}
	c, err := dialProxy(4 * time.Second)
	if err != nil {
		report("connect proxy", err)
		return
	}
	defer c.Close()
	br := bufio.NewReader(c)
	code, err := socksConnect(c, br, args[0], args[1])
	fmt.Printf("socks reply %#x\n", code)
	if err != nil || code != 0 {
		report("socks "+args[0]+":"+args[1], fmt.Errorf("reply %#x %v", code, err))
		return
	}
	report("socks "+args[0]+":"+args[1], nil)
	payload := "cordon-redteam-probe"
	if len(args) > 2 {
		payload = args[2]
	}
	fmt.Fprintf(c, "GET /%s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", payload, args[0])
	b, _ := io.ReadAll(io.LimitReader(br, 4096))
	printReply(b)
}

// dnsq SERVER NAME: send a DNS query for NAME to SERVER (ip:port) over
// UDP and print any answer.
func probeDNSQuery(args []string) {
	if len(args) < 2 {
		return
	}
	q := []byte{0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0}
	for _, label := range strings.Split(strings.TrimSuffix(args[1], "."), ".") {
		q = append(append(q, byte(len(label))), label...)
	}
	q = append(q, 0, 0, 1, 0, 1)
	c, err := net.DialTimeout("udp", args[0], time.Second)
	if err != nil {
		report("dns "+args[0], err)
		return
	}
	defer c.Close()
	_, err = c.Write(q)
	report("dns-send "+args[0], err)
	_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	buf := make([]byte, 512)
	if n, err := c.Read(buf); err == nil {
		fmt.Printf("OK dns-answer %d bytes\n", n)
	}
}

// fastopen ADDR PAYLOAD: a TCP connection opened by sendto(MSG_FASTOPEN),
// which never calls connect().
func probeFastOpen(args []string) {
	if len(args) < 2 {
		return
	}
	ap, err := netip.ParseAddrPort(args[0])
	if err != nil {
		report("parse", err)
		return
	}
	dom := unix.AF_INET
	if ap.Addr().Is6() {
		dom = unix.AF_INET6
	}
	fd, err := unix.Socket(dom, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		report("socket", err)
		return
	}
	defer unix.Close(fd)
	var sa unix.Sockaddr
	if ap.Addr().Is4() {
		sa = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	} else {
		sa = &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	}
	err = unix.Sendto(fd, []byte(args[1]+"\n"), unix.MSG_FASTOPEN, sa)
	report("sendto-fastopen "+args[0], err)
	if err != nil {
		return
	}
	// Without a Fast Open cookie the data waits for the handshake, and
	// closing a socket still in SYN_SENT abandons the connection: the
	// data would reach the server only if the handshake won the race
	// with the close. Wait (silently: the report above is the evidence)
	// for the connection to be up; the close then sends what is queued.
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	for {
		if _, err := unix.Poll(pfd, 3000); err != unix.EINTR {
			return
		}
	}
}

// connrace LOOPBACK TARGET: one goroutine connect()s a sockaddr buffer
// while another flips it between a loopback listener of the probe's own
// (which the supervisor's connect check lets through) and TARGET, for
// 400 ms: the check and the kernel read the address at different times.
// Prints OK for a connection whose peer is TARGET.
func probeConnRace(args []string) {
	if len(args) < 2 {
		return
	}
	target, err := netip.ParseAddrPort(args[1])
	if err != nil || !target.Addr().Is4() {
		report("parse target", fmt.Errorf("want an IPv4 ip:port"))
		return
	}
	ln, err := listenDiscard("tcp4", args[0])
	if err != nil {
		report("listen", err)
		return
	}
	defer ln.Close()
	lo := netip.MustParseAddrPort(ln.Addr().String())
	var sa unix.RawSockaddrInet4
	sa.Family = unix.AF_INET
	setSA := func(ap netip.AddrPort) {
		p := ap.Port()
		sa.Port = p<<8 | p>>8
		sa.Addr = ap.Addr().As4()
	}
	setSA(lo)
	var stop atomic.Bool
	go func() {
		runtime.LockOSThread()
		for !stop.Load() {
			setSA(target)
			setSA(lo)
		}
	}()
	end := time.Now().Add(400 * time.Millisecond)
	tries, won := 0, 0
	for time.Now().Before(end) {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			break
		}
		_, _, e := unix.Syscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa)), unsafe.Sizeof(sa))
		tries++
		if e == 0 {
			if peer, err := unix.Getpeername(fd); err == nil {
				if p4, ok := peer.(*unix.SockaddrInet4); ok && netip.AddrFrom4(p4.Addr) == target.Addr() {
					won++
					_, _ = unix.Write(fd, []byte("cordon-redteam-connrace\n"))
				}
			}
		}
		unix.Close(fd)
	}
	stop.Store(true)
	fmt.Printf("connrace %d tries\n", tries)
	if won > 0 {
		fmt.Printf("OK connected to %s %d times\n", target, won)
	}
}

// proxyseq QUOTED...: on one connection to the proxy, send each request
// only after the answer to the one before (a keep-alive client that
// switches hosts), printing every answer.
func probeProxySeq(args []string) {
	c, err := dialProxy(4 * time.Second)
	if err != nil {
		report("connect proxy", err)
		return
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for _, a := range args {
		msg, err := strconv.Unquote(`"` + a + `"`)
		if err != nil {
			report("unquote", err)
			return
		}
		if _, err := io.WriteString(c, msg); err != nil {
			report("send", err)
			return
		}
		var head strings.Builder
		n := 0
		for {
			l, err := br.ReadString('\n')
			head.WriteString(l)
			if err != nil {
				printReply([]byte(head.String()))
				return
			}
			if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(k, "content-length") {
				n, _ = strconv.Atoi(strings.TrimSpace(v))
			}
			if l == "\r\n" {
				break
			}
		}
		body := make([]byte, min(n, 4096))
		_, _ = io.ReadFull(br, body)
		printReply(append([]byte(head.String()), body...))
	}
}

// vsock: open an AF_VSOCK socket and bind it to a port of this machine's
// own context id (never connecting anywhere: the other end of a vsock is
// the hypervisor, no server of ours). A socket that opens is the
// primitive: vsock is not network-namespaced (before Linux 7.0), so it
// leads past the session's network namespace and its proxy.
func probeVsock([]string) {
	fd, err := unix.Socket(unix.AF_VSOCK, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		report("vsock-socket", err)
		return
	}
	defer unix.Close(fd)
	report("vsock-socket", nil)
	report("vsock-bind", unix.Bind(fd, &unix.SockaddrVM{CID: unix.VMADDR_CID_ANY, Port: unix.VMADDR_PORT_ANY}))
}

// flood DURATION CONCURRENCY: for DURATION, CONCURRENCY clients ask the
// proxy for names that are not allowlisted as fast as it answers, and as
// many more hold connections open with a request head that never ends.
func probeFlood(args []string) {
	d, conc := 3*time.Second, 64
	if len(args) > 0 {
		d, _ = time.ParseDuration(args[0])
	}
	if len(args) > 1 {
		conc, _ = strconv.Atoi(args[1])
	}
	end := time.Now().Add(d)
	var sent, refused, held atomic.Int64
	done := make(chan struct{})
	for i := 0; i < conc; i++ {
		go func(i int) {
			defer func() { done <- struct{}{} }()
			for n := 0; time.Now().Before(end); n++ {
				c, err := net.DialTimeout("tcp", proxyAddr(), time.Second)
				if err != nil {
					continue
				}
				_ = c.SetDeadline(time.Now().Add(2 * time.Second))
				fmt.Fprintf(c, "GET http://f%d-%d.invalid/ HTTP/1.1\r\nHost: f%d-%d.invalid\r\nConnection: close\r\n\r\n", i, n, i, n)
				sent.Add(1)
				if b, _ := io.ReadAll(io.LimitReader(c, 1024)); strings.Contains(string(b), " 403 ") {
					refused.Add(1)
				}
				c.Close()
			}
		}(i)
		go func() {
			defer func() { done <- struct{}{} }()
			c, err := net.DialTimeout("tcp", proxyAddr(), time.Second)
			if err != nil {
				return
			}
			defer c.Close()
			held.Add(1)
			_, _ = io.WriteString(c, "GET http://slow.invalid/ HTTP/1.1\r\nX-Slow: ")
			for time.Now().Before(end) {
				time.Sleep(100 * time.Millisecond)
				_, _ = io.WriteString(c, "a")
			}
		}()
	}
	for i := 0; i < 2*conc; i++ {
		<-done
	}
	fmt.Printf("flood sent %d refused %d held %d\n", sent.Load(), refused.Load(), held.Load())
}
