package secretscan

import (
	"context"
	"log/slog"
	"time"

	"github.com/keymint/keymint/services/store"
)

// Processor limits.
const (
	// processBatch is how many recorded reports one pass reads at a time.
	processBatch = 500
	// DefaultProcessInterval is how often pending reports are looked for
	// without a Kick (a report recorded by another replica, or one whose
	// revocation failed).
	DefaultProcessInterval = 30 * time.Second
)

// Revoker revokes what one recorded report names (tokens.Service).
type Revoker interface {
	RevokeReported(ctx context.Context, r store.LeakReport) error
}

// ProcessorConfig configures a Processor.
type ProcessorConfig struct {
	Store   store.LeakReports
	Revoker Revoker
	// Interval between passes without a Kick; 0 means DefaultProcessInterval.
	Interval time.Duration
	Logger   *slog.Logger
	// BeforePass, when set (tests only), runs before each pass; the pass is
	// skipped when it returns false.
	BeforePass func(ctx context.Context) bool
}

// Processor revokes the tokens recorded leak reports name, then marks the
// reports processed. It runs a pass at start, so reports recorded before a
// crash are processed on restart, then on every Kick and every Interval.
// Replicas may process the same report at once: revoking is idempotent,
// so the cost is a repeated audit event at worst.
type Processor struct {
	cfg  ProcessorConfig
	log  *slog.Logger
	kick chan struct{}
}

// NewProcessor returns a processor over cfg; Run runs it.
func NewProcessor(cfg ProcessorConfig) *Processor {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultProcessInterval
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// One pending kick is enough: a pass reads everything pending.
	return &Processor{cfg: cfg, log: log, kick: make(chan struct{}, 1)}
}

// Kick asks for a pass soon; it never blocks.
func (p *Processor) Kick() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Run processes until ctx ends.
func (p *Processor) Run(ctx context.Context) {
	t := time.NewTicker(p.cfg.Interval)
	defer t.Stop()
	for {
		if p.cfg.BeforePass == nil || p.cfg.BeforePass(ctx) {
			if _, err := p.Pass(ctx); err != nil && ctx.Err() == nil {
				p.log.WarnContext(ctx, "leak reports not processed yet; retrying", "err", err.Error())
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-p.kick:
		case <-t.C:
		}
	}
}

// Pass processes every pending report and returns how many it processed.
// A failed revocation stops the pass: that report and the ones after it
// stay pending for the next.
func (p *Processor) Pass(ctx context.Context) (int, error) {
	n := 0
	for {
		pending, err := p.cfg.Store.PendingLeakReports(ctx, processBatch)
		if err != nil || len(pending) == 0 {
			return n, err
		}
		done := make([]string, 0, len(pending))
		var failed error
		for _, r := range pending {
			if err := p.cfg.Revoker.RevokeReported(ctx, r); err != nil {
				failed = err
				break
			}
			done = append(done, r.ID)
		}
		if err := p.cfg.Store.MarkLeakReportsProcessed(ctx, done, time.Now()); err != nil {
			return n, err
		}
		n += len(done)
		if failed != nil {
			return n, failed
		}
	}
}
