package hashworker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The protocol between keymint and its hashing worker: length-prefixed
// frames (a big-endian uint32, then the body) over the worker's stdin
// (requests) and stdout (answers), answered in any order, matched by id.
//
//	request: id u64 | time u32 | memory KiB u32 | threads u8 | key length u32 |
//	         salt length u8 | salt | password length u16 | password
//	answer:  id u64 | status u8 (statusOK, statusRefused) | key (statusOK only)

// Bounds of a request the worker computes; a request outside them is
// refused. They are accounts' bounds on a stored PHC string
// (services/accounts/password.go), so nothing keymint sends is refused.
const (
	maxTime      = 16
	maxMemoryKiB = 1 << 20
	maxThreads   = 16
	maxSaltLen   = 64
	minKeyLen    = 4 // argon2's own minimum
	maxKeyLen    = 64
	// MaxPasswordLen is the longest password a request carries.
	MaxPasswordLen = 1024
	// maxFrame is the longest frame body either side accepts: a longer
	// length prefix means the stream is not ours, and it is dropped.
	maxFrame = 8 + 4 + 4 + 1 + 4 + 1 + maxSaltLen + 2 + MaxPasswordLen
)

const (
	statusOK      = 0
	statusRefused = 1
)

// errFrame is a frame that does not parse: the stream cannot be trusted.
var errFrame = errors.New("hash worker protocol: malformed frame")

// Params are the argon2id parameters of one key derivation.
type Params struct {
	Time, MemoryKiB uint32
	Threads         uint8
	KeyLen          uint32
}

func (p Params) valid() bool {
	return p.Time >= 1 && p.Time <= maxTime && p.Threads >= 1 && p.Threads <= maxThreads &&
		p.MemoryKiB >= 8*uint32(p.Threads) && p.MemoryKiB <= maxMemoryKiB && p.KeyLen >= minKeyLen && p.KeyLen <= maxKeyLen
}

type request struct {
	id       uint64
	params   Params
	salt     []byte
	password []byte
}

type answer struct {
	id  uint64
	ok  bool
	key []byte
}

// appendRequest appends r's frame to b.
func appendRequest(b []byte, r request) ([]byte, error) {
	if len(r.salt) > maxSaltLen || len(r.password) > MaxPasswordLen {
		return b, fmt.Errorf("hash worker protocol: salt %d or password %d bytes over the bounds", len(r.salt), len(r.password))
	}
	n := 8 + 4 + 4 + 1 + 4 + 1 + len(r.salt) + 2 + len(r.password)
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	b = binary.BigEndian.AppendUint64(b, r.id)
	b = binary.BigEndian.AppendUint32(b, r.params.Time)
	b = binary.BigEndian.AppendUint32(b, r.params.MemoryKiB)
	b = append(b, r.params.Threads)
	b = binary.BigEndian.AppendUint32(b, r.params.KeyLen)
	b = append(b, byte(len(r.salt)))
	b = append(b, r.salt...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(r.password)))
	return append(b, r.password...), nil
}

// appendAnswer appends a's frame to b.
func appendAnswer(b []byte, a answer) []byte {
	n := 8 + 1
	status := byte(statusRefused)
	if a.ok {
		n += len(a.key)
		status = statusOK
	}
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	b = binary.BigEndian.AppendUint64(b, a.id)
	b = append(b, status)
	if a.ok {
		b = append(b, a.key...)
	}
	return b
}

// readFrame reads one frame body into buf, or a new buffer if buf is too
// small. io.EOF means the stream ended between frames.
func readFrame(r io.Reader, buf []byte) ([]byte, error) {
	var head [4]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(head[:])
	if n > maxFrame {
		return nil, errFrame
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, io.ErrUnexpectedEOF
	}
	return buf, nil
}

// parseRequest parses a request body; salt and password alias b.
func parseRequest(b []byte) (request, error) {
	var r request
	if len(b) < 8+4+4+1+4+1 {
		return r, errFrame
	}
	r.id = binary.BigEndian.Uint64(b)
	r.params.Time = binary.BigEndian.Uint32(b[8:])
	r.params.MemoryKiB = binary.BigEndian.Uint32(b[12:])
	r.params.Threads = b[16]
	r.params.KeyLen = binary.BigEndian.Uint32(b[17:])
	saltLen := int(b[21])
	b = b[22:]
	if len(b) < saltLen+2 {
		return r, errFrame
	}
	r.salt, b = b[:saltLen], b[saltLen:]
	pwLen := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if len(b) != pwLen {
		return r, errFrame
	}
	r.password = b
	return r, nil
}

// parseAnswer parses an answer body; key aliases b.
func parseAnswer(b []byte) (answer, error) {
	if len(b) < 9 {
		return answer{}, errFrame
	}
	a := answer{id: binary.BigEndian.Uint64(b)}
	switch b[8] {
	case statusOK:
		a.ok, a.key = true, b[9:]
	case statusRefused:
		if len(b) != 9 {
			return answer{}, errFrame
		}
	default:
		return answer{}, errFrame
	}
	return a, nil
}
