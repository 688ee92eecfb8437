package store

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"
)

// hungStore answers nothing until the caller's context ends, like a server
// that stopped mid-call.
type hungStore struct{}

func hang[T any](ctx context.Context) (T, error) {
	<-ctx.Done()
	var zero T
	return zero, ctx.Err()
}

func hangErr(ctx context.Context) error { _, err := hang[struct{}](ctx); return err }

func (hungStore) EnsureOrg(ctx context.Context, _ string) (Org, error) { return hang[Org](ctx) }
func (hungStore) GetOrg(ctx context.Context, _ string) (Org, error)    { return hang[Org](ctx) }
func (hungStore) CreateUser(ctx context.Context, _ User) error         { return hangErr(ctx) }
func (hungStore) GetUser(ctx context.Context, _ string) (User, error)  { return hang[User](ctx) }
func (hungStore) GetUserByEmail(ctx context.Context, _ string) (User, error) {
	return hang[User](ctx)
}
func (hungStore) UpdatePasswordHash(ctx context.Context, _, _ string, _ ...Event) error {
	return hangErr(ctx)
}
func (hungStore) CreateToken(ctx context.Context, _ Token, _ ...Event) error { return hangErr(ctx) }
func (hungStore) GetToken(ctx context.Context, _ string) (Token, error)      { return hang[Token](ctx) }
func (hungStore) GetTokenByDigest(ctx context.Context, _ [][]byte) (Token, error) {
	return hang[Token](ctx)
}
func (hungStore) ListTokens(ctx context.Context, _ TokenFilter) ([]Token, error) {
	return hang[[]Token](ctx)
}
func (hungStore) RevokeToken(ctx context.Context, _ string, _ time.Time, _ ...Event) (Token, error) {
	return hang[Token](ctx)
}
func (hungStore) RevocationLogBounds(ctx context.Context) (int64, int64, error) {
	_, err := hang[int64](ctx)
	return 0, 0, err
}
func (hungStore) ListRevocations(ctx context.Context, _ int64, _ int) ([]RevocationRecord, error) {
	return hang[[]RevocationRecord](ctx)
}
func (hungStore) PruneRevocations(ctx context.Context, _ time.Time) (int, error) {
	return hang[int](ctx)
}
func (hungStore) TouchTokens(ctx context.Context, _ map[string]time.Time) error { return hangErr(ctx) }
func (hungStore) CreateSession(ctx context.Context, _ Session) error            { return hangErr(ctx) }
func (hungStore) GetSessionByHash(ctx context.Context, _ []byte) (Session, error) {
	return hang[Session](ctx)
}
func (hungStore) TouchSession(ctx context.Context, _ string, _ time.Time) error { return hangErr(ctx) }
func (hungStore) DeleteSession(ctx context.Context, _ string) error             { return hangErr(ctx) }
func (hungStore) DeleteUserSessions(ctx context.Context, _, _ string) (int, error) {
	return hang[int](ctx)
}
func (hungStore) DeleteExpiredSessions(ctx context.Context, _, _ time.Time) (int, error) {
	return hang[int](ctx)
}
func (hungStore) AppendAuditEvent(ctx context.Context, _ AuditEvent) error { return hangErr(ctx) }
func (hungStore) ListAuditEvents(ctx context.Context, _ AuditFilter) ([]AuditEvent, error) {
	return hang[[]AuditEvent](ctx)
}
func (hungStore) UpdateUserScopes(ctx context.Context, _ string, _ []string) error {
	return hangErr(ctx)
}
func (hungStore) UpdateOrgPolicy(ctx context.Context, _ string, _ OrgPolicy) (Org, error) {
	return hang[Org](ctx)
}
func (hungStore) RotateToken(ctx context.Context, _ string, _ Token, _ time.Time, _ ...Event) (Token, error) {
	return hang[Token](ctx)
}
func (hungStore) TakeTokenUses(ctx context.Context, _ string, _ int64) (int64, int64, error) {
	return 0, 0, hangErr(ctx)
}
func (hungStore) TokensByDigests(ctx context.Context, _ [][]byte) ([]Token, error) {
	return hang[[]Token](ctx)
}
func (hungStore) RecordLeakReports(ctx context.Context, _ []LeakReport) error { return hangErr(ctx) }
func (hungStore) PendingLeakReports(ctx context.Context, _ int) ([]LeakReport, error) {
	return hang[[]LeakReport](ctx)
}
func (hungStore) MarkLeakReportsProcessed(ctx context.Context, _ []string, _ time.Time) error {
	return hangErr(ctx)
}
func (hungStore) CreateWebhookEndpoint(ctx context.Context, _ WebhookEndpoint, _ int) error {
	return hangErr(ctx)
}
func (hungStore) GetWebhookEndpoint(ctx context.Context, _, _ string) (WebhookEndpoint, error) {
	return hang[WebhookEndpoint](ctx)
}
func (hungStore) ListWebhookEndpoints(ctx context.Context, _ string) ([]WebhookEndpoint, error) {
	return hang[[]WebhookEndpoint](ctx)
}
func (hungStore) DeleteWebhookEndpoint(ctx context.Context, _, _ string) error { return hangErr(ctx) }
func (hungStore) DisableWebhookEndpoint(ctx context.Context, _ string, _ time.Time, _ ...Event) (bool, error) {
	return hang[bool](ctx)
}
func (hungStore) AppendEvents(ctx context.Context, _ ...Event) error { return hangErr(ctx) }
func (hungStore) ClaimWebhookDeliveries(ctx context.Context, _ string, _ time.Time, _ time.Duration, _ int) ([]ClaimedDelivery, error) {
	return hang[[]ClaimedDelivery](ctx)
}
func (hungStore) FinishWebhookDelivery(ctx context.Context, _ string, _ DeliveryAttempt) (time.Time, error) {
	return hang[time.Time](ctx)
}
func (hungStore) ListWebhookDeliveries(ctx context.Context, _ DeliveryFilter) ([]WebhookDelivery, error) {
	return hang[[]WebhookDelivery](ctx)
}
func (hungStore) ReplayWebhookDelivery(ctx context.Context, _ string, _ int64, _ time.Time) (WebhookDelivery, error) {
	return hang[WebhookDelivery](ctx)
}
func (hungStore) PruneWebhookOutbox(ctx context.Context, _ time.Time) (int, error) {
	return hang[int](ctx)
}
func (hungStore) OrgExpiryWindows(ctx context.Context) ([]time.Duration, error) {
	return hang[[]time.Duration](ctx)
}
func (hungStore) ExpiringTokens(ctx context.Context, _ ExpiryQuery) ([]Token, error) {
	return hang[[]Token](ctx)
}
func (hungStore) RecordTokenNotice(ctx context.Context, _, _ string, _ time.Time, _ ...Event) (bool, error) {
	return hang[bool](ctx)
}
func (hungStore) Ping(ctx context.Context) error { return hangErr(ctx) }
func (hungStore) Close() error                   { return nil }

// Every method of the Store interface, called with a context that never
// ends, returns DeadlineExceeded once the timeout passes.
func TestWithTimeoutBoundsEveryCall(t *testing.T) {
	t.Parallel()
	s := WithTimeout(hungStore{}, 10*time.Millisecond)
	v := reflect.ValueOf(s)
	typ := reflect.TypeFor[Store]()
	ctxType := reflect.TypeFor[context.Context]()
	for i := range typ.NumMethod() {
		m := typ.Method(i)
		if m.Name == "Close" {
			continue
		}
		t.Run(m.Name, func(t *testing.T) {
			t.Parallel()
			fn := v.MethodByName(m.Name)
			args := make([]reflect.Value, fn.Type().NumIn())
			for j := range args {
				args[j] = reflect.Zero(fn.Type().In(j))
			}
			if fn.Type().NumIn() == 0 || fn.Type().In(0) != ctxType {
				t.Fatalf("%s takes no context first", m.Name)
			}
			args[0] = reflect.ValueOf(context.Background())
			done := make(chan error, 1)
			go func() {
				call := fn.Call
				if fn.Type().IsVariadic() {
					call = fn.CallSlice // the zero slice is the variadic argument itself
				}
				out := call(args)
				err, _ := out[len(out)-1].Interface().(error)
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("%s = %v, want DeadlineExceeded", m.Name, err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("%s did not return: not bounded", m.Name)
			}
		})
	}
}
