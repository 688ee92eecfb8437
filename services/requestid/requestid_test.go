package requestid

import (
	"context"
	"strings"
	"testing"
)

func TestValid(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"":                                     false,
		"abc-123_X.y:z":                        true,
		"0f8fad5b-d9cb-469f-a165-70867728950e": true,
		strings.Repeat("a", MaxLen):            true,
		strings.Repeat("a", MaxLen+1):          false,
		"has space":                            false,
		`quote"`:                               false,
		"new\nline":                            false,
		"bearer/km_x":                          false,
		"ünï":                                  false,
	} {
		if got := Valid(s); got != want {
			t.Errorf("Valid(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestNewAndAccept(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 1000 {
		id := New()
		if len(id) != 32 || !Valid(id) || seen[id] {
			t.Fatalf("New() = %q: want 32 hex digits, valid, unique", id)
		}
		seen[id] = true
	}
	if got := Accept("mine-1"); got != "mine-1" {
		t.Errorf("Accept kept %q", got)
	}
	if got := Accept("not mine"); got == "not mine" || !Valid(got) {
		t.Errorf("Accept of an invalid id: %q", got)
	}
	ctx := With(context.Background(), "abc")
	if From(ctx) != "abc" || From(context.Background()) != "" {
		t.Error("context round trip")
	}
}

// TestWithAccepted: a valid caller id is kept, anything else gets a new
// id, distinct each time, and the context and the header value agree.
func TestWithAccepted(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, in := range []string{"", "not mine", strings.Repeat("a", MaxLen+1), "", ""} {
		ctx, value := WithAccepted(context.Background(), in)
		id := From(ctx)
		if len(value) != 1 || value[0] != id || len(id) != 32 || !Valid(id) || seen[id] {
			t.Fatalf("WithAccepted(%q): id %q, header %q: want one new 32-digit id in both", in, id, value)
		}
		seen[id] = true
	}
	ctx, value := WithAccepted(context.Background(), "mine-1")
	if From(ctx) != "mine-1" || len(value) != 1 || value[0] != "mine-1" {
		t.Errorf("a valid id answered as %q, header %q", From(ctx), value)
	}
}

// TestContext: an id survives contexts derived from its own, and the
// parent's values stay visible (allocations: allocs_test.go).
func TestContext(t *testing.T) {
	type other struct{}
	parent := context.WithValue(context.Background(), other{}, "v")
	ctx := With(parent, "abc")
	derived, cancel := context.WithCancel(context.WithValue(ctx, other{}, "w"))
	defer cancel()
	if From(derived) != "abc" || derived.Value(other{}) != "w" || ctx.Value(other{}) != "v" {
		t.Fatal("derived context lost the id or a value")
	}
	if From(With(ctx, "def")) != "def" {
		t.Fatal("the innermost id wins")
	}
	hctx, value := WithHeader(parent, "ghi")
	if From(hctx) != "ghi" || len(value) != 1 || value[0] != "ghi" || hctx.Value(other{}) != "v" {
		t.Fatal("WithHeader")
	}
}
