package daemon

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cordon-sandbox/cordon/events"
)

// metrics turns the event stream into Prometheus series.
type metrics struct {
	http.Handler
	sessions prometheus.Gauge
	opened   prometheus.Counter
	calls    *prometheus.CounterVec
	denials  *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	setup    prometheus.Histogram
	egress   *prometheus.CounterVec
	bytes    *prometheus.CounterVec
}

func newMetrics() *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cordon_sessions", Help: "Sessions open now."}),
		opened:   prometheus.NewCounter(prometheus.CounterOpts{Name: "cordon_sessions_opened_total", Help: "Sessions opened."}),
		calls:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cordon_calls_total", Help: "Tool calls finished, by operation."}, []string{"op"}),
		denials:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cordon_denials_total", Help: "Deny and limit events, by layer."}, []string{"layer", "kind"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cordon_call_duration_seconds", Help: "End-to-end tool call latency, by operation.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 20),
		}, []string{"op"}),
		setup: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cordon_session_setup_seconds", Help: "Time to open a session.",
			Buckets: prometheus.ExponentialBuckets(1e-3, 2, 14),
		}),
		egress: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cordon_egress_requests_total",
			Help: "Requests to the egress proxy (HTTP requests, CONNECT tunnels, SOCKS5 connections), by outcome: allowed, denied, error."}, []string{"outcome"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cordon_egress_bytes_total",
			Help: "Bytes the egress proxy relayed for allowed connections, by direction (up: to the host reached)."}, []string{"direction"}),
	}
	reg.MustRegister(m.sessions, m.opened, m.calls, m.denials, m.latency, m.setup, m.egress, m.bytes)
	m.Handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	return m
}

// countEgress is the egress proxy's outcome hook.
func (m *metrics) countEgress(outcome string) { m.egress.WithLabelValues(outcome).Inc() }

// Emit implements events.Sink.
func (m *metrics) Emit(e *events.Event) {
	switch e.Kind {
	case events.SessionStart:
		m.sessions.Inc()
		m.opened.Inc()
		m.setup.Observe(float64(e.Timing["total_us"]) / 1e6)
	case events.SessionStop:
		m.sessions.Dec()
	case events.CallEnd:
		m.calls.WithLabelValues(e.Op).Inc()
		m.latency.WithLabelValues(e.Op).Observe(float64(e.Timing["total_us"]) / 1e6)
	case events.Deny, events.Limit:
		m.denials.WithLabelValues(string(e.Layer), string(e.Kind)).Inc()
	case events.NetConnect:
		for dir, key := range map[string]string{"up": "bytes_up", "down": "bytes_down"} {
			if n, ok := e.Detail[key].(int64); ok && n > 0 {
				m.bytes.WithLabelValues(dir).Add(float64(n))
			}
		}
	}
}
