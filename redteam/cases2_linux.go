package redteam

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cordon-sandbox/cordon/internal/linux"
	"github.com/cordon-sandbox/cordon/policy"
)

// probeThenHost runs the probe with args in the session, then as the
// control on the host as uid 65534 with the control token as its payload:
// the attack succeeded if the session's probe reports OK or listener l got
// its bytes; the control fired if l got the token.
func (e *Env) probeThenHost(ctx context.Context, args string, l *Listener) Outcome {
	a := e.Sh(ctx, `"$P" redteam probe `+args)
	m := l.mark()
	e.HostAs(ctx, e.unprivileged(), `"$P" redteam probe `+args+` "$CT"`)
	return verdict(a.OKs(), e.arrived(l, m))
}

// probeCase is a case whose attack is one probe run in the sandbox and
// whose control is the same probe on the host (ctl).
func probeCase(id string, class Class, title, probe, oracle, control, source string, args string, ctl hostCtl, bad func(string) bool) *Case {
	return &Case{ID: id, Class: class, Title: title, Probe: probe, Oracle: oracle, Control: control, Source: source,
		Run: func(ctx context.Context, e *Env) Outcome {
			a := e.Sh(ctx, `"$P" redteam probe `+args)
			c := e.Control(ctx, ctl)
			fired := bad
			if ctl.fired != nil {
				fired = ctl.fired
			}
			return verdict(filter(a.OKs(), bad), filter(c.OKs(), fired))
		}}
}

func escapeCases() []*Case {
	return []*Case{{
		ID: "E01", Class: Escape, Title: "privilege posture (caps, no_new_privs, seccomp)",
		Probe: "read /proc/self/status of a tool process", Oracle: "CapEff/CapPrm/CapAmb/CapBnd ≠ 0, NoNewPrivs ≠ 1 or Seccomp ≠ 2",
		Control: "the same read in the harness (host root) shows CapEff ≠ 0 and Seccomp 0", Source: "E01: genuinetools/amicontained",
		Run: func(ctx context.Context, e *Env) Outcome {
			check := func(t string) []string {
				var bad []string
				for _, l := range strings.Split(t, "\n") {
					f := strings.Fields(l)
					if len(f) < 2 {
						continue
					}
					switch f[0] {
					case "CapEff:", "CapPrm:", "CapAmb:", "CapBnd:", "CapInh:":
						if f[1] != "0000000000000000" {
							bad = append(bad, l)
						}
					case "NoNewPrivs:":
						if f[1] != "1" {
							bad = append(bad, l)
						}
					case "Seccomp:":
						if f[1] != "2" {
							bad = append(bad, l)
						}
					}
				}
				return bad
			}
			a := e.Sh(ctx, `"$P" redteam probe status; grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status`)
			if !strings.Contains(a.Text, "Seccomp:") {
				return Outcome{CouldNotRun: "no status read: " + a.Text}
			}
			c := e.Host(ctx, `"$P" redteam probe status`)
			return verdict(check(a.Text), check(c.Text))
		},
	}, {
		ID: "E02", Class: Escape, Title: "setuid binaries (no_new_privs, nosuid)",
		Probe:   "start /usr/bin/su, passwd, newgrp, chfn with stdin held open and read their effective uid from /proc",
		Oracle:  "a started setuid binary runs with an euid other than the caller's",
		Control: "the same probe on the host as an unprivileged user (uid 65534 through setpriv when the harness is root, the harness itself otherwise) sees euid 0", Source: "E02: containers/bubblewrap#368",
		Run: func(ctx context.Context, e *Env) Outcome {
			args := ` redteam probe setuid /usr/bin/su /usr/bin/passwd /usr/bin/newgrp /usr/bin/chfn`
			a := e.Sh(ctx, `"$P"`+args)
			c := e.HostAs(ctx, e.unprivileged(), `"$P"`+args)
			return verdict(a.OKs(), c.OKs())
		},
	}, {
		ID: "E03", Class: Escape, Title: "nested namespaces (unshare, clone flags, clone3)",
		Probe:  "unshare -Ur / -Urn / -Urm; clone(2) with CLONE_NEWUSER/NEWNS/NEWNET/NEWPID/NEWCGROUP",
		Oracle: "any namespace created", Control: "the same commands on the host create them (namespaces of their own, discarded)",
		Source: "E03: flatpak PR#4456 (CVE-2021-41133), CVE-2024-1086, CVE-2022-0185",
		Run: func(ctx context.Context, e *Env) Outcome {
			cmd := `unshare -Ur true && echo "OK userns"; unshare -Urn true && echo "OK netns"; unshare -Urm true && echo "OK mountns"; "$P" redteam probe clonens`
			return verdict(e.Sh(ctx, cmd).OKs(), e.Host(ctx, cmd).OKs())
		},
	},
		probeCase("E04", Escape, "mount, umount and the new mount API",
			"mount tmpfs/cgroup2/proc, umount /proc, open_tree(OPEN_TREE_CLONE), fsopen, remount /usr rw",
			"any call succeeds", "the probe on the host, inside a private mount namespace it creates (as root; otherwise in a user namespace of its own), mounts a tmpfs and opens an fs context",
			"E04: flatpak CVE-2021-41133, sandbox-runtime pid test", "mount /tmp/rt-mnt", hostCtl{root: "mount $WS/../mnt-$T private"}, all),
		{
			ID: "E07", Class: Escape, Title: "inject into other processes (ptrace, /proc/PID/mem, process_vm_readv, pidfd_getfd)",
			Probe: "against every visible pid (the supervisor PID 1, the executor, the shell)", Oracle: "any primitive succeeds against a process the probe did not start",
			Control: "the probe on the host against the harness's decoy process succeeds", Source: "E07: sandbox-runtime pid-namespace-isolation.test.ts; asterinas PR#2877",
			Run: func(ctx context.Context, e *Env) Outcome {
				a := e.Sh(ctx, `"$P" redteam probe inject all`)
				c := e.Host(ctx, fmt.Sprintf(`"$P" redteam probe inject %d`, e.Decoy.Process.Pid))
				return verdict(a.OKs(), c.OKs())
			},
		}, {
			ID: "E09", Class: Escape, Title: "inherited descriptors and the supervisor's descriptors",
			Probe:   "list and open /proc/self/fd beyond 0-2 and every /proc/1/fd/N; write a policy to fds 3-9",
			Oracle:  "a tool process has a descriptor beyond 0, 1, 2, or opens one of PID 1's",
			Control: "the host shell started with an extra inherited descriptor shows it", Source: "E09: sandbox-runtime control-fd.test.ts",
			Run: func(ctx context.Context, e *Env) Outcome {
				a := e.Sh(ctx, `(exec ls -l /proc/self/fd) | grep -v '/fd$' | awk '$(NF-2)+0>2 {print "OK inherited fd", $(NF-2), $NF}'; "$P" redteam probe procfd 1 2>&1 | grep -v '^OK readlink'; for fd in 3 4 5 6 7 8 9; do echo '{"filesystem":{"write":["/"]}}' >&$fd; done 2>/dev/null`)
				c := e.Host(ctx, `exec 7</dev/null; (exec ls -l /proc/self/fd) | grep -v '/fd$' | awk '$(NF-2)+0>2 {print "OK inherited fd", $(NF-2), $NF}'`)
				return verdict(a.OKs(), c.OKs())
			},
		}, {
			ID: "E10", Class: Escape, Title: "host daemon sockets absent from the view",
			Probe:  "connect to a listener the harness runs in its run dir (like docker.sock), /var/run/docker.sock, /run/dbus, /run/user/*",
			Oracle: "a connect succeeds or a host listener receives a byte", Control: "the probe on the host connects to the harness's listener",
			Source: "E10: anthropics/claude-code#20263, cdk-team/CDK docker_sock_pwn.go",
			Run: func(ctx context.Context, e *Env) Outcome {
				a := e.Sh(ctx, fmt.Sprintf(`for s in %s /var/run/docker.sock /run/docker.sock /run/containerd/containerd.sock /run/dbus/system_bus_socket /run/user/*/bus /tmp/.X11-unix/X0 /run/cordon/cordon.sock; do "$P" redteam probe connect unix "$s"; done`, shq(e.HiddenSock)))
				m := e.Unix.mark()
				e.Host(ctx, fmt.Sprintf(`"$P" redteam probe connect unix %s "$CT"`, shq(e.HiddenSock)))
				return verdict(a.OKs(), e.arrived(e.Unix, m))
			},
		}, {
			ID: "E11", Class: Escape, Title: "pathname socket under a read-only bind (/etc)", Needs: NeedRoot,
			Probe:   "connect to a world-connectable (0666) unix socket the harness listens on in /etc, which the view binds read-only",
			Oracle:  "the connect succeeds and the host listener receives the probe's bytes",
			Control: "the probe on the host as uid 65534 connects", Source: "E11: amir20/dozzle#3088; Landlock ABI 9 LANDLOCK_ACCESS_FS_RESOLVE_UNIX",
			Run: func(ctx context.Context, e *Env) Outcome {
				return e.probeThenHost(ctx, "connect unix "+shq(e.EtcSock), e.Etc)
			},
		}, {
			ID: "E31", Class: Escape, Title: "datagram to a pathname socket under a read-only bind (/etc)", Needs: NeedRoot,
			Probe:   "sendto a world-writable (0666) unix datagram socket the harness reads in /etc, from socket(AF_UNIX, SOCK_DGRAM) and from a datagram socketpair: a send names its destination with no connect to check",
			Oracle:  "a send succeeds and the host socket receives the probe's datagram",
			Control: "the probe on the host as uid 65534 delivers both datagrams", Source: "new: E11's channel without connect(); unix(7) SOCK_DGRAM sendto/sendmsg with an address",
			Run: func(ctx context.Context, e *Env) Outcome {
				return e.probeThenHost(ctx, "dgram "+shq(e.EtcDgram), e.EtcGram)
			},
		}, {
			ID: "E32", Class: Escape, Title: "racing connect's address past the check (TOCTOU)", Needs: NeedRoot,
			Probe:   "at least 3000 connects (then on until one reaches the target, at most 3 s) through one sockaddr_un that another thread keeps rewriting between a socket of the probe's own in /tmp and E11's socket in /etc, each connection sending the probe's bytes",
			Oracle:  "the /etc listener receives the probe's bytes: a connect the supervisor checked against one address reached another",
			Control: "the same race on the host as uid 65534 reaches the /etc listener", Source: "new: seccomp_unotify(2) on TOCTOU (\"the target's memory can change\"); CVE-2019-5736-style fd/pointer swaps",
			Run: func(ctx context.Context, e *Env) Outcome {
				token := "e32-race-" + randHex(8)
				m0 := e.Etc.mark()
				a := e.Sh(ctx, fmt.Sprintf(`"$P" redteam probe unixrace /tmp/e32-own.sock %s %s`, shq(e.EtcSock), token))
				if !strings.Contains(a.Text, "race: ") {
					return Outcome{CouldNotRun: "the race probe did not run: " + tail(a.Text, 200)}
				}
				var bad []string
				if e.Etc.arrived(m0, token) {
					bad = append(bad, "the /etc listener got the session's bytes: "+strings.TrimSpace(a.Text))
				}
				m := e.Etc.mark()
				own := filepath.Join(os.TempDir(), "cordon-e32-"+randHex(6)+".sock")
				c := e.HostAs(ctx, e.unprivileged(), fmt.Sprintf(`"$P" redteam probe unixrace %s %s "$CT"; rm -f %s`, shq(own), shq(e.EtcSock), shq(own)))
				ctl := e.arrived(e.Etc, m)
				o := verdict(bad, ctl)
				if !o.Control {
					o.ControlEvidence = "the race on the host did not reach the /etc listener: " + strings.TrimSpace(c.Text)
				}
				return o
			},
		},
		probeCase("E13", Escape, "terminal injection (TIOCSTI, TIOCSTI|1<<32, TIOCLINUX)",
			"TIOCSTI into a pty of the probe's own (never a real terminal) made the controlling terminal of a new session, also with the high-bit request", "an ioctl injects (returns 0)",
			"the probe on the host injects into its own fresh pty (its controlling terminal: allowed to any user while dev.tty.legacy_tiocsti is 1, to root always)", "E13: bubblewrap#142 (CVE-2017-5226), CVE-2019-10063",
			"tiocsti", hostCtl{root: "tiocsti"}, contains("TIOCSTI")),
		{
			ID: "E15", Class: Escape, Title: "dangerous-syscall reachability sweep",
			Probe:   "45 syscalls (keyctl, bpf, perf_event_open, userfaultfd, io_uring_*, kexec_*, modules, *_handle_at, mount family, setns, unshare, ptrace, process_vm_*, pidfd_getfd, syslog, acct, swap, reboot, clock, quotactl, fanotify, ioperm, personality, clone3) with harmless arguments",
			Oracle:  "any of them answers something other than EPERM (ENOSYS for clone3): the kernel code was reached",
			Control: "on the host each one reaches the kernel (an answer other than EPERM): as root; otherwise in a user and mount namespace of its own, where the syscalls the kernel keeps to host root (userfaultfd, syslog, acct, swapon/off, reboot, fanotify_init) answer EPERM for any unprivileged caller and are listed, not required", Source: "E15: Docker seccomp profile; flatpak PR#4456; sandbox-runtime pid test",
			Run: func(ctx context.Context, e *Env) Outcome {
				parse := func(t string) map[string]string {
					m := map[string]string{}
					for _, l := range strings.Split(t, "\n") {
						if f := strings.Fields(l); len(f) == 4 && f[0] == "SYS" {
							m[f[1]] = f[3]
						}
					}
					return m
				}
				a := parse(e.Sh(ctx, `"$P" redteam probe sys`).Text)
				c := parse(e.Control(ctx, hostCtl{root: "sys", ns: "m"}).Text)
				if len(a) == 0 {
					return Outcome{CouldNotRun: "the sweep printed nothing"}
				}
				var bad, ctl, weak, gated []string
				for _, s := range sweep() {
					want := "EPERM"
					if s.name == "clone3" {
						want = "ENOSYS"
					}
					if a[s.name] != want {
						bad = append(bad, s.name+"="+a[s.name])
					}
					switch {
					case c[s.name] != "EPERM" && c[s.name] != "":
						ctl = append(ctl, s.name)
					case !e.Root && rootGated[s.name]:
						gated = append(gated, s.name)
					default:
						weak = append(weak, s.name+"="+c[s.name])
					}
				}
				o := verdict(bad, ctl)
				if len(gated) > 0 {
					o.Metrics = map[string]string{"kernel_gated_without_root": strings.Join(gated, ",")}
				}
				if len(weak) > 0 {
					o.Control = false
					o.ControlEvidence = "host control did not reach the kernel for: " + strings.Join(weak, ",")
				}
				return o
			},
		},
		probeCase("E18", Escape, "cgroup escape and limit tampering",
			"mount cgroup2 in /tmp (/sys is absent from the view), open /sys/fs/cgroup/{cgroup.procs,pids.max,memory.max} for writing",
			"the mount or an open for writing succeeds", "on the host, in a private mount namespace (and, when not root, a user and cgroup namespace of its own), cgroup2 mounts",
			"E18: cdk-team/CDK abuse_unpriv_userns.go (CVE-2022-0492)",
			`mount /tmp/rt-cg; "$P" redteam probe openw /sys/fs/cgroup/cgroup.procs /sys/fs/cgroup/pids.max /sys/fs/cgroup/memory.max`, hostCtl{root: "mount $WS/../cg-$T private", ns: "C"},
			func(l string) bool { return strings.Contains(l, "cgroup2") || strings.HasPrefix(l, "open-write") }),
		probeCase("E19", Escape, "write gadgets in /proc/sys, /proc/sysrq-trigger, /sys (open only)",
			"open O_WRONLY core_pattern, modprobe, sysrq-trigger, uevent_helper, drop_caches, ip_forward, /proc/self/attr/current; never write",
			"any open succeeds", "the same opens on the host as root succeed; when not root, ip_forward of a network namespace of its own opens for writing",
			"E19: cdk-team/CDK mount_procfs.go; CVE-2025-31133/52565/52881",
			"openw /proc/sys/kernel/core_pattern /proc/sys/kernel/modprobe /proc/sysrq-trigger /sys/kernel/uevent_helper /proc/sys/vm/drop_caches /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/ns_last_pid",
			hostCtl{root: "openw /proc/sys/kernel/core_pattern /proc/sys/kernel/modprobe /proc/sysrq-trigger /proc/sys/vm/drop_caches", ns: "n", user: "openw /proc/sys/net/ipv4/ip_forward"}, all),
		probeCase("E20", Escape, "device nodes (mknod, /dev beyond the minimal set)",
			"mknod c 1 1 (/dev/mem) in /tmp and the workspace; open every /dev node outside null, zero, full, random, urandom, tty, ptmx rw",
			"mknod of /dev/mem or any such open succeeds", "on the host as root mknod c 1 1 in a scratch dir succeeds; when not root, the same probe's mknod of a whiteout (c 0 0) in a user namespace of its own does",
			"E20: cdk-team/CDK mount_device.go", "dev /tmp walk; \"$P\" redteam probe dev \"$WS\"", hostCtl{root: "dev $WS", fired: contains("mknod")},
			func(l string) bool { return strings.HasPrefix(l, "mknod c 1 1") || strings.HasPrefix(l, "open-") }),
		{
			ID: "E21", Class: Escape, Title: "join the supervisor's or host namespaces through /proc/PID/ns (setns)",
			Probe: "open /proc/1/ns/{net,uts,ipc,mnt,pid,cgroup,user} and setns", Oracle: "any setns succeeds",
			Control: "on the host, setns into its own namespaces succeeds (as root; otherwise into mount, net, uts and ipc namespaces of a user namespace of its own)", Source: "new: seccomp deny set (setns), docs/security.md",
			Run: func(ctx context.Context, e *Env) Outcome {
				bad := func(l string) bool { return strings.HasPrefix(l, "setns") }
				return verdict(filter(e.Sh(ctx, `"$P" redteam probe setns 1`).OKs(), bad), filter(e.Control(ctx, hostCtl{root: "setns self", ns: "mnui"}).OKs(), bad))
			},
		},
		probeCase("E22", Escape, "signals to the supervisor (PID 1) and its parent",
			"kill -0, SIGSTOP/SIGCONT to PID 1 and to the executor's parent", "a signal is delivered to PID 1 (outside the executor's Landlock domain)",
			"on the host the same probe stops and continues the harness's decoy", "E22: Landlock LANDLOCK_SCOPE_SIGNAL; multikernel/sandlock#252",
			"kill 1", hostCtl{root: "kill $DECOY", plain: true}, contains("STOP")),
		probeCase("E25", Escape, "open_by_handle_at (Shocker) and chroot",
			"name_to_handle_at + open_by_handle_at on /etc/hostname; chroot into a subdirectory", "open_by_handle_at or chroot succeeds",
			"the probe on the host as root succeeds (when not root: in a user namespace of its own, chroot does)", "new: seccomp deny set; moby PR#45766 (Shocker)",
			"handle /etc/hostname; \"$P\" redteam probe chrootesc /tmp/rt-chroot", hostCtl{root: "handle /etc/hostname; \"$P\" redteam probe chrootesc $WS/../chr-$T"},
			func(l string) bool { return strings.HasPrefix(l, "open_by") || strings.HasPrefix(l, "chroot") }),
		{
			ID: "E24", Class: Escape, Title: "PATH and loader hijack of helpers the host runs",
			Probe: "plant $WS/.bin/git etc. and LD_PRELOAD/BASH_ENV for later host helpers", Oracle: "a host helper runs attacker code",
			Control: "—", Source: "E24: openai/codex linux-sandbox README",
			Run: func(ctx context.Context, e *Env) Outcome {
				return Outcome{NotApplicable: "cordon runs no host-side helper in or on the workspace yet (no git status, no formatter); revisit with the daemon's diff rendering"}
			},
		},
	}
}

func networkCases() []*Case {
	return []*Case{{
		ID: "N20", Class: Network, Title: "TCP to a host-loopback and a host 0.0.0.0 listener",
		Probe:  "connect to the harness's 127.0.0.1 listener and to its 0.0.0.0 listener at every host address, send bytes",
		Oracle: "a connect succeeds or a host listener receives a byte", Control: "the probe on the host connects to both",
		Source: "new (N06/N07 without the proxy): network namespace",
		Run: func(ctx context.Context, e *Env) Outcome {
			port := e.Any.Addr[strings.LastIndex(e.Any.Addr, ":")+1:]
			cmd := fmt.Sprintf(`"$P" redteam probe connect tcp %s; for a in 127.0.0.1 127.1 0.0.0.0 [::1] $(hostname -I 2>/dev/null); do "$P" redteam probe connect tcp "$a:%s"; done`, e.TCP.Addr, port)
			hostIPs := ""
			if ips, err := hostAddrs(); err == nil {
				hostIPs = strings.Join(ips, " ")
			}
			a := e.Sh(ctx, strings.Replace(cmd, "$(hostname -I 2>/dev/null)", hostIPs, 1))
			m1, m2 := e.TCP.mark(), e.Any.mark()
			e.Host(ctx, fmt.Sprintf(`"$P" redteam probe connect tcp %s "$CT"; "$P" redteam probe connect tcp 127.0.0.1:%s "$CT"`, e.TCP.Addr, port))
			var ctl []string
			if len(e.arrived(e.TCP, m1)) > 0 && len(e.arrived(e.Any, m2)) > 0 {
				ctl = []string{"both listeners got the control token"}
			}
			return verdict(a.OKs(), ctl)
		},
	}, {
		ID: "N21", Class: Network, Title: "UDP to a host-loopback listener",
		Probe: "send datagrams to the harness's 127.0.0.1 UDP listener", Oracle: "the listener receives a datagram",
		Control: "the probe on the host sends one that arrives", Source: "new (N02 without the proxy): network namespace",
		Run: func(ctx context.Context, e *Env) Outcome {
			e.Sh(ctx, fmt.Sprintf(`for i in 1 2 3; do "$P" redteam probe connect udp %s; done`, e.UDP.Addr))
			m := e.UDP.mark()
			e.Host(ctx, fmt.Sprintf(`"$P" redteam probe connect udp %s "$CT"`, e.UDP.Addr))
			time.Sleep(50 * time.Millisecond)
			// The session's datagrams, had any arrived, are counted by
			// the shared oracle (no control token).
			return verdict(nil, e.arrived(e.UDP, m))
		},
	}, {
		ID: "N22", Class: Network, Title: "raw and packet sockets",
		Probe:  "socket(AF_INET/INET6, SOCK_RAW), AF_PACKET",
		Oracle: "a raw or packet socket is created", Control: "the probe on the host creates the raw and packet sockets (as root; otherwise in a user and network namespace of its own)",
		Source: "new: capabilities (CAP_NET_RAW), network namespace",
		Run: func(ctx context.Context, e *Env) Outcome {
			a := e.Sh(ctx, `"$P" redteam probe rawsock`)
			c := e.Control(ctx, hostCtl{root: "rawsock", ns: "n"})
			return verdict(a.OKs(), c.OKs())
		},
	}, {
		ID: "N23", Class: Network, Title: "abstract unix socket in the host network namespace",
		Probe: "connect to @<name> the harness listens on in the host netns", Oracle: "the connect succeeds or the listener receives a byte",
		Control: "the probe on the host connects", Source: "new: CATALOG 0.6 (abstract sockets are per netns); Landlock abstract scoping",
		Run: func(ctx context.Context, e *Env) Outcome {
			a := e.Sh(ctx, `"$P" redteam probe connect abstract `+e.Abstract)
			m := e.Abs.mark()
			e.Host(ctx, `"$P" redteam probe connect abstract `+e.Abstract+` "$CT"`)
			return verdict(a.OKs(), e.arrived(e.Abs, m))
		},
	}, {
		ID: "N16", Class: Network, Title: "AF_VSOCK past the network namespace",
		Probe:   "socket(AF_VSOCK) and bind to a port of the machine's own context id (never a connect: the other end of a vsock is the hypervisor)",
		Oracle:  "the socket opens: vsock is not network-namespaced before Linux 7.0, so a session on a VM guest can reach the hypervisor's vsock services past its namespace and proxy",
		Control: "the same probe on the host opens the socket", Source: "N16: trpc-group/trpc-agent-go PR#2426, kubevirt/enhancements PR#223, moby/moby#45317",
		Run: func(ctx context.Context, e *Env) Outcome {
			c := e.Host(ctx, `"$P" redteam probe vsock`)
			if strings.Contains(c.Text, "address family not supported") {
				return Outcome{NotApplicable: "this kernel has no AF_VSOCK"}
			}
			a := e.Sh(ctx, `"$P" redteam probe vsock`)
			return verdict(filter(a.OKs(), contains("vsock-socket")), filter(c.OKs(), contains("vsock-socket")))
		},
	}}
}

// ---------------------------------------------------------------- X

// pair runs fn with sessions A and B: concurrently (both open) and
// sequentially (A closed before B opens). In warm mode A is the warm
// session.
func crossCase(id, title, probe, oracle, control, source string, plant, search string, needsLive bool) *Case {
	return &Case{ID: id, Class: Cross, Title: title, Probe: probe, Oracle: oracle, Control: control, Source: source, Needs: NeedAPI,
		Run: func(ctx context.Context, e *Env) Outcome {
			canA := randHex(16) // session A's secret: B must not see it
			plantCmd := "A=" + canA + "; " + plant
			e.Sh(ctx, plantCmd)
			self := e.Sh(ctx, "A=; "+search)
			var ctl []string
			if strings.Contains(self.Text, canA) {
				ctl = append(ctl, "A finds its own secret")
			}
			var bad []string
			// concurrent
			b, wsB, err := e.OpenSession(ctx, nil)
			if err != nil {
				return Outcome{CouldNotRun: err.Error()}
			}
			if o := e.ShIn(ctx, b, wsB, "A=; "+search, 20*time.Second); strings.Contains(o.Text, canA) {
				bad = append(bad, "concurrent B sees A's secret")
			}
			_ = e.CloseSession(b)
			if needsLive {
				return verdict(bad, ctl)
			}
			// sequential: a separate A, closed, then B
			a2, wsA2, err := e.OpenSession(ctx, nil)
			if err != nil {
				return Outcome{CouldNotRun: err.Error()}
			}
			e.ShIn(ctx, a2, wsA2, plantCmd, 20*time.Second)
			_ = e.CloseSession(a2)
			b2, wsB2, err := e.OpenSession(ctx, nil)
			if err != nil {
				return Outcome{CouldNotRun: err.Error()}
			}
			if o := e.ShIn(ctx, b2, wsB2, "A=; "+search, 20*time.Second); strings.Contains(o.Text, canA) {
				bad = append(bad, "B after A's teardown sees A's secret")
			}
			return verdict(bad, ctl)
		}}
}

func crossCases() []*Case {
	return []*Case{
		crossCase("X01", "shared /tmp, /dev/shm and HOME",
			"A writes its secret to /tmp, /dev/shm, ~, ~/.cache; B lists and reads them", "B prints A's secret",
			"A reads its own files back", "X01: netblue30/firejail#770; anthropics/claude-code#64182",
			`echo $A > /tmp/xs-$T; echo $A > /dev/shm/xs-$T; echo $A > ~/xs-$T; mkdir -p ~/.cache && echo $A > ~/.cache/xs-$T`,
			`cat /tmp/xs-* /dev/shm/xs-* ~/xs-* ~/.cache/xs-* 2>/dev/null; ls -la /tmp /dev/shm ~`, false),
		crossCase("X04", "process visibility, environ and signals across sessions",
			"A starts `sleep` with its secret in argv and environment (setsid, survives the call); B scans /proc, reads environ, sends SIGSTOP",
			"B prints A's secret or stops A's process", "A sees its own process", "X04: Landlock LANDLOCK_SCOPE_SIGNAL; sandbox-runtime pid test",
			`X=$A setsid bash -c 'exec -a "rt-$X" sleep 30' >/dev/null 2>&1 </dev/null & sleep 0.2`,
			`for p in /proc/[0-9]*; do tr '\0' ' ' <$p/cmdline; tr '\0' ' ' <$p/environ; echo; done 2>/dev/null; for p in $(pgrep -f '^rt-'); do kill -STOP $p && echo STOPPED $p; done`, true),
		crossCase("X05", "leftovers after teardown (files, SysV shm and msg, POSIX mqueue, user keyring)",
			"A writes its secret in /tmp, /dev/shm, HOME, a SysV shared memory segment and message queue, a POSIX message queue and its user keyring (keyctl is denied); A closed; B searches",
			"B prints A's secret, or a SysV/POSIX object of A's is left in the harness's IPC namespace", "A finds its own secret", "X05: containers/bubblewrap#88; multikernel/sandlock#251",
			`echo $A > /tmp/x5-$T; echo $A > /dev/shm/x5-$T; echo $A > ~/x5-$T; "$P" redteam probe ipc put $A`,
			`grep -rs . /tmp /dev/shm ~ 2>/dev/null | head -50; "$P" redteam probe ipc get`, false),
		{
			ID: "X08", Class: Cross, Title: "daemons started in one session reachable from another (abstract, pathname, loopback TCP)", Needs: NeedAPI,
			Probe: "A listens on @name, /tmp/sock and 127.0.0.1:port; B connects to all three", Oracle: "B connects, or A's listener logs B's bytes",
			Control: "A connects to its own listeners", Source: "X08: kirodotdev/KiroCrew#5883; catalog 0.6 (abstract sockets per netns)",
			Run: func(ctx context.Context, e *Env) Outcome {
				name := "rt-" + e.Tag
				port := "47" + strconv.Itoa(100+int(e.Tag[len(e.Tag)-1])%100)
				e.Sh(ctx, fmt.Sprintf(`for l in "abstract %s" "unix /tmp/%s.sock" "tcp 127.0.0.1:%s"; do setsid "$P" redteam probe listen $l /tmp/%s.log >/dev/null 2>&1 </dev/null & done; sleep 0.3`, name, name, port, name))
				connect := fmt.Sprintf(`"$P" redteam probe connect abstract %s; "$P" redteam probe connect unix /tmp/%s.sock; "$P" redteam probe connect tcp 127.0.0.1:%s`, name, name, port)
				ctl := e.Sh(ctx, connect+"; sleep 0.2; cat /tmp/"+name+".log")
				b, wsB, err := e.OpenSession(ctx, nil)
				if err != nil {
					return Outcome{CouldNotRun: err.Error()}
				}
				bo := e.ShIn(ctx, b, wsB, connect, 20*time.Second)
				after := e.Sh(ctx, "sleep 0.2; echo \"loglines $(wc -l < /tmp/"+name+".log)\"; pkill -f 'probe listen' ; true")
				var bad []string
				bad = append(bad, bo.OKs()...)
				if n := strings.TrimPrefix(firstLine(after.Text, "loglines "), "loglines "); n != "3" && n != "0" {
					bad = append(bad, "A's listener log has "+n+" lines (3 from its own control)")
				}
				return verdict(bad, filter(ctl.OKs(), contains("send")))
			},
		},
	}
}

// ---------------------------------------------------------------- D

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func denialCases() []*Case {
	small := withLimits(func(p *policy.Policy) {
		p.Limits.Memory = 256 << 20
		p.Limits.Pids = 256
		p.Limits.Tmp = 64 << 20
		p.Limits.Home = 64 << 20
		p.Limits.Output = 4 << 20
	})
	return []*Case{
		dosCaseCheck("D01", "fork bomb", "a shell fork bomb in a subshell, while the call's shell spins (no fork) until its 4 s timeout kills its process group, in a session with pids 256",
			"a second session's trivial call exceeds the bound, the attacked session stops answering after the timeout, or more than 16 of the bomb's processes are alive in it then (catalog: the bomb still alive after the call's timeout)",
			"the bomb hits the pids limit (limit event / fork failures) and the call times out", "D01: nsjail rlimit_nproc, NVIDIA/OpenShell PR#2942", 0, small,
			`(f() { f | f & }; f); while :; do :; done`, 4*time.Second,
			func(o Obs) bool {
				return o.Res != nil && o.Res.TimedOut && (strings.Contains(o.Text, "pids") || strings.Contains(o.Text, "Resource temporarily unavailable") || strings.Contains(o.Text, "fork"))
			},
			nil),
		dosCase("D02", "memory exhaustion (memory cgroup root-started, RLIMIT_DATA rootless)", "touch 64 MiB chunks until stopped, memory limit 256 MiB",
			"second session's call exceeds the bound, or the attacked session stops answering", "the allocation is stopped (OOM kill / ENOMEM)",
			"D02: python-discord/snekbox PR#81", 0, small, `"$P" redteam probe alloc 1s`, 20*time.Second,
			func(o Obs) bool {
				return strings.Contains(o.Text, "memory") || strings.Contains(o.Text, "signal=SIGKILL") || strings.Contains(o.Text, "stopped at")
			}),
		dosCase("D03", "disk fill of /tmp and HOME (tmpfs sizes)", "dd /dev/zero into /tmp and ~ until full (64 MiB each)",
			"second session's call exceeds the bound, or the attacked session stops answering", "dd stops with ENOSPC",
			"D03: nsjail rlimit_fsize; inspect_ai PR#781", 0, small, `dd if=/dev/zero of=/tmp/fill bs=1M 2>&1 | tail -3; dd if=/dev/zero of=$HOME/fill bs=1M 2>&1 | tail -3; df -h /tmp ~ | tail -2; rm -f /tmp/fill $HOME/fill`, 30*time.Second,
			func(o Obs) bool {
				return strings.Contains(o.Text, "No space left") || strings.Contains(o.Text, "100% /tmp")
			}),
		dosCase("D04", "output flood", "yes | head -c 256 MiB to stdout with a 4 MiB output cap",
			"second session's call exceeds the bound, or more than the cap comes back", "the output is truncated at the cap",
			"new (D: output cap)", 0, small, `yes cordon-redteam-output-flood | head -c 268435456`, 30*time.Second,
			func(o Obs) bool { return o.Res != nil && o.Res.Truncated && len(o.Res.Stdout) <= 4<<20+64<<10 }),
		dosCase("D05", "CPU burn ignoring SIGTERM past the call timeout", "4×NCPU spinning goroutines with SIGTERM ignored for 30 s, call timeout 3 s",
			"second session's call exceeds the bound, or the burner survives the timeout", "the call times out",
			"D05: nsjail time_limit; sandbox-runtime pid test", 0, small, `"$P" redteam probe burn 30s`, 3*time.Second,
			func(o Obs) bool { return o.Res != nil && o.Res.TimedOut }),
		dosCase("D07", "descriptor exhaustion", "open /dev/null until EMFILE and hold 2 s",
			"second session's call exceeds the bound", "the probe is stopped by EMFILE",
			"new (rlimits)", 0, small, `ulimit -n 1048576 2>/dev/null; "$P" redteam probe fds 2s`, 20*time.Second,
			func(o Obs) bool { return strings.Contains(o.Text, "too many open files") }),
		{
			ID: "D06", Class: Denial, Title: "surviving teardown (setsid, double fork, nohup, traps)", Needs: NeedAPI, FreshOnly: true,
			Probe:  "setsid -f, (… &), nohup … & disown, trap '' HUP TERM, all exec -a <marker>; then the session is closed",
			Oracle: "a process with the marker in argv alive on the host after teardown", Control: "the same launch on the host leaves a marker process the scan finds (then killed by pid)",
			Source: "D06: multikernel/sandlock#252, rocky-data/rocky#1491",
			Run: func(ctx context.Context, e *Env) Outcome {
				cmd := `setsid -f bash -c 'exec -a "$0-1" sleep 60' "$M" </dev/null >/dev/null 2>&1; (bash -c 'exec -a "$0-2" sleep 60' "$M" </dev/null >/dev/null 2>&1 &); nohup bash -c 'trap "" HUP TERM; exec -a "$0-3" sleep 60' "$M" >/dev/null 2>&1 & echo launched`
				e.Sh(ctx, cmd)
				inside := e.Sh(ctx, `echo "inside $(grep -l "$M" /proc/[0-9]*/cmdline 2>/dev/null | grep -vc "/proc/$$/")"`)
				// the runner closes the session and scans for $M
				c := e.Host(ctx, `setsid -f bash -c 'exec -a "$0-ctl" sleep 60' "ctl-$M" </dev/null >/dev/null 2>&1; sleep 0.2`)
				_ = c
				procs := markerProcs("ctl-" + e.Marker)
				for _, p := range procs {
					if pid, err := strconv.Atoi(strings.Fields(p)[0]); err == nil {
						syscallKill(pid)
					}
				}
				o := verdict(nil, procs)
				o.Metrics = map[string]string{"marker_procs_inside_before_teardown": strings.TrimPrefix(firstLine(inside.Text, "inside "), "inside ")}
				return o
			},
		}, {
			ID: "D08", Class: Denial, Title: "surviving supervisor death", Needs: NeedAPI, FreshOnly: true,
			Probe: "setsid/trap survivors, then the harness SIGKILLs the session's supervisor", Oracle: "a marker process alive 2 s after the supervisor's death",
			Control: "the survivors were alive inside before the kill", Source: "D08: gadievron/raptor PR#786",
			Run: func(ctx context.Context, e *Env) Outcome {
				before := children()
				s, ws, err := e.OpenSession(ctx, nil)
				if err != nil {
					return Outcome{CouldNotRun: err.Error()}
				}
				var sup []int
				for p := range children() {
					if !before[p] {
						sup = append(sup, p)
					}
				}
				e.ShIn(ctx, s, ws, `trap '' HUP TERM; setsid -f bash -c 'exec -a "$0-1" sleep 60' "$M" </dev/null >/dev/null 2>&1; nohup bash -c 'exec -a "$0-2" sleep 60' "$M" >/dev/null 2>&1 &`, 10*time.Second)
				in := e.ShIn(ctx, s, ws, `echo "inside $(grep -l "$M" /proc/[0-9]*/cmdline 2>/dev/null | grep -vc "/proc/$$/")"`, 10*time.Second)
				if len(sup) != 1 {
					return Outcome{CouldNotRun: fmt.Sprintf("found %d new supervisor processes", len(sup))}
				}
				syscallKill(sup[0])
				time.Sleep(2 * time.Second)
				var bad []string
				bad = append(bad, markerProcs(e.Marker)...)
				var ctl []string
				if n := strings.TrimPrefix(firstLine(in.Text, "inside "), "inside "); n != "0" && n != "" {
					ctl = append(ctl, n+" survivors alive inside before the kill")
				}
				return verdict(bad, ctl)
			},
		}, {
			ID: "D09", Class: Denial, Title: "per-uid kernel limits shared with the host user (inotify)", Needs: NeedAPI, FreshOnly: true,
			Probe: "create inotify instances until refused and hold them 2 s", Oracle: "meanwhile the host user (harness) cannot create an inotify instance",
			Control: "the probe inside is stopped by the per-user limit", Source: "D09: Sanne/incus-spawn PR#570; NixOS/nixpkgs#36214",
			Run: func(ctx context.Context, e *Env) Outcome {
				done := make(chan Obs)
				go func() { done <- e.Sh(ctx, `"$P" redteam probe inotify 2s`) }()
				time.Sleep(1200 * time.Millisecond)
				hostErr := inotifyOnce()
				a := <-done
				var bad []string
				if hostErr != nil {
					bad = append(bad, "host inotify_init failed during the attack: "+hostErr.Error())
				}
				var ctl []string
				if strings.Contains(a.Text, "stopped by") {
					ctl = append(ctl, "inside stopped by a limit")
				}
				return verdict(bad, ctl)
			},
		},
	}
}

// children returns the pids whose parent is this process.
func children() map[int]bool {
	out := map[int]bool{}
	for pid := range linux.Children(os.Getpid()) {
		out[pid] = true
	}
	return out
}
