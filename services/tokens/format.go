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
	if len(s) != f.Len() || s[:len(f.prefix)] != f.prefix || s[len(f.prefix)] != '_' {
		return ErrMalformed
	}
	body := s[len(f.prefix)+1:]
	for i := 0; i < len(body); i++ {
		if base62Value(body[i]) < 0 {
			return ErrMalformed
		}
	}
	var sum uint64
	for i := len(body) - checksumLen; i < len(body); i++ {
		sum = sum*62 + uint64(base62Value(body[i]))
	}
	// A view of the string, not a copy: Check allocates nothing, and crc32
	// only reads its input.
	head := s[:len(s)-checksumLen]
	if sum > 0xFFFFFFFF || uint32(sum) != crc32.ChecksumIEEE(unsafe.Slice(unsafe.StringData(head), len(head))) {
		return ErrMalformed
	}
	return nil
}

// Hint returns the display hint of a well-formed token: prefix, underscore
// and the first random characters.
func (f Format) Hint(s string) string {
	return s[:len(f.prefix)+1+hintLen]
}

func base62Value(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'A' && c <= 'Z':
		return int(c-'A') + 10
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 36
	}
	return -1
}
