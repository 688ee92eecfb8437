package server

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/keymint/keymint/services/store"
	"github.com/keymint/keymint/services/tokens"
)

// newRegistry is the process's metric registry: Go runtime and process
// series, then whatever the wiring registers. No package registers into the
// global default registry.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// metricsHandler serves reg at /metrics.
func metricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

// latencyBuckets span a cached validation (tens of µs) to a slow store call.
var latencyBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

// rpcMetrics counts RPCs by method and code and times them by method. The
// label lookups happen once per method: the hot path does two atomic adds
// and a histogram observation.
type rpcMetrics struct {
	calls   *prometheus.CounterVec
	latency *prometheus.HistogramVec
	methods sync.Map // full method -> *methodMetrics
}

type methodMetrics struct {
	latency prometheus.Observer
	codes   [codes.Unauthenticated + 1]prometheus.Counter
}

func newRPCMetrics(reg prometheus.Registerer) *rpcMetrics {
	m := &rpcMetrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keymint_rpc_requests_total",
			Help: "gRPC calls (REST calls included: the gateway calls gRPC) by method and status code.",
		}, []string{"method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "keymint_rpc_duration_seconds",
			Help:    "gRPC call latency in the server, by method.",
			Buckets: latencyBuckets,
		}, []string{"method"}),
	}
	reg.MustRegister(m.calls, m.latency)
	return m
}

func (m *rpcMetrics) method(name string) *methodMetrics {
	if v, ok := m.methods.Load(name); ok {
		return v.(*methodMetrics)
	}
	mm := &methodMetrics{latency: m.latency.WithLabelValues(name)}
	for c := range mm.codes {
		mm.codes[c] = m.calls.WithLabelValues(name, codes.Code(c).String())
	}
	v, _ := m.methods.LoadOrStore(name, mm)
	return v.(*methodMetrics)
}

func (mm *methodMetrics) record(elapsed time.Duration, c codes.Code) {
	mm.latency.Observe(elapsed.Seconds())
	if int(c) >= len(mm.codes) {
		c = codes.Unknown
	}
	mm.codes[c].Inc()
}

// stream records one observation per stream. Unary calls are recorded
// by the chain's observe link (interceptors.go), with the access log.
func (m *rpcMetrics) stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		err := handler(srv, ss)
		m.method(info.FullMethod).record(time.Since(start), status.Code(err))
		return err
	}
}

// instrumentedStore times the store calls on the token paths. It embeds the
// store, so methods it does not time pass straight through.
type instrumentedStore struct {
	store.Store
	byDigest, byDigests, getToken, listTokens, revoke, touch, create, getUser prometheus.Observer
}

func instrumentStore(s store.Store, reg prometheus.Registerer) *instrumentedStore {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "keymint_store_query_seconds",
		Help:    "Store call latency by operation (errors included).",
		Buckets: latencyBuckets,
	}, []string{"op"})
	reg.MustRegister(h)
	return &instrumentedStore{
		Store:      s,
		byDigest:   h.WithLabelValues("get_token_by_digest"),
		byDigests:  h.WithLabelValues("tokens_by_digests"),
		getToken:   h.WithLabelValues("get_token"),
		listTokens: h.WithLabelValues("list_tokens"),
		revoke:     h.WithLabelValues("revoke_token"),
		touch:      h.WithLabelValues("touch_tokens"),
		create:     h.WithLabelValues("create_token"),
		getUser:    h.WithLabelValues("get_user"),
	}
}

func since(o prometheus.Observer, start time.Time) { o.Observe(time.Since(start).Seconds()) }

func (s *instrumentedStore) GetTokenByDigest(ctx context.Context, digests [][]byte) (store.Token, error) {
	defer since(s.byDigest, time.Now())
	return s.Store.GetTokenByDigest(ctx, digests)
}

// TokensByDigests is the bulk lookup: concurrent validation misses and
// leak reports.
func (s *instrumentedStore) TokensByDigests(ctx context.Context, digests [][]byte) ([]store.Token, error) {
	defer since(s.byDigests, time.Now())
	return s.Store.TokensByDigests(ctx, digests)
}

func (s *instrumentedStore) GetToken(ctx context.Context, id string) (store.Token, error) {
	defer since(s.getToken, time.Now())
	return s.Store.GetToken(ctx, id)
}

func (s *instrumentedStore) ListTokens(ctx context.Context, f store.TokenFilter) ([]store.Token, error) {
	defer since(s.listTokens, time.Now())
	return s.Store.ListTokens(ctx, f)
}

func (s *instrumentedStore) RevokeToken(ctx context.Context, id string, at time.Time, events ...store.Event) (store.Token, error) {
	defer since(s.revoke, time.Now())
	return s.Store.RevokeToken(ctx, id, at, events...)
}

func (s *instrumentedStore) TouchTokens(ctx context.Context, lastUsed map[string]time.Time) error {
	defer since(s.touch, time.Now())
	return s.Store.TouchTokens(ctx, lastUsed)
}

func (s *instrumentedStore) CreateToken(ctx context.Context, t store.Token, events ...store.Event) error {
	defer since(s.create, time.Now())
	return s.Store.CreateToken(ctx, t, events...)
}

func (s *instrumentedStore) GetUser(ctx context.Context, id string) (store.User, error) {
	defer since(s.getUser, time.Now())
	return s.Store.GetUser(ctx, id)
}

// registerRevocationMetrics exposes the revocation follower and publisher:
// an operator alerts on a publish queue that does not drain (Redis hung)
// and on drops (other replicas then learn of those revocations from the
// log's poll, within --revocation-poll, not from the push).
func registerRevocationMetrics(reg prometheus.Registerer, r *tokens.Revocations) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "keymint_revocation_publish_unsent",
			Help: "Revocations this replica made whose Redis side (tombstone, publish) has not been sent yet.",
		}, func() float64 { return float64(r.Unsent()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "keymint_revocation_publish_dropped_total",
			Help: "Revocations not published because the publish queue was full (other replicas read them from the log).",
		}, func() float64 { return float64(r.Dropped()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "keymint_revocation_log_applied_seq",
			Help: "The last revocation log sequence this replica applied (-1 before the first read); compare across replicas.",
		}, func() float64 { return float64(r.Applied()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "keymint_watch_streams",
			Help: "Open WatchRevocations streams on this replica.",
		}, func() float64 { return float64(r.Streams()) }),
	)
}
