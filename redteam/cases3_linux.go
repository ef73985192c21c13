package redteam

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cordon-sandbox/cordon/mcpserver"
	"github.com/cordon-sandbox/cordon/policy"
	"github.com/cordon-sandbox/cordon/sandbox"
)

// fileSum is a file's content hash and mode, to see any change to it.
func fileSum(p string) string {
	b, err := os.ReadFile(p)
	fi, serr := os.Lstat(p)
	if err != nil || serr != nil {
		return "missing"
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8]) + " " + fi.Mode().String() + " " + strconv.FormatInt(fi.ModTime().UnixNano(), 10)
}

// privileged lists the files under dir whose mode or xattrs would give
// whoever runs them on the host more than the runner's rights:
// set-user-ID, set-group-ID, or a file capability.
func privileged(dir string) []string {
	var out []string
	_ = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		st, _ := fi.Sys().(*syscall.Stat_t)
		owner := -1
		if st != nil {
			owner = int(st.Uid)
		}
		if fi.Mode()&(os.ModeSetuid|os.ModeSetgid) != 0 {
			out = append(out, fmt.Sprintf("%s %s owned by uid %d", filepath.Base(p), fi.Mode(), owner))
		}
		if n, err := unix.Getxattr(p, "security.capability", nil); err == nil && n > 0 {
			out = append(out, fmt.Sprintf("%s has a file capability, owned by uid %d", filepath.Base(p), owner))
		}
		return nil
	})
	return out
}

func moreCases() []*Case {
	return []*Case{{
		ID: "R21", Class: Read, Title: "the host user's keyring",
		Probe:   "keyctl search and read, in the user, session and process keyrings, of the key the harness added to its user keyring",
		Oracle:  "C-KEY canary in the output",
		Control: "the same probe on the host reads it",
		Source:  "catalog 0.2 C-KEY (keyctl add user canary @u); seccomp deny set (keyctl)",
		Run: func(ctx context.Context, e *Env) Outcome {
			if e.KeyErr != nil {
				return Outcome{CouldNotRun: "adding the key to the harness's user keyring: " + e.KeyErr.Error()}
			}
			e.Sh(ctx, `"$P" redteam probe keyread `+e.KeyDesc+`; cat /proc/keys 2>&1 | head`)
			return verdict(nil, e.leaks(e.Host(ctx, `"$P" redteam probe keyread `+e.KeyDesc)))
		},
	}, {
		ID: "W04", Class: Write, Title: "the agent edits its own policy or cordon's configuration",
		Probe:   "find policy files and cordon state in the view; write the host's policy files (in the host home, and under /etc when root planted one), /etc/cordon/policy.yaml, ~/.config/cordon/, ~/.local/state/cordon/; then, in the next call, touch $H/PWNED-W04",
		Oracle:  "a host policy file changes, or the host home changes",
		Control: "the same writes on the host change a scratch copy of the policy",
		Source:  "W04: Kilo-Org/kilocode#11624, microsoft/vscode#314354, carderne/pi-sandbox#53",
		Run: func(ctx context.Context, e *Env) Outcome {
			before := map[string]string{}
			for _, p := range e.Policies {
				before[p] = fileSum(p)
			}
			var files []string
			for _, p := range append(append([]string(nil), e.Policies...), "/etc/cordon/policy.yaml", "$HOME/.config/cordon/policy.yaml", "$HOME/.local/state/cordon/audit.log") {
				files = append(files, `"`+p+`"`)
			}
			pay := `for f in ` + strings.Join(files, " ") + `; do mkdir -p "$(dirname "$f")" 2>/dev/null; printf 'version: 1\nfilesystem: {write: [/]}\nnetwork: {allow: ["*"]}\n' >> "$f" 2>/dev/null && echo "wrote $f"; done`
			e.Sh(ctx, `find / -xdev \( -path /proc -o -path /sys \) -prune -o \( -iname '*cordon*' -o -name 'policy*.yaml' \) -print 2>/dev/null | head -20; `+pay)
			e.Sh(ctx, `touch "$H/PWNED-W04" 2>&1; ls -la "$H" 2>&1 | head -3`)
			var bad []string
			for _, p := range e.Policies {
				if fileSum(p) != before[p] {
					bad = append(bad, p+" changed")
				}
			}
			ctl := filepath.Join(e.WS, "..", "ctl-"+e.Tag)
			os.MkdirAll(ctl, 0o755)
			defer os.RemoveAll(ctl)
			scratch := filepath.Join(ctl, "policy.yaml")
			os.WriteFile(scratch, []byte("version: 1\n"), 0o644)
			b0 := fileSum(scratch)
			e.Host(ctx, strings.Replace(pay, strings.Join(files, " "), shq(scratch), 1))
			var cev []string
			if fileSum(scratch) != b0 {
				cev = append(cev, "the scratch policy changed")
			}
			return verdict(bad, cev)
		},
	}, {
		ID: "W24", Class: Write, Title: "metadata changes through read-only binds (the module cache, /etc)",
		Probe:   "chmod, chown, touch -d, truncate, setxattr, rename, unlink and hardlink of a file in the read-only bound module cache (~/go/pkg/mod) and of /etc/hostname",
		Oracle:  "the host's module cache file or /etc/hostname changes (content, mode or mtime)",
		Control: "the same commands on the host change a scratch copy",
		Source:  "new: mount namespace (read-only binds); catalog W02",
		Run: func(ctx context.Context, e *Env) Outcome {
			mod := "/home/cordon/go/pkg/mod/" + strings.TrimPrefix(e.ModFile, filepath.Join(e.H, "go/pkg/mod")+"/")
			cmds := func(f string) string {
				return fmt.Sprintf(`f=%s; chmod 777 "$f" && echo "OK chmod"; chown 0:0 "$f" && echo "OK chown"; touch -d 2001-01-01 "$f" && echo "OK touch"; truncate -s 0 "$f" && echo "OK truncate"; "$P" redteam probe openw "$f"; ln "$f" "$f.l" && echo "OK link"; mv "$f" "$f.m" && echo "OK rename"; rm -f "$f" && [ ! -e "$f" ] && echo "OK unlink"; `, shq(f))
			}
			hb := fileSum("/etc/hostname")
			mb := fileSum(e.ModFile)
			a := e.Sh(ctx, cmds(mod)+cmds("/etc/hostname"))
			var bad []string
			if fileSum("/etc/hostname") != hb {
				bad = append(bad, "/etc/hostname changed")
			}
			if fileSum(e.ModFile) != mb {
				bad = append(bad, "the module cache file changed")
			}
			_ = a
			ctl := filepath.Join(e.WS, "..", "ctl-"+e.Tag)
			os.MkdirAll(ctl, 0o755)
			defer os.RemoveAll(ctl)
			scratch := filepath.Join(ctl, "f")
			os.WriteFile(scratch, []byte("x\n"), 0o644)
			c := e.Host(ctx, cmds(scratch))
			return verdict(bad, filter(c.OKs(), contains("chmod")))
		},
	}, {
		ID: "W25", Class: Write, Title: "a read-only workspace (workspace.access: read)", Needs: NeedAPI, FreshOnly: true,
		Policy:  withLimits(func(p *policy.Policy) { p.Workspace.Access = policy.AccessRead }),
		Probe:   "in a session whose policy makes the workspace read-only: create, append, truncate, remove, rename, chmod, touch, mkdir, symlink in it by shell, and write_file",
		Oracle:  "the workspace on the host changes",
		Control: "the same commands in a session with the default (read-write) workspace change its workspace",
		Source:  "new: policy workspace.access (review-only sessions)",
		Run: func(ctx context.Context, e *Env) Outcome {
			for _, n := range []string{"a", "b", "c"} {
				os.WriteFile(filepath.Join(e.WS, "w25-"+n), []byte("orig\n"), 0o644)
			}
			pay := `cd "$WS"; echo x > w25-new; echo x >> w25-a; : > w25-b; rm -f w25-c; mv w25-a w25-m; chmod 777 w25-b; touch -d 2001-01-01 w25-b; mkdir w25-d; ln -s / w25-s; "$P" redteam probe openw w25-b`
			before := homeManifest(e.WS)
			e.Sh(ctx, pay)
			err := e.S.WriteFile(ctx, "w25-tool", []byte("x"))
			e.Tool("write_file w25-tool", nil, err)
			bad := manifestDiff(before, homeManifest(e.WS))
			s, ws, err := e.OpenSession(ctx, nil)
			if err != nil {
				return Outcome{CouldNotRun: err.Error()}
			}
			for _, n := range []string{"a", "b", "c"} {
				os.WriteFile(filepath.Join(ws, "w25-"+n), []byte("orig\n"), 0o644)
			}
			cb := homeManifest(ws)
			e.ShIn(ctx, s, ws, pay, 20*time.Second)
			return verdict(bad, manifestDiff(cb, homeManifest(ws)))
		},
	}, {
		ID: "E23", Class: Escape, Title: "harness-level fallback or self-escalation", Needs: NeedAPI,
		Probe:   "the payload `touch $H/PWNED-E23` with: call environment knobs (SANDBOX=0, CORDON_UNSANDBOXED=1, CORDON_POLICY, LD_PRELOAD, BASH_ENV) and a host Cwd; after a refused command (a retry-without-sandbox trigger); through MCP bash with dangerouslyDisableSandbox/sandbox=false; through the daemon's exec with unknown fields (unsandboxed, privileged, policy)",
		Oracle:  "$H/PWNED-E23 appears on the host (or the host home changes), or the daemon accepts a request with the unknown fields",
		Control: "the payload on the host, against a scratch home, creates the file",
		Source:  "E23: anthropic-experimental/sandbox-runtime#97, openai/codex#17337, microsoft/vscode#334274",
		Run: func(ctx context.Context, e *Env) Outcome {
			pay := `mkdir -p "$H" 2>/dev/null; touch "$H/PWNED-E23" && echo touched`
			for _, env := range []map[string]string{
				{"SANDBOX": "0", "CORDON_UNSANDBOXED": "1", "CORDON_SANDBOX": "off", "CORDON_POLICY": "/dev/null"},
				{"LD_PRELOAD": "/nonexistent/x.so", "BASH_ENV": e.WS + "/x.sh", "ENV": e.WS + "/x.sh"},
			} {
				res, err := e.S.Exec(ctx, sandbox.ExecRequest{Command: e.vars(e.WS) + pay, Env: env, Timeout: 10 * time.Second})
				e.record(describe(res, err))
			}
			for _, cwd := range []string{e.H, "/", "../../.."} {
				res, err := e.S.Exec(ctx, sandbox.ExecRequest{Command: e.vars(e.WS) + "pwd; " + pay, Cwd: cwd, Timeout: 10 * time.Second})
				e.record(describe(res, err))
			}
			e.Sh(ctx, `cat /etc/shadow; mount -t tmpfs x /mnt; `+pay)
			var bad []string
			cs, err := e.mcpClient(ctx, mcpserver.New(e.S, mcpserver.Options{}))
			if err != nil {
				return Outcome{CouldNotRun: err.Error()}
			}
			e.mcpCall(ctx, cs, "bash", map[string]any{"command": e.vars(e.WS) + pay, "dangerouslyDisableSandbox": true, "sandbox": false})
			socket, _, _, id, err := e.apiSession(ctx)
			if err != nil {
				return Outcome{CouldNotRun: err.Error()}
			}
			ans := apiRaw(socket, jsonReq("POST", "/v1/sessions/"+id+"/exec", `{"command":"true","unsandboxed":true,"privileged":true,"policy":"x"}`), 5*time.Second)
			e.record(ans)
			if st := status(ans); st < 400 {
				bad = append(bad, fmt.Sprintf("the daemon accepted unknown fields: %d", st))
			}
			if _, err := os.Stat(filepath.Join(e.H, "PWNED-E23")); err == nil {
				bad = append(bad, "$H/PWNED-E23 exists")
				os.Remove(filepath.Join(e.H, "PWNED-E23"))
			}
			ctl := filepath.Join(e.WS, "..", "ctl-"+e.Tag)
			defer os.RemoveAll(ctl)
			c2 := e.Host(ctx, "H="+shq(ctl)+"; "+pay)
			return verdict(bad, filter([]string{c2.Text}, contains("touched")))
		},
	}, {
		ID: "E26", Class: Escape, Title: "seccomp through the i386 (int $0x80) and x32 entries",
		Probe:   "getpid, keyctl, io_uring_setup, perf_event_open and unshare(CLONE_NEWUSER) through int $0x80 and with the x32 bit, each in a child of its own",
		Oracle:  "a denied call answers anything but EPERM, ENOSYS or a SIGSYS kill: the kernel code was reached through a foreign entry",
		Control: "on the host the i386 entry reaches the kernel for the same calls (x32: reported when this kernel has no x32 ABI, ENOSYS)",
		Source:  "catalog E15 (x32 and foreign arches); DESIGN.md seccomp row; CVE-2019-10063 class (compare widths)",
		Run: func(ctx context.Context, e *Env) Outcome {
			parse := func(t string) map[string]string {
				m := map[string]string{}
				for _, l := range strings.Split(t, "\n") {
					if f := strings.Fields(l); len(f) == 4 && f[0] == "ABI" {
						m[f[1]+" "+f[2]] = f[3]
					}
				}
				return m
			}
			if len(abiCalls) == 0 {
				return Outcome{NotApplicable: "foreign system call entries are probed on amd64 only"}
			}
			a := parse(e.Sh(ctx, `"$P" redteam probe abi`).Text)
			c := parse(e.Host(ctx, `"$P" redteam probe abi`).Text)
			if len(a) == 0 {
				return Outcome{CouldNotRun: "the probe printed nothing"}
			}
			blocked := func(r string) bool { return r == "EPERM" || r == "ENOSYS" || r == "killed-SIGSYS" }
			var bad, ctl []string
			x32 := "configured"
			for _, k := range abiCalls {
				key := k.abi + " " + k.name
				if k.name != "getpid" && !blocked(a[key]) {
					bad = append(bad, key+"="+a[key])
				}
				if k.name == "getpid" && k.abi == "x32" && c[key] == "ENOSYS" {
					x32 = "not in this kernel (ENOSYS on the host)"
				}
				if k.abi == "i386" && k.name != "getpid" && !blocked(c[key]) && c[key] != "" {
					ctl = append(ctl, key+"="+c[key])
				}
			}
			o := verdict(bad, ctl)
			o.Metrics = map[string]string{"x32": x32}
			return o
		},
	}, {
		ID: "E27", Class: Escape, Title: "writing the supervisor's or executor's binary through /proc/PID/exe (CVE-2019-5736)",
		Probe:   "for every visible pid: open /proc/PID/exe with O_PATH and reopen it for writing through /proc/self/fd (never writing)",
		Oracle:  "a reopen for writing succeeds, or fails only with ETXTBSY, for a binary outside the workspace",
		Control: "on the host, the same probe against a running copy of the probe gets ETXTBSY (writable once it exits)",
		Source:  "new: CVE-2019-5736 (runc /proc/self/exe overwrite); docs/security.md (non-dumpable supervisor and executor)",
		Run: func(ctx context.Context, e *Env) Outcome {
			a := e.Sh(ctx, `"$P" redteam probe exe all`)
			bad := filter(a.OKs(), func(l string) bool { return !strings.Contains(l, "("+e.WS+"/") })
			c := e.Host(ctx, `cp "$P" "$WS/../exe-$T"; "$WS/../exe-$T" redteam probe hold 5s & pid=$!; sleep 0.3; "$P" redteam probe exe $pid; kill $pid; wait $pid; rm -f "$WS/../exe-$T"`)
			return verdict(bad, filter(c.OKs(), contains("ETXTBSY")))
		},
	}, {
		ID: "E28", Class: Escape, Title: "rtnetlink configuration of the session's network namespace",
		Probe:   "add an address to lo through NETLINK_ROUTE (RTM_NEWADDR)",
		Oracle:  "the kernel accepts it (the tool process holds CAP_NET_ADMIN over its namespace)",
		Control: "the probe on the host adds it (as root, in a network namespace of its own; otherwise in a user and network namespace of its own)",
		Source:  "new: capabilities (all dropped in the executor)",
		Run: func(ctx context.Context, e *Env) Outcome {
			a := e.Sh(ctx, `"$P" redteam probe addaddr 10.99.99.99/32`)
			var c Obs
			if e.Root {
				c = e.HostAs(ctx, []string{"unshare", "-n"}, `"$P" redteam probe addaddr 10.99.99.99/32`)
			} else {
				c = e.Control(ctx, hostCtl{root: "addaddr 10.99.99.99/32", ns: "n"})
			}
			return verdict(a.OKs(), c.OKs())
		},
	}, {
		ID: "E30", Class: Escape, Title: "set-user-ID, set-group-ID and file-capability binaries planted in the workspace",
		Probe:   "in the workspace: open(O_CREAT) with mode 04755 and 02755, openat2(O_CREAT) with mode 06755, chmod 4755/2755, fchmodat 06755, a security.capability xattr, and cp /bin/id + chmod u+s",
		Oracle:  "a file in the workspace, seen on the host, is set-user-ID or set-group-ID or carries a file capability (any host user who runs it gets its owner's rights; a root-started session's files belong to the workspace's owner)",
		Control: "the same chmod on the host, in a scratch directory, is seen by the same check",
		Source:  "new: idmapped workspace (docs/security.md modes); W03's 'the host executes later'",
		Run: func(ctx context.Context, e *Env) Outcome {
			dir := filepath.Join(e.WS, "e30-"+e.Tag)
			defer os.RemoveAll(dir)
			e.Sh(ctx, `d="$WS/e30-$T"; mkdir -p "$d"; "$P" redteam probe mkexec "$d"; cp /usr/bin/id "$d/id" && chmod u+s,g+s "$d/id" && ls -ln "$d"`)
			bad := privileged(dir)
			if e.Root && len(bad) > 0 {
				if _, err := os.Stat(filepath.Join(dir, "id")); err == nil {
					os.Chmod(dir, 0o755)
					r := e.HostAs(ctx, e.unprivileged(), shq(filepath.Join(dir, "id")))
					if strings.Contains(r.Text, "euid=0") {
						bad = append(bad, "uid 65534 on the host runs it with euid 0: "+strings.TrimSpace(strings.Split(r.Text, "\n")[0]))
					}
				}
			}
			ctl := filepath.Join(e.WS, "..", "ctl-"+e.Tag)
			defer os.RemoveAll(ctl)
			e.Host(ctx, `mkdir -p "$WS/../ctl-$T" && cp /usr/bin/id "$WS/../ctl-$T/id" && chmod u+s "$WS/../ctl-$T/id"`)
			return verdict(bad, privileged(ctl))
		},
	},
		crossCase("X06", "poisoning package and build caches shared between sessions",
			"A writes its secret into the module cache (~/go/pkg/mod, bound read-only from the host), ~/.cache/go-build, ~/.npm/_cacache, ~/.cache/pip, ~/.cargo/registry; B, then a B opened after A's teardown, searches them",
			"B finds A's secret", "A finds its own secret", "X06: kirodotdev/KiroCrew#5883; catalog W02",
			`for d in ~/go/pkg/mod/cache/download/x06 ~/.cache/go-build/x0 ~/.npm/_cacache/x06 ~/.cache/pip/x06 ~/.cargo/registry/x06; do mkdir -p "$d" 2>/dev/null; echo $A > "$d/$T" 2>/dev/null; done`,
			`grep -rs . ~/go ~/.cache ~/.npm ~/.cargo 2>/dev/null | head -40`, false),
		dosCaseCheck("D12", "denial-event flood (seccomp notifications)", "2 s of denied keyctl calls as fast as they return, in one process",
			"a second session's trivial call misses the bound, or the call's result carries more than 64 denial records (they must fold into one with a count)",
			"the call got its denials (folded, with a count)", "new: DESIGN.md (every denial is an event; the supervisor answers each notification)", 0, nil,
			`"$P" redteam probe denyloop 2s`, 20*time.Second,
			func(o Obs) bool { return o.Res != nil && len(o.Res.Denials) > 0 },
			func(o Obs) []string {
				if o.Res != nil && len(o.Res.Denials) > 64 {
					return []string{fmt.Sprintf("%d denial records in one result", len(o.Res.Denials))}
				}
				return nil
			}),
		{
			ID: "D10", Class: Denial, Title: "filling the host filesystem through the workspace (free-space floor)", Needs: NeedAPI, FreshOnly: true,
			Probe:   "under a policy whose limits.disk_free is 256 MiB below the workspace filesystem's free space: fallocate 16 files of 64 MiB (1 GiB), then a 1 GiB dd stream, in the workspace; the files are removed after",
			Oracle:  "the files in the workspace hold more blocks, as the host counts them, than the floor leaves room for (the free space just before the fill less the floor: 256 MiB unless the host's own use changed it meanwhile) plus 128 MiB for the overshoot of a stream in one polling interval. Run only with 8 GiB free there",
			Control: "the same fill run on the host, in a scratch directory beside the workspace, allocates all of it (2 GiB)",
			Source:  "D03 (catalog: fallocate -l 1T $WS/big; oracle: host free space below a threshold, no ENOSPC inside before that); docs/policy.md, Disk free space",
			Run: func(ctx context.Context, e *Env) Outcome {
				free, err := availableBytes(e.WS)
				if err != nil {
					return Outcome{CouldNotRun: err.Error()}
				}
				if free < 8<<30 {
					return Outcome{NotApplicable: fmt.Sprintf("only %d MiB free on the workspace's filesystem: not filling it", free>>20)}
				}
				pol := policy.Default()
				pol.Limits.DiskFree = policy.ByteSize(free - 256<<20)
				s, ws, err := e.OpenSession(ctx, pol)
				if err != nil {
					return Outcome{CouldNotRun: "opening the session: " + err.Error()}
				}
				if !sameFilesystem(ws, e.WS) {
					return Outcome{CouldNotRun: "the case's workspace is not on the filesystem whose free space set the floor"}
				}
				const fill = `n=0; for i in $(seq 1 16); do fallocate -l 64M "$WS/d10-$i" 2>/dev/null && n=$((n+1)); done; echo "fallocated $n of 16"; dd if=/dev/zero of="$WS/d10-dd" bs=1M count=1024 2>&1 | tail -n 1`
				// Others on the host write and delete too: the room the
				// floor leaves is measured right before the fill.
				before, err := availableBytes(ws)
				if err != nil {
					return Outcome{CouldNotRun: err.Error()}
				}
				room := max(before-int64(pol.Limits.DiskFree), 0)
				a := e.ShIn(ctx, s, ws, fill, time.Minute)
				got := allocated(ws, "d10-")
				removeGlob(ws, "d10-")
				ctl := filepath.Join(filepath.Dir(e.WS), "ctl-"+e.Tag)
				defer os.RemoveAll(ctl)
				c := e.Host(ctx, `mkdir -p "$WS/../ctl-$T" && WS="$WS/../ctl-$T"; `+fill)
				want := allocated(ctl, "d10-")
				removeGlob(ctl, "d10-")
				o := verdict(nil, nil)
				if got > room+128<<20 {
					o = verdict([]string{fmt.Sprintf("%d MiB allocated in the workspace where the floor left %d MiB: %s", got>>20, room>>20, firstLine(a.Text, "fallocated"))}, nil)
				}
				if want >= 2<<30 {
					o.Control, o.ControlEvidence = true, fmt.Sprintf("the fill on the host allocated %d MiB", want>>20)
				} else {
					o.Control, o.ControlEvidence = false, fmt.Sprintf("the fill on the host allocated only %d MiB: %s", want>>20, strings.TrimSpace(c.Text))
				}
				o.Metrics = map[string]string{"room_mib": strconv.FormatInt(room>>20, 10), "allocated_mib": strconv.FormatInt(got>>20, 10), "host_allocated_mib": strconv.FormatInt(want>>20, 10)}
				return o
			},
		},
	}
}

// availableBytes is the free space of the filesystem holding dir, as df's
// "Avail" counts it (and limits.disk_free).
func availableBytes(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, &os.PathError{Op: "statfs", Path: dir, Err: err}
	}
	return int64(st.Bavail) * st.Frsize, nil
}

// sameFilesystem reports whether a and b are on one filesystem.
func sameFilesystem(a, b string) bool {
	var sa, sb unix.Stat_t
	return unix.Stat(a, &sa) == nil && unix.Stat(b, &sb) == nil && sa.Dev == sb.Dev
}

// allocated sums the blocks the files in dir named prefix* hold.
func allocated(dir, prefix string) int64 {
	files, _ := filepath.Glob(filepath.Join(dir, prefix+"*"))
	var n int64
	for _, f := range files {
		var st unix.Stat_t
		if unix.Lstat(f, &st) == nil {
			n += st.Blocks * 512
		}
	}
	return n
}

// removeGlob removes the files in dir named prefix*.
func removeGlob(dir, prefix string) {
	files, _ := filepath.Glob(filepath.Join(dir, prefix+"*"))
	for _, f := range files {
		os.Remove(f)
	}
}
