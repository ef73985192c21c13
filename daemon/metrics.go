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
	}
	reg.MustRegister(m.sessions, m.opened, m.calls, m.denials, m.latency, m.setup)
	m.Handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	return m
}

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
	}
}
