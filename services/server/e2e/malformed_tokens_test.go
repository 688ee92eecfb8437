package e2e

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/cache/redistest"
	"github.com/keymint/keymint/services/store"
	"github.com/keymint/keymint/services/tokens"
)

// countingStore counts the calls of the store.Store it wraps: every method
// the interface had when this was written (one added since passes through
// uncounted until it is listed here).
type countingStore struct {
	store.Store
	s store.Store
	n atomic.Int64
}

func (c *countingStore) count() { c.n.Add(1) }

func (c *countingStore) EnsureOrg(ctx context.Context, name string) (store.Org, error) {
	c.count()
	return c.s.EnsureOrg(ctx, name)
}
func (c *countingStore) GetOrg(ctx context.Context, id string) (store.Org, error) {
	c.count()
	return c.s.GetOrg(ctx, id)
}
func (c *countingStore) CreateUser(ctx context.Context, u store.User) error {
	c.count()
	return c.s.CreateUser(ctx, u)
}
func (c *countingStore) GetUser(ctx context.Context, id string) (store.User, error) {
	c.count()
	return c.s.GetUser(ctx, id)
}
func (c *countingStore) GetUserByEmail(ctx context.Context, email string) (store.User, error) {
	c.count()
	return c.s.GetUserByEmail(ctx, email)
}
func (c *countingStore) UpdatePasswordHash(ctx context.Context, userID, hash string, events ...store.Event) error {
	c.count()
	return c.s.UpdatePasswordHash(ctx, userID, hash, events...)
}
func (c *countingStore) UpdateUserScopes(ctx context.Context, userID string, scopes []string) error {
	c.count()
	return c.s.UpdateUserScopes(ctx, userID, scopes)
}
func (c *countingStore) UpdateOrgPolicy(ctx context.Context, orgID string, p store.OrgPolicy) (store.Org, error) {
	c.count()
	return c.s.UpdateOrgPolicy(ctx, orgID, p)
}
func (c *countingStore) RotateToken(ctx context.Context, id string, next store.Token, grace time.Time, events ...store.Event) (store.Token, error) {
	c.count()
	return c.s.RotateToken(ctx, id, next, grace, events...)
}
func (c *countingStore) TakeTokenUses(ctx context.Context, id string, n int64) (int64, int64, error) {
	c.count()
	return c.s.TakeTokenUses(ctx, id, n)
}
func (c *countingStore) CreateToken(ctx context.Context, t store.Token, events ...store.Event) error {
	c.count()
	return c.s.CreateToken(ctx, t, events...)
}
func (c *countingStore) GetToken(ctx context.Context, id string) (store.Token, error) {
	c.count()
	return c.s.GetToken(ctx, id)
}
func (c *countingStore) GetTokenByDigest(ctx context.Context, d [][]byte) (store.Token, error) {
	c.count()
	return c.s.GetTokenByDigest(ctx, d)
}
func (c *countingStore) ListTokens(ctx context.Context, f store.TokenFilter) ([]store.Token, error) {
	c.count()
	return c.s.ListTokens(ctx, f)
}
func (c *countingStore) RevokeToken(ctx context.Context, id string, at time.Time, events ...store.Event) (store.Token, error) {
	c.count()
	return c.s.RevokeToken(ctx, id, at, events...)
}
func (c *countingStore) TouchTokens(ctx context.Context, m map[string]time.Time) error {
	c.count()
	return c.s.TouchTokens(ctx, m)
}
func (c *countingStore) CreateSession(ctx context.Context, s store.Session) error {
	c.count()
	return c.s.CreateSession(ctx, s)
}
func (c *countingStore) GetSessionByHash(ctx context.Context, h []byte) (store.Session, error) {
	c.count()
	return c.s.GetSessionByHash(ctx, h)
}
func (c *countingStore) TouchSession(ctx context.Context, id string, at time.Time) error {
	c.count()
	return c.s.TouchSession(ctx, id, at)
}
func (c *countingStore) DeleteSession(ctx context.Context, id string) error {
	c.count()
	return c.s.DeleteSession(ctx, id)
}
func (c *countingStore) DeleteUserSessions(ctx context.Context, userID, exceptID string) (int, error) {
	c.count()
	return c.s.DeleteUserSessions(ctx, userID, exceptID)
}
func (c *countingStore) DeleteExpiredSessions(ctx context.Context, a, b time.Time) (int, error) {
	c.count()
	return c.s.DeleteExpiredSessions(ctx, a, b)
}
func (c *countingStore) AppendAuditEvent(ctx context.Context, e store.AuditEvent) error {
	c.count()
	return c.s.AppendAuditEvent(ctx, e)
}
func (c *countingStore) ListAuditEvents(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error) {
	c.count()
	return c.s.ListAuditEvents(ctx, f)
}
func (c *countingStore) Ping(ctx context.Context) error {
	c.count()
	return c.s.Ping(ctx)
}
func (c *countingStore) Close() error { return c.s.Close() }

// redisDataCommands sums the commands a Redis has run, other than the
// connection's own upkeep (PING, INFO, SUBSCRIBE, CLIENT, HELLO...).
func redisDataCommands(t *testing.T, rdb *redis.Client) int64 {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		line := sc.Text()
		name, rest, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":")
		if !ok || !strings.HasPrefix(line, "cmdstat_") {
			continue
		}
		switch strings.SplitN(name, "|", 2)[0] {
		case "ping", "info", "subscribe", "psubscribe", "ssubscribe", "client", "hello", "command", "auth", "select":
			continue
		}
		calls, _, _ := strings.Cut(strings.TrimPrefix(rest, "calls="), ",")
		c, _ := strconv.ParseInt(calls, 10, 64)
		n += c
	}
	return n
}

// malformedTokens returns n tokens that fail the format check in every way:
// a wrong checksum (otherwise perfect), wrong prefixes, lengths and
// alphabets, empty and oversized ones.
func malformedTokens(t *testing.T, n int) []string {
	t.Helper()
	format, err := tokens.NewFormat("km")
	if err != nil {
		t.Fatal(err)
	}
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	out := make([]string, 0, n)
	for i := 0; len(out) < n; i++ {
		good, err := format.Generate()
		if err != nil {
			t.Fatal(err)
		}
		b := []byte(good)
		var s string
		switch i % 8 {
		case 0, 1, 2: // one character changed: the checksum no longer matches
			j := 3 + rand.IntN(len(b)-3)
			c := alphabet[rand.IntN(len(alphabet))]
			if c == b[j] {
				continue
			}
			b[j] = c
			s = string(b)
		case 3:
			s = "kn" + good[2:]
		case 4:
			s = good[:len(good)-1-rand.IntN(10)]
		case 5:
			s = good + string(alphabet[rand.IntN(len(alphabet))])
		case 6:
			b[3+rand.IntN(40)] = "-+/=_ .é"[rand.IntN(7)]
			s = string(b)
		case 7:
			s = []string{"", "km_", "Bearer " + good, strings.Repeat("A", 4096), fmt.Sprint(i)}[rand.IntN(5)]
		}
		if format.Check(s) == nil {
			continue
		}
		out = append(out, s)
	}
	return out
}

// 10,000 malformed tokens, over gRPC and REST: all refused as MALFORMED,
// with no store call and no Redis command.
func TestMalformedTokensTouchNothing(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	cfg := testConfig(t)
	cfg.Cache.RedisURL = rs.URL()
	counter := &countingStore{}
	cfg.storeHook = func(s store.Store) store.Store { counter.Store, counter.s = s, s; return counter }
	srv := startServer(t, cfg)
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	defer rdb.Close()
	bad := malformedTokens(t, 10_000)

	storeBefore, redisBefore := counter.n.Load(), redisDataCommands(t, rdb)
	var wg sync.WaitGroup
	var refused atomic.Int64
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < len(bad); i += 8 {
				if i%10 == 0 {
					v := validate(t, srv, bad[i])
					if v["valid"] != false || v["reason"] != "MALFORMED" {
						t.Errorf("REST validate(%q) = %v", bad[i], v)
						return
					}
				} else {
					r, err := srv.client.ValidateToken(context.Background(), &keymintv1.ValidateTokenRequest{Token: bad[i]})
					if err != nil || r.GetValid() || r.GetReason() != keymintv1.ValidateTokenResponse_MALFORMED {
						t.Errorf("gRPC validate(%q) = %v, %v", bad[i], r, err)
						return
					}
				}
				refused.Add(1)
			}
		})
	}
	wg.Wait()
	if refused.Load() != int64(len(bad)) {
		t.Fatalf("%d of %d malformed tokens refused", refused.Load(), len(bad))
	}
	if n := counter.n.Load() - storeBefore; n != 0 {
		t.Errorf("%d store calls for malformed tokens, want 0", n)
	}
	if n := redisDataCommands(t, rdb) - redisBefore; n != 0 {
		t.Errorf("%d Redis commands for malformed tokens, want 0", n)
	}
	// The counters do count: one well-formed unknown token reaches both.
	format, _ := tokens.NewFormat("km")
	unknown, _ := format.Generate()
	if v := validate(t, srv, unknown); v["reason"] != "NOT_FOUND" {
		t.Fatalf("unknown token: %v", v)
	}
	if counter.n.Load() == storeBefore || redisDataCommands(t, rdb) == redisBefore {
		t.Fatal("a well-formed unknown token reached neither the store nor Redis: the counters count nothing")
	}
}
