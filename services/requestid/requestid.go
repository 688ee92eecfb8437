// Package requestid is the id that ties one request's log lines together:
// the gateway's access log, the gRPC access log, and the x-request-id
// response header (REST) or header metadata (gRPC). A caller's own id is
// kept when it is safe to log and echo; otherwise a new one is made.
package requestid

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
)

// Key is the HTTP header and the gRPC metadata key (gRPC keys are lower
// case; HTTP headers match it in any case).
const Key = "x-request-id"

// MaxLen bounds an accepted id: long enough for a UUID or a trace id with
// a prefix, short enough that a log line stays a line.
const MaxLen = 64

// Valid reports whether s is an id keymint accepts from a caller: 1 to
// MaxLen characters of letters, digits and - _ . : (no spaces, quotes or
// control characters to forge log fields with).
func Valid(s string) bool {
	if len(s) == 0 || len(s) > MaxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.', c == ':':
		default:
			return false
		}
	}
	return true
}

// New returns a new id: 32 hex digits. Ids need to be unique, not secret,
// so they come from the runtime's fast generator, not crypto/rand (the
// validation path makes one per call).
func New() string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(b[8:], rand.Uint64())
	return hex.EncodeToString(b[:])
}

// Accept is s when Valid, else New().
func Accept(s string) string {
	if Valid(s) {
		return s
	}
	return New()
}

type key struct{}

// With returns ctx carrying id.
func With(ctx context.Context, id string) context.Context { return context.WithValue(ctx, key{}, id) }

// From is the id ctx carries, or "".
func From(ctx context.Context) string {
	id, _ := ctx.Value(key{}).(string)
	return id
}
