package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
)

// bodiesInFlight bounds the request-body bytes the daemon holds at once,
// across all requests: each body is read into memory (a file's bytes, a
// JSON exec with its stdin), so without a bound N clients sending bodies
// at the limit would make the daemon hold N times the limit (red-team
// D20 measured 350 MiB for six). A request whose body would go past it
// is answered 503 busy; the client retries.
// (A variable for tests.)
var bodiesInFlight int64 = 160 << 20

// errBusy is a body refused because the daemon already holds
// bodiesInFlight bytes of bodies.
var errBusy = errors.New("the daemon holds too many request bodies at once; retry")

// bodyBudget counts the body bytes held by requests in progress.
type bodyBudget struct {
	mu        sync.Mutex
	used, max int64
}

func (b *bodyBudget) take(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.max {
		return false
	}
	b.used += n
	return true
}

func (b *bodyBudget) give(n int64) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
}

// body returns r's body bounded to limit bytes and counted against the
// daemon's budget until the request's handler returns. A body whose
// declared length is over limit is refused before a byte of it is read.
func (s *Server) body(r *http.Request, w http.ResponseWriter, limit int64) io.Reader {
	if r.ContentLength > limit {
		return errReader{&http.MaxBytesError{Limit: limit}}
	}
	br := &budgetReader{r: http.MaxBytesReader(w, r.Body, limit), b: &s.bodies}
	context.AfterFunc(r.Context(), br.release)
	return br
}

// budgetReader draws each chunk it reads from the budget.
type budgetReader struct {
	r io.Reader
	b *bodyBudget

	mu   sync.Mutex
	held int64
	done bool
}

func (br *budgetReader) Read(p []byte) (int, error) {
	n, err := br.r.Read(p)
	if n > 0 {
		br.mu.Lock()
		ok := !br.done && br.b.take(int64(n))
		if ok {
			br.held += int64(n)
		}
		br.mu.Unlock()
		if !ok {
			return 0, errBusy
		}
	}
	return n, err
}

// release returns what the reader drew; it runs when the request's
// handler has returned (its context is then done).
func (br *budgetReader) release() {
	br.mu.Lock()
	defer br.mu.Unlock()
	br.done = true
	br.b.give(br.held)
	br.held = 0
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// bodyError answers a failure to read a body: 413 over its limit, 503
// when the daemon's budget is spent, 400 otherwise. what names the body.
func bodyError(w http.ResponseWriter, err error, what string) {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("%s over %d bytes", what, mbe.Limit), nil)
	case errors.Is(err, errBusy):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "busy", err.Error(), nil)
	default:
		writeError(w, http.StatusBadRequest, "invalid", "malformed "+what+": "+err.Error(), nil)
	}
}
