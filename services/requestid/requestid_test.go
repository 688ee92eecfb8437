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
