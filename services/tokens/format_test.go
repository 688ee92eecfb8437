package tokens

import (
	"hash/crc32"
	"math/big"
	"strings"
	"testing"
)

func mustFormat(t testing.TB, prefix string) Format {
	t.Helper()
	f, err := NewFormat(prefix)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestGenerateIsWellFormedAndUnique(t *testing.T) {
	t.Parallel()
	f := mustFormat(t, "km")
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		tok, err := f.Generate()
		if err != nil {
			t.Fatal(err)
		}
		if len(tok) != f.Len() || !strings.HasPrefix(tok, "km_") {
			t.Fatalf("token %d has length %d / wrong prefix", i, len(tok))
		}
		if err := f.Check(tok); err != nil {
			t.Fatalf("generated token fails Check: %v", err)
		}
		if seen[tok] {
			t.Fatal("duplicate token")
		}
		seen[tok] = true
		if h := f.Hint(tok); h != tok[:3+hintLen] {
			t.Fatalf("hint %q", h)
		}
	}
}

func TestFixedVectors(t *testing.T) {
	t.Parallel()
	f := mustFormat(t, "km")
	var zero, ones [randomBytes]byte
	for i := range ones {
		ones[i] = 0xff
	}
	z := f.fromRandom(zero)
	if z[:3+randomLen] != "km_"+strings.Repeat("0", randomLen) {
		t.Fatalf("zero bytes encode as %q", z)
	}
	o := f.fromRandom(ones)
	if o[3] == '0' || f.Check(o) != nil || f.Check(z) != nil {
		t.Fatalf("max value %q does not round-trip", o)
	}
	// The largest checksum, 0xFFFFFFFF ("4gfFC3"): this body's CRC32 is
	// exactly that (found offline by meeting in the middle over its last six
	// characters). Shown failing on checksumOK's `sum <= 0xFFFFFFFF` → `<`,
	// a gremlins survivor; "4gfFC4" is one past it.
	const maxSum = "km_0000000000000000000000000000000000000bSz2kb4gfFC3"
	if f.Check(maxSum) != nil || f.Check(maxSum[:len(maxSum)-1]+"4") == nil {
		t.Fatalf("the checksum 0xFFFFFFFF refused, or 0x100000000 accepted")
	}
	// A checksum with a '0' digit (digit value 0) is well formed: shown
	// failing on checksumOK's `v < 0` → `v <= 0`, which refused about one
	// token in eleven (the first such value of b[0] is found the same way
	// every run).
	for i := 0; ; i++ {
		var b [randomBytes]byte
		b[0] = byte(i)
		tok := f.fromRandom(b)
		if i == 256 {
			t.Fatal("no checksum with a 0 digit among 256 values of b[0]")
		}
		if !strings.Contains(tok[len(tok)-checksumLen:], "0") {
			continue
		}
		if f.Check(tok) != nil || !f.checksumOK(tok) {
			t.Fatalf("%q, whose checksum has a 0 digit, refused", tok)
		}
		break
	}
}

func TestCheckRefuses(t *testing.T) {
	t.Parallel()
	f := mustFormat(t, "km")
	good, _ := f.Generate()
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'a' {
			b[i] = 'b'
		} else {
			b[i] = 'a'
		}
		return string(b)
	}
	other := mustFormat(t, "kx")
	otherTok, _ := other.Generate()
	// A character outside the alphabet under a checksum that matches: only
	// Check's alphabet scan refuses it (shown failing on that loop's `i <
	// len(body)` negated, a gremlins survivor).
	head := good[:10] + "!" + good[11:len(good)-checksumLen]
	crcOK := string(appendBase62([]byte(head), new(big.Int).SetUint64(uint64(crc32.ChecksumIEEE([]byte(head)))), checksumLen))
	cases := map[string]string{
		"bad alphabet, checksum matching": crcOK,
		"empty":                           "",
		"short":                           good[:len(good)-1],
		"long":                            good + "0",
		"wrong prefix":                    otherTok,
		"no underscore":                   "km-" + good[3:],
		"bad alphabet":                    good[:10] + "!" + good[11:],
		"checksum flipped":                flip(good, len(good)-1),
		"body flipped":                    flip(good, 10),
		"unicode":                         good[:10] + "é" + good[12:],
		"spaces":                          " " + good[1:],
		"checksum overflows":              good[:len(good)-checksumLen] + "zzzzzz",
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			if f.Check(tok) == nil {
				t.Fatalf("Check accepted %q", tok)
			}
		})
	}
}

func TestNewFormatRejectsBadPrefixes(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"", "KM", "1km", "k_m", "abcdefghijklmnopq", "k m"} {
		if _, err := NewFormat(p); err == nil {
			t.Errorf("prefix %q accepted", p)
		}
	}
	for _, p := range []string{"k", "km", "acme2", "abcdefghijklmnop"} {
		if _, err := NewFormat(p); err != nil {
			t.Errorf("prefix %q refused: %v", p, err)
		}
	}
}

// FuzzCheck: Check never panics, and accepts only strings that have the
// format's length, prefix, alphabet and a matching checksum; checksumOK
// (validation's check before the HMAC) accepts whatever Check accepts.
func FuzzCheck(f *testing.F) {
	fm := mustFormat(f, "km")
	good, _ := fm.Generate()
	f.Add(good)
	f.Add("")
	f.Add("km_")
	f.Add(good[:len(good)-1] + "0")
	f.Fuzz(func(t *testing.T, s string) {
		if fm.Check(s) != nil {
			return
		}
		if !fm.checksumOK(s) {
			t.Fatalf("checksumOK refused %q, which Check accepts", s)
		}
		if len(s) != fm.Len() || !strings.HasPrefix(s, "km_") {
			t.Fatalf("accepted %q of wrong shape", s)
		}
		for _, c := range s[3:] {
			if !strings.ContainsRune(alphabet, c) {
				t.Fatalf("accepted %q with %q outside the alphabet", s, c)
			}
		}
		// Any accepted body must round-trip through the generator's checksum.
		if fm.Check(s[:len(s)-1]+string(alphabet[(strings.IndexByte(alphabet, s[len(s)-1])+1)%62])) == nil {
			t.Fatalf("two checksums accepted for one body: %q", s)
		}
	})
}

func BenchmarkCheck(b *testing.B) {
	f := mustFormat(b, "km")
	tok, _ := f.Generate()
	b.ReportAllocs()
	for b.Loop() {
		if f.Check(tok) != nil {
			b.Fatal("refused")
		}
	}
}
