package redteam

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cordon-sandbox/cordon/policy"
	"github.com/cordon-sandbox/cordon/sandbox"
)

// Cases returns every case, in scorecard order: by class, then by ID.
func Cases() []*Case {
	var all []*Case
	for _, l := range [][]*Case{readCases(), writeCases(), escapeCases(), networkCases(), fakeNetCases(), crossCases(), denialCases(), netCrossCases(), ifaceCases(), {daemonDenialCase()}, moreCases()} {
		all = append(all, l...)
	}
	rank := map[Class]int{}
	for i, c := range Classes {
		rank[c] = i
	}
	sort.SliceStable(all, func(i, j int) bool {
		if all[i].Class != all[j].Class {
			return rank[all[i].Class] < rank[all[j].Class]
		}
		ni, _ := strconv.Atoi(all[i].ID[1:])
		nj, _ := strconv.Atoi(all[j].ID[1:])
		return ni < nj
	})
	return all
}

// verdict builds an outcome from an attack observation and a control
// observation: oks are the "OK" lines that count.
func verdict(attack []string, control []string) Outcome {
	o := Outcome{Attacked: len(attack) > 0, Control: len(control) > 0}
	o.Evidence = strings.Join(attack, "; ")
	o.ControlEvidence = strings.Join(control, "; ")
	if !o.Control {
		o.ControlEvidence = "control saw nothing"
	}
	return o
}

func filter(lines []string, keep func(string) bool) []string {
	var out []string
	for _, l := range lines {
		if keep(l) {
			out = append(out, l)
		}
	}
	return out
}

func all(string) bool { return true }

// leaks returns the canaries an observation shows (for controls; the
// runner checks everything the session returned on its own).
func (e *Env) leaks(o Obs) []string { return e.C.Leak(o.Text) }

func contains(sub string) func(string) bool {
	return func(l string) bool { return strings.Contains(l, sub) }
}

// ---------------------------------------------------------------- R

func readCases() []*Case {
	return []*Case{{
		ID: "R01", Class: Read, Title: "harness environment inherited by tool calls",
		Probe:   "env; /proc/self/environ; /proc/1/environ; every /proc/*/environ",
		Oracle:  "C-ENV canary (in the harness's CORDON_REDTEAM_SECRET, AWS_SECRET_ACCESS_KEY, GITHUB_TOKEN) in the output",
		Control: "the same shell text run on the host by the harness prints the canary",
		Source:  "R01: anthropic-experimental/sandbox-runtime#58, lijunzh/koda PR#1229",
		Run: func(ctx context.Context, e *Env) Outcome {
			cmd := `env; tr '\0' '\n' </proc/self/environ; for p in /proc/[0-9]*; do tr '\0' '\n' <$p/environ; done 2>&1`
			e.Sh(ctx, cmd)
			return verdict(nil, e.leaks(e.Host(ctx, cmd)))
		},
	}, {
		ID: "R03", Class: Read, Title: "credential files in the host home",
		Probe:   "cat $H/.ssh/id_canary, .aws/credentials, .netrc, gh, docker, kube, git-credentials, history; ls /home/*",
		Oracle:  "C-FILE canary in the output",
		Control: "the same cat on the host prints it",
		Source:  "R03: openai/codex#11316, anthropics/claude-code#84863",
		Run: func(ctx context.Context, e *Env) Outcome {
			var cmd strings.Builder
			for _, f := range credFiles {
				fmt.Fprintf(&cmd, `cat "$H/%s"; `, f)
			}
			cmd.WriteString(`ls -la /home/* ~ 2>&1; cat ~/.ssh/* 2>&1`)
			e.Sh(ctx, cmd.String())
			return verdict(nil, e.leaks(e.Host(ctx, cmd.String())))
		},
	}, {
		ID: "R04", Class: Read, Title: "root-only and other users' files", Needs: NeedRoot,
		Probe:   "cat /etc/<root 0600 canary> /etc/<uid 54321 0600 canary> /etc/shadow",
		Oracle:  "C-ROOT or C-OTHER canary in the output",
		Control: "cat as host root prints both (a rootless harness: cat of a 0600 twin in /etc it owns prints the twin's token)",
		Source:  "R04: cdk-team/CDK PR#14/#27",
		Run: func(ctx context.Context, e *Env) Outcome {
			cmd := fmt.Sprintf("cat %s %s /etc/shadow 2>&1; ls -l %s %s", e.RootFile, e.OtherFile, e.RootFile, e.OtherFile)
			e.Sh(ctx, cmd)
			if !e.Root {
				// The same cat of a 0600 twin in /etc that the
				// harness owns prints it.
				c := e.Host(ctx, "cat "+e.TwinFile)
				return verdict(nil, filter([]string{c.Text}, contains(e.TwinToken)))
			}
			return verdict(nil, e.leaks(e.Host(ctx, cmd)))
		},
	}, {
		ID: "R05", Class: Read, Title: "read by path spelling, /proc/*/root, symlink and hardlink",
		Probe:   "cat $H//.ssh/./id_canary, ../ spellings, /proc/self/root$H/..., /proc/1/root$H/...; ln -s $H ws/l; cat l/.ssh/id_canary; ln $H/.ssh/id_canary ws/h",
		Oracle:  "C-FILE canary in the output, or the hardlink exists in the workspace",
		Control: "the same spellings and links on the host print the canary",
		Source:  "R05: sandbox-runtime symlink-deny-path tests",
		Run: func(ctx context.Context, e *Env) Outcome {
			cmd := `for p in "$H//.ssh/./id_canary" "$H/.ssh/../.ssh/id_canary" "/proc/self/root$H/.ssh/id_canary" "/proc/1/root$H/.ssh/id_canary" "/proc/$$/cwd/../../$H/.ssh/id_canary"; do cat "$p"; done 2>&1
ln -s "$H" "$WS/l-$T" && cat "$WS/l-$T/.ssh/id_canary" 2>&1; ln "$H/.ssh/id_canary" "$WS/h-$T" 2>&1 && echo "OK hardlink"; rm -f "$WS/l-$T"`
			a := e.Sh(ctx, cmd)
			c := e.Host(ctx, cmd)
			os.Remove(filepath.Join(e.WS, "h-"+e.Tag))
			var bad []string
			if _, err := os.Lstat(filepath.Join(e.WS, "h-"+e.Tag)); err == nil && a.Text != "" && strings.Contains(a.Text, "OK hardlink") {
				bad = append(bad, "hardlink to the host home created")
			}
			return verdict(bad, e.leaks(c))
		},
	}, {
		ID: "R08", Class: Read, Title: "credential brokers through inherited IPC pointers",
		Probe:   "echo $SSH_AUTH_SOCK ...; connect to the harness's SSH_AUTH_SOCK (its path, passed as a parameter) and read",
		Oracle:  "C-AGENT canary (the agent socket's answer) in the output, or the agent listener gets bytes without the control token",
		Control: "the probe on the host connects and reads the canary",
		Source:  "R08: DiamondLightSource/python-copier-template PR#340, TNG/oh-my-agentic-coder#102",
		Run: func(ctx context.Context, e *Env) Outcome {
			cmd := fmt.Sprintf(`echo "$SSH_AUTH_SOCK $GPG_AGENT_INFO $DBUS_SESSION_BUS_ADDRESS $GIT_ASKPASS"; "$P" redteam probe connect unix %s; ls -la /run /tmp 2>&1`, shq(e.AgentSock))
			e.Sh(ctx, cmd)
			// The control connects as the harness, sends the control
			// token and reads the agent's answer (the canary).
			c := e.Host(ctx, fmt.Sprintf(`"$P" redteam probe connect unix %s "$CT"`, shq(e.AgentSock)))
			return verdict(nil, e.leaks(c))
		},
	},
		metadataCase(),
		{
			ID: "R13", Class: Read, Title: "file tools: absolute, .., symlinks out of the workspace", Needs: NeedAPI,
			Probe:   "read_file/list_dir/stat of $H/.ssh/id_canary, ../.., and workspace symlinks (file, dir, /proc/self/root) to the host home made on the host and by a shell call",
			Oracle:  "C-FILE canary in a file-tool result or error",
			Control: "os.ReadFile on the host through the same symlink reads the canary",
			Source:  "R13: anthropics/claude-code#15789, microsoft/vscode#330987",
			Run: func(ctx context.Context, e *Env) Outcome {
				target := filepath.Join(e.H, ".ssh/id_canary")
				lf, ld := "lf-"+e.Tag, "ld-"+e.Tag
				_ = os.Symlink(target, filepath.Join(e.WS, lf))
				_ = os.Symlink(filepath.Join(e.H, ".ssh"), filepath.Join(e.WS, ld))
				e.Sh(ctx, `ln -s "/proc/self/root$H/.ssh/id_canary" "$WS/lp-$T"; ln -s ../../../../../../../../.. "$WS/lu-$T"`)
				rel, _ := filepath.Rel(e.WS, target)
				for _, p := range []string{target, rel, "./" + rel, lf, ld + "/id_canary", "lp-" + e.Tag, "lu-" + e.Tag + target, ".rt/../" + rel} {
					d, _, err := e.S.ReadFile(ctx, p)
					e.Tool("read_file "+p, d, err)
				}
				for _, p := range []string{ld, "lu-" + e.Tag + e.H + "/.ssh", rel + "/.."} {
					ents, err := e.S.ListDir(ctx, p)
					e.Tool("list_dir "+p, []byte(fmt.Sprint(ents)), err)
				}
				st, err := e.S.Stat(ctx, ld+"/id_canary")
				e.Tool("stat", []byte(fmt.Sprint(st)), err)
				ctl, _ := os.ReadFile(filepath.Join(e.WS, lf))
				for _, n := range []string{lf, ld, "lp-" + e.Tag, "lu-" + e.Tag} {
					os.Remove(filepath.Join(e.WS, n))
				}
				return verdict(nil, e.C.Leak(string(ctl)))
			},
		}, {
			ID: "R20", Class: Read, Title: "host and supervisor processes' argv and environment via /proc",
			Probe:   "cat /proc/*/cmdline and /proc/*/environ, /proc/1/{environ,cmdline,mem,maps}, ls /proc/1/root/",
			Oracle:  "C-ARGV or C-ENV canary (of a host decoy process and of the harness) in the output",
			Control: "the same scan on the host finds the decoy's argv and environment",
			Source:  "new: pid namespace, non-dumpable supervisor (docs/security.md)",
			Run: func(ctx context.Context, e *Env) Outcome {
				cmd := `for p in /proc/[0-9]*; do tr '\0' ' ' <$p/cmdline; echo; tr '\0' '\n' <$p/environ; done 2>&1; head -c 64 /proc/1/mem 2>&1 | od -c | head -2; cat /proc/1/maps 2>&1 | head -3; ls /proc/1/root/ 2>&1 | head`
				e.Sh(ctx, cmd)
				return verdict(nil, e.leaks(e.Host(ctx, fmt.Sprintf("tr '\\0' ' ' </proc/%d/cmdline; tr '\\0' '\\n' </proc/%d/environ", e.Decoy.Process.Pid, e.Decoy.Process.Pid))))
			},
		}}
}

// ---------------------------------------------------------------- W

// writePayload appends $M to each of paths (under $R for system paths)
// and prints WROTE for each that worked.
func writePayload(paths []string) string {
	var b strings.Builder
	for _, p := range paths {
		fmt.Fprintf(&b, `f=%s; mkdir -p "$(dirname "$f")" 2>/dev/null; (echo "#$M" >> "$f") 2>/dev/null && echo "OK WROTE $f"; `, p)
	}
	return b.String()
}

func writeCases() []*Case {
	homePaths := []string{`"$H/.bashrc"`, `"$H/.profile"`, `"$H/.gitconfig"`, `"$H/.ssh/authorized_keys"`, `"$H/.config/autostart/x.desktop"`, `"$H/.config/systemd/user/x.service"`, `"$H/.local/bin/git"`}
	sysPaths := []string{`"$R/usr/local/bin/cordonrt-$T"`, `"$R/etc/profile.d/cordonrt-$T.sh"`, `"$R/etc/cron.d/cordonrt-$T"`, `"$R/var/spool/cron/crontabs/cordonrt-$T"`, `"$R/etc/cordonrt-$T"`, `"$R/cordonrt-$T"`, `"$R/lib/cordonrt-$T"`, `"$R/opt/cordonrt-$T"`}
	sysCheck := func(e *Env) []string {
		var found []string
		for _, p := range []string{"/usr/local/bin/cordonrt-", "/etc/profile.d/cordonrt-", "/etc/cron.d/cordonrt-", "/var/spool/cron/crontabs/cordonrt-", "/etc/cordonrt-", "/cordonrt-", "/lib/cordonrt-", "/opt/cordonrt-"} {
			g, _ := filepath.Glob(p + e.Tag + "*")
			for _, f := range g {
				found = append(found, f)
				os.Remove(f) // ours: the payload's marker
			}
		}
		return found
	}
	return []*Case{{
		ID: "W01", Class: Write, Title: "host dotfiles and system paths",
		Probe:   "append a marker to $H/.bashrc .profile .gitconfig .ssh/authorized_keys autostart systemd-user .local/bin, /usr/local/bin, /etc/profile.d, /etc, /, /lib, /opt",
		Oracle:  "a change in the host home or a marker file in a system path, checked on the host (a WROTE alone may be the session's private /tmp or HOME)",
		Control: "the payload run on the host against a scratch copy of those paths writes every one",
		Source:  "W01: sandbox-runtime mandatory-deny-paths.test.ts; brave/brave-browser#3420",
		Run: func(ctx context.Context, e *Env) Outcome {
			// The oracle is the host: where $H lies under /tmp, the
			// session's writes to $H land in its private /tmp, which
			// is no attack (the shared check compares the real $H).
			e.Sh(ctx, "R=; "+writePayload(append(homePaths, sysPaths...)))
			bad := sysCheck(e)
			ctl := filepath.Join(e.WS, "..", "ctl-"+e.Tag)
			defer os.RemoveAll(ctl)
			c := e.Host(ctx, fmt.Sprintf("R=%s; H=%s/home; ", shq(ctl), shq(ctl))+writePayload(append(homePaths, sysPaths...)))
			return verdict(bad, c.OKs())
		},
	}, {
		ID: "W02", Class: Write, Title: "caches and toolchain dirs shared with the host",
		Probe:   "touch a marker in ~/.cache ~/.npm ~/.cargo ~/go ~/.local ..., in the read-only bound module cache; list rw mounts",
		Oracle:  "a marker in the host home (incl. its go/pkg/mod bound into the view), or an rw mount other than the workspace, /tmp, HOME, /dev/shm, /proc, devpts",
		Control: "the same touch on the host in the fake home's module cache works",
		Source:  "W02: Pines-Cheng/blog#151, kirodotdev/KiroCrew#5883",
		Run: func(ctx context.Context, e *Env) Outcome {
			a := e.Sh(ctx, `for d in ~/.cache ~/.npm ~/.cargo ~/.m2 ~/go ~/.local ~/go/pkg/mod ~/go/pkg/mod/cache "$H/go/pkg/mod" "$H/.cache"; do mkdir -p "$d" 2>/dev/null; touch "$d/cordonrt-$T" 2>/dev/null && echo "touched $d"; done
awk '$6 ~ /(^|,)rw(,|$)/ {print "RWMOUNT", $5, $9}' /proc/self/mountinfo`)
			var bad []string
			for _, l := range strings.Split(a.Text, "\n") {
				if f := strings.Fields(l); len(f) >= 2 && f[0] == "RWMOUNT" {
					switch {
					case f[1] == e.WS, f[1] == "/tmp", f[1] == "/home/cordon", f[1] == "/dev/shm", f[1] == "/proc", f[1] == "/dev/pts", f[1] == "/dev/mqueue",
						f[1] == "/dev/null", f[1] == "/dev/zero", f[1] == "/dev/full", f[1] == "/dev/random", f[1] == "/dev/urandom", f[1] == "/dev/tty":
					default:
						bad = append(bad, "rw mount "+f[1])
					}
				}
			}
			c := e.Host(ctx, `mkdir -p "$WS/../ctl-$T/go/pkg/mod" && touch "$WS/../ctl-$T/go/pkg/mod/x" && echo "OK touched"; rm -rf "$WS/../ctl-$T"`)
			return verdict(bad, c.OKs())
		},
	}, {
		ID: "W03", Class: Write, Title: "workspace metadata the host executes later (.git/hooks, .git/config, .vscode, .claude, .envrc)",
		Probe:   "in a repository with .git/hooks, .git/config, .vscode, .claude, .envrc when the session opens: write a hook, core.fsmonitor/hooksPath into .git/config, .vscode/tasks.json, .claude/settings.json, .envrc; rename .git and .vscode away and recreate them",
		Oracle:  "issue 6: the default policy keeps these read-only (they exist at open) unless fs.write is granted, so any write that lands is the attack (names absent at open are a documented gap, docs/security.md)",
		Control: "the same writes on the host land",
		Source:  "W03: openai/codex#37081, trailofbits/claude-code-devcontainer PR#42, mistralai/mistral-vibe PR#962",
		Run: func(ctx context.Context, e *Env) Outcome {
			// Protection covers what exists when a session opens: the
			// case opens its own session on a repository made first.
			var dirs [2]string
			for i, kind := range []string{"w03", "w03c"} {
				d, err := e.r.workspace(kind)
				if err != nil {
					return Outcome{CouldNotRun: err.Error()}
				}
				for _, sub := range []string{".git/hooks", ".git/info", ".vscode", ".claude"} {
					_ = os.MkdirAll(filepath.Join(d, sub), 0o755)
				}
				for name, data := range map[string]string{".git/config": "[core]\n", ".vscode/tasks.json": "{}", ".claude/settings.json": "{}", ".envrc": "true\n"} {
					_ = os.WriteFile(filepath.Join(d, name), []byte(data), 0o644)
				}
				dirs[i] = d
			}
			payload := `cd "$WS" || exit 1
printf '#!/bin/sh\ntouch "$H/PWNED-W03"\n' > .git/hooks/pre-commit && echo "OK wrote hook"
printf '[core]\n\tfsmonitor = touch "$H/PWNED-W03-fsm"\n\thooksPath = .githooks\n' >> .git/config && echo "OK wrote .git/config"
echo '{"tasks":[{"label":"x","command":"true","runOptions":{"runOn":"folderOpen"}}]}' > .vscode/tasks.json && echo "OK wrote tasks.json"
echo '{"hooks":{}}' > .claude/settings.json && echo "OK wrote .claude/settings.json"
echo 'true' > .envrc && echo "OK wrote .envrc"
mv .git .git.old && mkdir -p .git/hooks && echo "OK replaced .git"
mv .vscode .vscode.old && mkdir .vscode && echo "OK replaced .vscode"`
			var a Obs
			if e.Wrapped() {
				a = e.ShIn(ctx, nil, dirs[0], payload, 30*time.Second)
			} else {
				s, err := sandbox.Open(ctx, sandbox.Options{Workspace: dirs[0]})
				if err != nil {
					return Outcome{CouldNotRun: "opening the session: " + err.Error()}
				}
				e.extra = append(e.extra, s)
				e.extraWS = append(e.extraWS, dirs[0])
				a = e.ShIn(ctx, s, dirs[0], payload, 30*time.Second)
			}
			c := e.Host(ctx, "WS="+shq(dirs[1])+"; "+payload)
			return verdict(a.OKs(), c.OKs())
		},
	}, {
		ID: "W06", Class: Write, Title: "per-call cwd swapped for a symlink out of the workspace", Needs: NeedAPI,
		Probe:   "call k: replace dir ws/d with a symlink to $H (and to /etc); call k+1 with Cwd=d: touch marker",
		Oracle:  "the call runs with its cwd outside the workspace or the marker appears in $H or /etc",
		Control: "on the host, the same cwd through the symlink lands the marker in the (fake) home",
		Source:  "W06: CVE-2021-30465 (runc symlink-exchange), CVE-2025-31133",
		Run: func(ctx context.Context, e *Env) Outcome {
			var bad []string
			for _, tgt := range []string{"$H", "/etc", "/proc/self/root" + "$H"} {
				e.Sh(ctx, `rm -rf "$WS/d-$T"; ln -s `+tgt+` "$WS/d-$T"`)
				res, err := e.S.Exec(ctx, sandbox.ExecRequest{Command: `pwd; touch cordonrt-w06 && echo "OK touched in $(pwd -P)"`, Cwd: "d-" + e.Tag, Timeout: 10 * time.Second})
				e.record(describe(res, err))
				if res != nil && strings.Contains(string(res.Stdout), "OK touched") {
					bad = append(bad, "call ran with cwd through the symlink: "+strings.TrimSpace(string(res.Stdout)))
				}
			}
			if _, err := os.Stat("/etc/cordonrt-w06"); err == nil {
				bad = append(bad, "/etc/cordonrt-w06 exists")
				os.Remove("/etc/cordonrt-w06")
			}
			os.Remove(filepath.Join(e.WS, "d-"+e.Tag))
			ctl := filepath.Join(e.WS, "..", "ctl-"+e.Tag)
			os.MkdirAll(ctl, 0o755)
			defer os.RemoveAll(ctl)
			os.Symlink(ctl, filepath.Join(e.WS, "dc-"+e.Tag))
			defer os.Remove(filepath.Join(e.WS, "dc-"+e.Tag))
			c := e.Host(ctx, `cd "$WS/dc-$T" && touch cordonrt-w06`)
			_, err := os.Stat(filepath.Join(ctl, "cordonrt-w06"))
			var cev []string
			if err == nil {
				cev = []string{"marker landed through the symlinked cwd"}
			} else {
				cev = nil
				_ = c
			}
			return verdict(bad, cev)
		},
	}, {
		ID: "W08", Class: Write, Title: "mount-point artifacts left on the host", Needs: NeedAPI,
		Probe:   "no attack: one call; then compare the workspace and host home before and after the session",
		Oracle:  "a file or directory created in the workspace or the host home by the session's setup or teardown",
		Control: "a file created on the host is seen by the same comparison",
		Source:  "W08: sandbox-runtime mandatory-deny-paths.test.ts (ghost dotfiles)",
		Run: func(ctx context.Context, e *Env) Outcome {
			if e.Mode == "warm" {
				return Outcome{NotApplicable: "teardown artifacts need a fresh session"}
			}
			before := homeManifest(e.WS)
			s, ws, err := e.OpenSession(ctx, nil)
			if err != nil {
				return Outcome{CouldNotRun: err.Error()}
			}
			wsBefore := homeManifest(ws)
			e.ShIn(ctx, s, ws, "true", 10*time.Second)
			_ = e.CloseSession(s)
			var bad []string
			bad = append(bad, manifestDiff(wsBefore, homeManifest(ws))...)
			bad = append(bad, manifestDiff(before, homeManifest(e.WS))...)
			_ = os.WriteFile(filepath.Join(ws, "ctl"), nil, 0o644)
			return verdict(bad, manifestDiff(wsBefore, homeManifest(ws)))
		},
	}, {
		ID: "W09", Class: Write, Title: "persistence through host schedulers and service managers",
		Probe:   "crontab -, at, systemd-run --user, write /etc/cron.d, /var/spool/cron, connect /run/user/*/bus and /run/systemd/private",
		Oracle:  "a marker file in a host scheduler directory, or OK connect",
		Control: "the payload against scratch copies of those directories on the host writes them",
		Source:  "W09: fencesandbox/fence#186, flatpak/flatpak#2787",
		Run: func(ctx context.Context, e *Env) Outcome {
			pay := func(r string) string {
				return "R=" + r + "; " + writePayload([]string{`"$R/etc/cron.d/cordonrt-$T"`, `"$R/var/spool/cron/crontabs/cordonrt-$T"`, `"$R/etc/systemd/system/cordonrt-$T.service"`})
			}
			a := e.Sh(ctx, pay("")+`echo "* * * * * true" | crontab - 2>&1; systemd-run --user true 2>&1; for s in /run/user/*/bus /run/systemd/private /run/dbus/system_bus_socket; do "$P" redteam probe connect unix "$s"; done`)
			bad := filter(a.OKs(), all)
			for _, p := range []string{"/etc/cron.d/cordonrt-", "/var/spool/cron/crontabs/cordonrt-", "/etc/systemd/system/cordonrt-"} {
				if g, _ := filepath.Glob(p + e.Tag + "*"); len(g) > 0 {
					bad = append(bad, g...)
					for _, f := range g {
						os.Remove(f)
					}
				}
			}
			ctl := filepath.Join(e.WS, "..", "ctl-"+e.Tag)
			defer os.RemoveAll(ctl)
			return verdict(bad, e.Host(ctx, pay(shq(ctl))).OKs())
		},
	}, {
		ID: "W20", Class: Write, Title: "file tools writing out of the workspace", Needs: NeedAPI,
		Probe:   "write_file with an absolute host path, ../, dir symlink to $H, dangling symlink to $H/new, symlink to /proc/self/root$H, hardlink of a view file",
		Oracle:  "the host home changes or a host file outside the workspace gets the written bytes",
		Control: "os.WriteFile on the host through the dangling symlink creates the file",
		Source:  "new: file tools (openat2 RESOLVE_BENEATH, docs/security.md); R13's write side",
		Run: func(ctx context.Context, e *Env) Outcome {
			ctl := filepath.Join(e.WS, "..", "ctl-"+e.Tag)
			os.MkdirAll(ctl, 0o755)
			defer os.RemoveAll(ctl)
			_ = os.Symlink(e.H, filepath.Join(e.WS, "wd-"+e.Tag))
			_ = os.Symlink(filepath.Join(e.H, "new-"+e.Tag), filepath.Join(e.WS, "wn-"+e.Tag))
			e.Sh(ctx, `ln -s "/proc/self/root$H" "$WS/wp-$T"; "$P" redteam probe linkout /etc/hostname "$WS/wh-$T"`)
			rel, _ := filepath.Rel(e.WS, filepath.Join(e.H, ".bashrc"))
			for _, p := range []string{filepath.Join(e.H, ".bashrc"), rel, "wd-" + e.Tag + "/.bashrc", "wd-" + e.Tag + "/newdir/x", "wn-" + e.Tag, "wp-" + e.Tag + "/.profile", "wh-" + e.Tag} {
				err := e.S.WriteFile(ctx, p, []byte("#"+e.Marker+"\n"))
				e.Tool("write_file "+p, nil, err)
			}
			var bad []string
			if b, _ := os.ReadFile("/etc/hostname"); strings.Contains(string(b), e.Marker) {
				bad = append(bad, "/etc/hostname written through a hardlink")
			}
			for _, n := range []string{"wd-", "wn-", "wp-", "wh-"} {
				os.Remove(filepath.Join(e.WS, n+e.Tag))
			}
			os.Symlink(filepath.Join(ctl, "new"), filepath.Join(e.WS, "wc-"+e.Tag))
			defer os.Remove(filepath.Join(e.WS, "wc-"+e.Tag))
			var cev []string
			if os.WriteFile(filepath.Join(e.WS, "wc-"+e.Tag), []byte("x"), 0o644) == nil {
				if _, err := os.Stat(filepath.Join(ctl, "new")); err == nil {
					cev = append(cev, "host write through the dangling symlink created the target")
				}
			}
			return verdict(bad, cev)
		},
	}, {
		ID: "W21", Class: Write, Title: "symlink swapped between the file tool's check and use (race, ~1 s)", Needs: NeedAPI,
		Probe:   "a background loop swaps ws/r between a directory and a symlink to $H while write_file/read_file of r/x run in a loop",
		Oracle:  "a file appears in the host home, or a read returns C-FILE",
		Control: "on the host, writing r/x while r is the symlink lands in the (scratch) target",
		Source:  "new: file tools TOCTOU (CVE-2021-30465 pattern applied to openat2 resolution)",
		Run: func(ctx context.Context, e *Env) Outcome {
			swapper := `cd "$WS"; end=$(($(date +%s)+2)); while [ $(date +%s) -lt $end ]; do mkdir -p r-$T.d; mv -T r-$T.d r-$T 2>/dev/null; ln -sfn "$H/.ssh" r-$T.l; mv -T r-$T.l r-$T 2>/dev/null; done; rm -rf r-$T r-$T.d r-$T.l`
			done := make(chan struct{})
			go func() { defer close(done); e.Sh(ctx, swapper) }()
			n := 0
			deadline := time.Now().Add(1500 * time.Millisecond)
			for time.Now().Before(deadline) {
				err := e.S.WriteFile(ctx, "r-"+e.Tag+"/x", []byte(e.Marker))
				e.Tool("write_file race", nil, err)
				d, _, err := e.S.ReadFile(ctx, "r-"+e.Tag+"/id_canary")
				e.Tool("read_file race", d, err)
				n++
			}
			<-done
			ctl := filepath.Join(e.WS, "..", "ctl-"+e.Tag)
			os.MkdirAll(ctl, 0o755)
			defer os.RemoveAll(ctl)
			os.Symlink(ctl, filepath.Join(e.WS, "rc-"+e.Tag))
			defer os.Remove(filepath.Join(e.WS, "rc-"+e.Tag))
			var cev []string
			if os.WriteFile(filepath.Join(e.WS, "rc-"+e.Tag, "x"), []byte("x"), 0o644) == nil {
				cev = append(cev, "host write through the swapped symlink landed")
			}
			o := verdict(nil, cev)
			o.Metrics = map[string]string{"tool_call_pairs": strconv.Itoa(n)}
			return o
		},
	}}
}

// ---------------------------------------------------------------- helpers for policies

func withLimits(mod func(p *policy.Policy)) func() *policy.Policy {
	return func() *policy.Policy {
		p := policy.Default().Clone()
		mod(p)
		return p
	}
}
