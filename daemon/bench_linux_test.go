package daemon

import (
	"context"
	"encoding/json"
	"testing"
)

// BenchmarkExecTrue is the smallest tool call through the API: `/bin/true`
// in a warm session, over HTTP on the unix socket with the connection kept
// alive, client and daemon in this process (so -cpuprofile sees both).
func BenchmarkExecTrue(b *testing.B) {
	d := startDaemon(b, Options{})
	ctx := context.Background()
	id, err := d.c.Create(ctx, CreateRequest{Workspace: workspace(b)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.c.Remove(context.Background(), id) })
	for b.Loop() {
		raw, err := d.c.Exec(ctx, id, ExecRequest{Argv: []string{"/bin/true"}})
		var r struct {
			ExitCode int `json:"exit_code"`
		}
		if err == nil {
			err = json.Unmarshal(raw, &r)
		}
		if err != nil || r.ExitCode != 0 {
			b.Fatalf("exec /bin/true: %v, exit %d", err, r.ExitCode)
		}
	}
}
