package tokens

import (
	"crypto/rand"
	"errors"
	"fmt"
	"hash/crc32"
	"math/big"
	"unsafe"
)

// A token is <prefix>_<random><checksum>: 32 random bytes as 43 base62
// characters, then the CRC32 of everything before the checksum as 6 base62
// characters (GitHub's scheme). The checksum lets a validator drop typos and
// garbage without a lookup, and lets secret scanners recognise leaked tokens.
const (
	randomBytes = 32
	randomLen   = 43 // ceil(256 / log2(62))
	checksumLen = 6  // ceil(32 / log2(62))
	hintLen     = 6  // random characters kept for display (about 36 of 256 bits)
	alphabet    = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

// ErrMalformed means a string cannot be a token of this format.
var ErrMalformed = errors.New("malformed token")

// Format generates and parses tokens with one prefix.
type Format struct {
	prefix string // without the underscore
}

// NewFormat returns the format for prefix: 1 to 16 characters, a lower-case
// letter first, then lower-case letters and digits.
func NewFormat(prefix string) (Format, error) {
	if len(prefix) == 0 || len(prefix) > 16 {
		return Format{}, fmt.Errorf("token prefix %q: must be 1 to 16 characters", prefix)
	}
	for i := 0; i < len(prefix); i++ {
		c := prefix[i]
		if !(c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return Format{}, fmt.Errorf("token prefix %q: use a lower-case letter then lower-case letters or digits", prefix)
		}
	}
	return Format{prefix: prefix}, nil
}

// Prefix returns the prefix, without the underscore.
func (f Format) Prefix() string { return f.prefix }

// Len is the length of every token of this format.
func (f Format) Len() int { return len(f.prefix) + 1 + randomLen + checksumLen }

// Generate returns a new token from crypto/rand.
func (f Format) Generate() (string, error) {
	var b [randomBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate token: %w", err)
	}
	return f.fromRandom(b), nil
}

func (f Format) fromRandom(b [randomBytes]byte) string {
	out := make([]byte, 0, f.Len())
	out = append(out, f.prefix...)
	out = append(out, '_')
	out = appendBase62(out, new(big.Int).SetBytes(b[:]), randomLen)
	sum := crc32.ChecksumIEEE(out)
	out = appendBase62(out, new(big.Int).SetUint64(uint64(sum)), checksumLen)
	return string(out)
}

// appendBase62 appends n as exactly width base62 digits, zero-padded.
func appendBase62(dst []byte, n *big.Int, width int) []byte {
	digits := make([]byte, width)
	base := big.NewInt(62)
	mod := new(big.Int)
	for i := width - 1; i >= 0; i-- {
		n.DivMod(n, base, mod)
		digits[i] = alphabet[mod.Int64()]
	}
	return append(dst, digits...)
}

// Check reports whether s is well formed: prefix, length, alphabet and
// checksum. It allocates nothing and touches no store: it runs first on the
// validation hot path.
func (f Format) Check(s string) error {
	if !f.checksumOK(s) {
		return ErrMalformed
	}
	body := s[len(f.prefix)+1:]
	for i := 0; i < len(body); i++ {
		if base62Values[body[i]] < 0 {
			return ErrMalformed
		}
	}
	return nil
}

// checksumOK reports whether s has the format's length and prefix and a
// checksum that matches: the part of Check that catches typos and garbage,
// without the alphabet scan of the random part. Validation runs it before
// the HMAC, so a malformed token costs no hash (whatever passes it and not
// Check is caught by Check before any store lookup).
func (f Format) checksumOK(s string) bool {
	if len(s) != f.Len() || s[:len(f.prefix)] != f.prefix || s[len(f.prefix)] != '_' {
		return false
	}
	var sum uint64
	for i := len(s) - checksumLen; i < len(s); i++ {
		v := base62Values[s[i]]
		if v < 0 {
			return false
		}
		sum = sum*62 + uint64(v)
	}
	// A view of the string, not a copy: no allocation, and crc32 only
	// reads its input.
	head := s[:len(s)-checksumLen]
	return sum <= 0xFFFFFFFF && uint32(sum) == crc32.ChecksumIEEE(unsafe.Slice(unsafe.StringData(head), len(head)))
}

// Hint returns the display hint of a well-formed token: prefix, underscore
// and the first random characters.
func (f Format) Hint(s string) string {
	return s[:len(f.prefix)+1+hintLen]
}

// base62Values maps a byte to its base62 digit, or -1: one lookup a
// character where a range switch cost Check most of its instructions.
var base62Values = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = int8(i)
	}
	return t
}()
