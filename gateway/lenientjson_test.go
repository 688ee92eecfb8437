package gateway

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

func TestEscapeRawControls(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"valid unchanged", `{"a":"b\nc","d":[1,2]}`, `{"a":"b\nc","d":[1,2]}`},
		{"raw newline in string", "{\"a\":\"b\nc\"}", `{"a":"b\nc"}`},
		{"raw crlf and tab in string", "{\"a\":\"b\r\n\tc\"}", `{"a":"b\r\n\tc"}`},
		{"whitespace outside strings kept", "{\n\t\"a\" :\r\n \"b\"\n}", "{\n\t\"a\" :\r\n \"b\"\n}"},
		{"escaped quote keeps string open", "{\"a\":\"x\\\"\ny\"}", `{"a":"x\"\ny"}`},
		{"escaped backslash closes normally", "{\"a\":\"x\\\\\"\n}", "{\"a\":\"x\\\\\"\n}"},
		{"raw newline after backslash left alone", "{\"a\":\"x\\\ny\"}", "{\"a\":\"x\\\ny\"}"},
		{"key with raw tab", "{\"a\tb\":1}", `{"a\tb":1}`},
		{"other control bytes left alone", "{\"a\":\"\x01\"}", "{\"a\":\"\x01\"}"},
		{"unterminated string", "\"abc\n", `"abc\n`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := string(escapeRawControls([]byte(tt.in))); got != tt.want {
				t.Errorf("escapeRawControls(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestEscapeRawControlsSeedBody(t *testing.T) {
	t.Parallel()
	var v struct {
		DisplayData struct{ Name, Description string }
	}
	if err := json.Unmarshal(escapeRawControls([]byte(seedCreateBody)), &v); err != nil {
		t.Fatalf("seed body does not decode: %v", err)
	}
	if want := "API Token used by the bot \nto create Data Sources"; v.DisplayData.Description != want {
		t.Errorf("description = %q, want %q", v.DisplayData.Description, want)
	}
}

func TestEscapeRawControlsStillRefusesBadJSON(t *testing.T) {
	t.Parallel()
	for _, in := range []string{`{"a":`, `{"a":'b'}`, "{\"a\":\"x\\\ny\"}", `{"a":"b"}}`, "{\"a\":\"\x01\"}"} {
		if json.Valid(escapeRawControls([]byte(in))) {
			t.Errorf("escapeRawControls(%q) made it valid JSON", in)
		}
	}
}

// FuzzLenientJSON checks escapeRawControls: it never panics, leaves valid
// JSON byte-for-byte unchanged, is idempotent, and turns a string literal
// written with raw newlines, returns and tabs back into the same string.
func FuzzLenientJSON(f *testing.F) {
	f.Add([]byte(seedCreateBody))
	f.Add([]byte(`{"a":"b\"c\\"}`))
	f.Add([]byte("\"\\\n\""))
	f.Fuzz(func(t *testing.T, in []byte) {
		out := escapeRawControls(in)
		if json.Valid(in) && !bytes.Equal(out, in) {
			t.Fatalf("valid JSON changed: %q -> %q", in, out)
		}
		if again := escapeRawControls(out); !bytes.Equal(again, out) {
			t.Fatalf("not idempotent: %q -> %q -> %q", in, out, again)
		}
		if len(out) < len(in) {
			t.Fatalf("output shorter than input: %q -> %q", in, out)
		}

		s := string(in)
		if !utf8.ValidString(s) {
			return
		}
		lit := rawLiteral(t, s)
		var got string
		if err := json.Unmarshal(escapeRawControls(lit), &got); err != nil {
			t.Fatalf("literal %q of %q does not decode after escaping: %v", lit, s, err)
		}
		if got != s {
			t.Fatalf("round trip of %q gave %q", s, got)
		}
	})
}

// rawLiteral is s as a JSON string literal, but with newlines, returns and
// tabs written raw, the way a hand-typed curl body carries them.
func rawLiteral(t *testing.T, s string) []byte {
	t.Helper()
	enc, err := json.Marshal(s)
	if err != nil {
		t.Fatalf("marshal %q: %v", s, err)
	}
	out := make([]byte, 0, len(enc))
	for i := 0; i < len(enc); i++ {
		if enc[i] != '\\' {
			out = append(out, enc[i])
			continue
		}
		i++
		switch enc[i] {
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		default:
			out = append(out, '\\', enc[i])
		}
	}
	return out
}
