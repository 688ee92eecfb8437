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
	"unsafe"
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
	var out [newLen]byte // on the stack: the string is the one allocation
	fill(&out)
	return string(out[:])
}

// newLen is the length of a new id.
const newLen = 32

// fill writes a new id's hex digits to out.
func fill(out *[newLen]byte) {
	var b [newLen / 2]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(b[8:], rand.Uint64())
	hex.Encode(out[:], b[:])
}

// Accept is s when Valid, else New().
func Accept(s string) string {
	if Valid(s) {
		return s
	}
	return New()
}

type key struct{}

// idContext is a context carrying an id. Its Value answers key{} with the
// context itself, a pointer: With costs one allocation where
// context.WithValue costs two (the node and the string boxed in an any),
// and From boxes nothing. The validation hot path makes one per call.
type idContext struct {
	context.Context
	id string
}

func (c *idContext) Value(k any) any {
	if k == (key{}) {
		return c
	}
	return c.Context.Value(k)
}

// With returns ctx carrying id.
func With(ctx context.Context, id string) context.Context { return &idContext{Context: ctx, id: id} }

// WithHeader is With, and id as an HTTP header value ([]string{id}), from
// one allocation: the REST gateway needs both for every call. The slice is
// the caller's to put in a header map, never to write to.
func WithHeader(ctx context.Context, id string) (context.Context, []string) {
	c := &headerContext{idContext: idContext{Context: ctx, id: id}}
	c.value[0] = id
	return &c.idContext, c.value[:]
}

type headerContext struct {
	idContext
	value [1]string
}

// WithAccepted is WithHeader(ctx, Accept(s)): s when Valid, else a new id
// whose digits are part of the same allocation (every gRPC call and REST
// request makes one, and New's string was a second allocation).
func WithAccepted(ctx context.Context, s string) (context.Context, []string) {
	if Valid(s) {
		return WithHeader(ctx, s)
	}
	c := &newContext{}
	fill(&c.digits)
	// The digits are never written again: the string may share them.
	id := unsafe.String(&c.digits[0], newLen)
	c.idContext = idContext{Context: ctx, id: id}
	c.value[0] = id
	return &c.idContext, c.value[:]
}

type newContext struct {
	headerContext
	digits [newLen]byte
}

// From is the id ctx carries, or "".
func From(ctx context.Context) string {
	if c, ok := ctx.Value(key{}).(*idContext); ok {
		return c.id
	}
	return ""
}
