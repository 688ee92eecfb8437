package throttle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Progression: after Growth×Burst attempts in a row, a key's pace slows to
// one per Slowdown×Interval. With the default account limit, 5/20s, that is
// 5 guesses at once, then one every 20 s, and after 20 one every 5 minutes:
// the delay grows with the attack, and never becomes a lockout that an
// attacker could impose on an account's owner.
const (
	Growth   = 4
	Slowdown = 15
)

// Default limits on failed sign-ins.
var (
	DefaultAccountLimit = Limit{Burst: 5, Interval: 20 * time.Second}
	DefaultIPLimit      = Limit{Burst: 50, Interval: 2 * time.Second}
)

// tiers returns l and its slower, longer tier.
func tiers(l Limit) []Limit {
	if l.Burst <= 0 {
		return nil
	}
	return []Limit{l, {Burst: Growth * l.Burst, Interval: Slowdown * l.Interval}}
}

// SignInConfig configures SignIn.
type SignInConfig struct {
	Limiter Limiter
	// Account limits failed attempts per account (normalized email), known
	// or not; IP per client address (an IPv6 client's whole /64). Zero
	// Limits switch either off.
	Account, IP Limit
	// Registerer, when set, receives keymint_signin_throttled_total{scope}.
	Registerer prometheus.Registerer
}

// SignIn throttles password checks. Every attempt takes one event from each
// of its keys before the password is hashed, so a refused guess costs no
// argon2 and concurrent guesses all count; an attempt that turns out not to
// be a wrong password (a success, an overloaded hasher, a store failure)
// gives its events back.
type SignIn struct {
	lim       Limiter
	account   []Limit
	ip        []Limit
	throttled *prometheus.CounterVec
}

// NewSignIn returns a SignIn. A nil Limiter or two zero Limits throttle nothing.
func NewSignIn(cfg SignInConfig) (*SignIn, error) {
	s := &SignIn{lim: cfg.Limiter, account: tiers(cfg.Account), ip: tiers(cfg.IP)}
	s.throttled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "keymint_signin_throttled_total",
		Help: "Sign-in attempts refused by the throttle before any password hashing, by the limit that refused them.",
	}, []string{"scope"})
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(s.throttled); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Throttled is the error Begin returns for an attempt that must wait.
type Throttled struct {
	RetryAfter time.Duration
}

func (t *Throttled) Error() string {
	return "too many sign-in attempts; retry after " + t.RetryAfter.String()
}

// Attempt is an admitted sign-in attempt: the events it took.
type Attempt struct {
	s     *SignIn
	taken []taken
}

type taken struct {
	key string
	lim Limit
}

// key is a limiter key for one tier of one scope.
func key(scope string, tier int, id string) string {
	return scope + string(rune('0'+tier)) + ":" + id
}

// AccountKey is an account's key: a digest of the normalized email, so
// neither Redis nor a memory dump holds the address, and every spelling of
// one address (the caller normalizes) counts against one key.
func AccountKey(normalizedEmail string) string {
	h := sha256.Sum256([]byte("keymint-signin\x00" + normalizedEmail))
	return hex.EncodeToString(h[:16])
}

// IPKey is a client address's key: the address for IPv4, the /64 for IPv6
// (one subscriber usually holds a whole /64). "" for an unknown address.
func IPKey(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// Begin admits an attempt on the account (a normalized email, known or not:
// an unknown one is throttled the same, so the answer tells nothing) from ip
// (the zero Addr skips the address limit), or returns a *Throttled. Any other
// error comes from ctx.
func (s *SignIn) Begin(ctx context.Context, normalizedEmail string, ip netip.Addr) (*Attempt, error) {
	a := &Attempt{s: s}
	if s == nil || s.lim == nil {
		return a, nil
	}
	try := func(scope string, limits []Limit, id string) error {
		for i, l := range limits {
			k := key(scope, i, id)
			ok, retry, err := s.lim.Take(ctx, k, l)
			if err != nil {
				return err
			}
			if !ok {
				s.throttled.WithLabelValues(scopeName[scope]).Inc()
				// Whole seconds, as Retry-After says it: finer would only
				// tell callers about the limiter's state.
				return &Throttled{RetryAfter: max(retry.Round(time.Second), time.Second)}
			}
			a.taken = append(a.taken, taken{k, l})
		}
		return nil
	}
	var err error
	if id := IPKey(ip); id != "" {
		err = try("i", s.ip, id)
	}
	if err == nil {
		err = try("a", s.account, AccountKey(normalizedEmail))
	}
	if err != nil {
		a.Refund(ctx)
		return nil, err
	}
	return a, nil
}

var scopeName = map[string]string{"i": "ip", "a": "account"}

// Refund gives back what the attempt took: it was no wrong guess. Call it at
// most once.
func (a *Attempt) Refund(ctx context.Context) {
	if a == nil || a.s == nil || a.s.lim == nil {
		return
	}
	for _, t := range a.taken {
		// A failed give-back only leaves the key a little stricter.
		_ = a.s.lim.Give(ctx, t.key, t.lim)
	}
	a.taken = nil
}
