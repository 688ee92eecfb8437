package gateway

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/maphash"
	"net/http"
	"strconv"
	"sync"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/recent"
)

// ValidateFunc answers ValidateToken in process. keymint serve passes its
// gRPC handler wrapped in the server's own interceptor chain, so a REST
// validation passes the same interceptors (metrics, logging, limits, error
// mapping) as a gRPC one, without the loopback gRPC hop: that hop costs more
// than the validation itself, several times over (see README, Performance).
type ValidateFunc func(ctx context.Context, req *keymintv1.ValidateTokenRequest) (*keymintv1.ValidateTokenResponse, error)

// validatePath is ValidateToken's REST route (the proto's http rule).
const validatePath = "/v1/tokens:validate"

// validateRoute serves POST /v1/tokens:validate through a ValidateFunc with
// the same decoding, encoding and error answers as the generated route.
//
// It is the REST hot path, so the usual request and answer shapes are read
// and written by hand (decodeValidateFast, appendValidateFast): reflection
// based protojson costs more than the validation. Anything outside those
// shapes goes through the marshaler exactly as the generated route does, so
// the answers are the same JSON values either way (TestValidateFastMatchesProtojson).
type validateRoute struct {
	validate  ValidateFunc
	marshaler runtime.Marshaler
	errs      *errorWriter
	// seen and encoded remember recent answers TokenService shares (the
	// valid answer of a token, a refusal without a retry time), by token
	// id or reason (recent.Size each at most, README "Shared reads": an
	// answer's message and JSON are some 0.8 KB without metadata, so about
	// 0.8 MB in all). TokenService answers with the same message while its
	// cache entry lasts (tokens.Server.sharedAnswer), so a message seen a
	// second time is encoded once more and its JSON kept; after that the
	// message's answers are a copy of those bytes. Keyed by the message
	// itself, the JSON is the right one whatever the validator does: a
	// message answered only once (a new one every call: a usage-limited
	// token, L1 off) is merely encoded every time, without the copy kept.
	seen    recent.Table[keymintv1.ValidateTokenResponse]
	encoded recent.Table[encodedAnswer]
}

// answerSeed spreads token ids over the tables.
var answerSeed = maphash.MakeSeed()

// encodedAnswer is an answer message and its JSON, both read-only.
type encodedAnswer struct {
	resp *keymintv1.ValidateTokenResponse
	json []byte
}

var (
	bufPool         = sync.Pool{New: func() any { return new(bytes.Buffer) }}
	jsonContentType = []string{"application/json"}
)

func (v *validateRoute) ServeHTTP(w http.ResponseWriter, r *http.Request) { v.serve(w, r, r.Context()) }

// serve answers r in ctx, which may be more than r's context (the direct
// route's request id): an error answer gets a copy of r carrying it, so its
// log line has the id.
func (v *validateRoute) serve(w http.ResponseWriter, r *http.Request, ctx context.Context) {
	buf := bufPool.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 64<<10 {
			buf.Reset()
			bufPool.Put(buf)
		}
	}()
	buf.Reset()
	// limitBody has bounded the body already.
	if _, err := buf.ReadFrom(r.Body); err != nil {
		v.errs.write(w, withContext(r, ctx), status.Error(codes.InvalidArgument, "could not read the request body"))
		return
	}
	body := buf.Bytes()
	req := &keymintv1.ValidateTokenRequest{}
	// The generated route treats an empty body as an empty message.
	if len(bytes.TrimSpace(body)) > 0 && !decodeValidateFast(body, req) {
		if err := v.marshaler.Unmarshal(body, req); err != nil {
			v.errs.write(w, withContext(r, ctx), status.Error(codes.InvalidArgument, err.Error()))
			return
		}
	}
	resp, err := v.validate(ctx, req)
	if err != nil {
		v.errs.write(w, withContext(r, ctx), err)
		return
	}
	h, kept := answerKey(resp)
	if kept {
		if a := v.encoded.Get(h, func(a *encodedAnswer) bool { return a.resp == resp }); a != nil {
			w.Header()["Content-Type"] = jsonContentType
			_, _ = w.Write(a.json)
			return
		}
	}
	buf.Reset()
	out, ok := appendValidateFast(buf.AvailableBuffer(), resp)
	if !ok {
		if out, err = v.marshaler.Marshal(resp); err != nil {
			v.errs.write(w, withContext(r, ctx), status.Error(codes.Internal, "internal error"))
			return
		}
	}
	if kept {
		if v.seen.Get(h, func(m *keymintv1.ValidateTokenResponse) bool { return m == resp }) != nil {
			v.encoded.Put(h, &encodedAnswer{resp: resp, json: bytes.Clone(out)}, func(a *encodedAnswer) bool { return sameAnswerKey(a.resp, resp) })
		} else {
			v.seen.Put(h, resp, func(m *keymintv1.ValidateTokenResponse) bool { return sameAnswerKey(m, resp) })
		}
	}
	w.Header()["Content-Type"] = jsonContentType
	_, _ = w.Write(out)
}

// answerKey is resp's key in the tables, and whether its JSON may be kept
// at all: only the answers TokenService shares may come again (a
// usage-limited one carries its count, a refusal with a retry time is
// built per call). A refusal's key is 2 × its reason + no_store: a bucket
// apart from the other refusals', shared with token ids' hashes as any
// bucket is.
func answerKey(resp *keymintv1.ValidateTokenResponse) (uint64, bool) {
	switch {
	case resp.GetValid() && resp.RemainingUses == nil:
		return maphash.String(answerSeed, resp.GetTokenId()), true
	case !resp.GetValid() && resp.GetRetryAfter() == nil:
		k := 2 * uint64(resp.GetReason())
		if resp.GetNoStore() {
			k++
		}
		return k, true
	}
	return 0, false
}

// sameAnswerKey reports whether a and b are answers of the same key: an
// older answer of it is replaced rather than kept beside the new one.
func sameAnswerKey(a, b *keymintv1.ValidateTokenResponse) bool {
	if a.GetValid() != b.GetValid() {
		return false
	}
	if a.GetValid() {
		return a.GetTokenId() == b.GetTokenId()
	}
	return a.GetReason() == b.GetReason() && a.GetNoStore() == b.GetNoStore()
}

// withContext is r with ctx as its context: r itself when it has it.
func withContext(r *http.Request, ctx context.Context) *http.Request {
	if r.Context() == ctx {
		return r
	}
	return r.WithContext(ctx)
}

// decodeValidateFast reads the usual ValidateTokenRequest bodies: an object
// with "token" and perhaps "requiredScopes" (or "required_scopes") and
// "clientIp" (or "client_ip"), whose
// strings are printable ASCII without escapes. It reports false for anything
// else (null, escapes, unknown or repeated fields, bad syntax...), which the
// caller then hands to protojson: false means "not simple", never "invalid".
func decodeValidateFast(b []byte, req *keymintv1.ValidateTokenRequest) bool {
	p := jsonScanner{b: b}
	if !p.byte('{') {
		return false
	}
	var haveToken, haveScopes, haveIP bool
	if p.peek() == '}' {
		p.i++
		return p.end()
	}
	for {
		key, ok := p.str()
		if !ok || !p.byte(':') {
			return false
		}
		switch string(key) {
		case "token":
			v, ok := p.str()
			if !ok || haveToken {
				return false
			}
			req.Token, haveToken = string(v), true
		case "clientIp", "client_ip":
			v, ok := p.str()
			if !ok || haveIP {
				return false
			}
			req.ClientIp, haveIP = string(v), true
		case "requiredScopes", "required_scopes":
			if haveScopes || !p.byte('[') {
				return false
			}
			haveScopes = true
			if p.peek() == ']' {
				p.i++
				break
			}
			for {
				v, ok := p.str()
				if !ok {
					return false
				}
				req.RequiredScopes = append(req.RequiredScopes, string(v))
				if p.byte(']') {
					break
				}
				if !p.byte(',') {
					return false
				}
			}
		default:
			return false
		}
		if p.byte('}') {
			return p.end()
		}
		if !p.byte(',') {
			return false
		}
	}
}

// jsonScanner is the little JSON reader decodeValidateFast needs.
type jsonScanner struct {
	b []byte
	i int
}

func (p *jsonScanner) ws() {
	for p.i < len(p.b) && (p.b[p.i] == ' ' || p.b[p.i] == '\t' || p.b[p.i] == '\n' || p.b[p.i] == '\r') {
		p.i++
	}
}

func (p *jsonScanner) peek() byte {
	p.ws()
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

// byte consumes c (after whitespace) if it comes next.
func (p *jsonScanner) byte(c byte) bool {
	if p.peek() == c {
		p.i++
		return true
	}
	return false
}

// str reads a string of printable ASCII without escapes.
func (p *jsonScanner) str() ([]byte, bool) {
	if !p.byte('"') {
		return nil, false
	}
	b, start := p.b, p.i
	i := start // a local index: the loop keeps it in a register
	for i+8 <= len(b) && plainWord(binary.LittleEndian.Uint64(b[i:])) {
		i += 8
	}
	for i < len(b) && plainJSON[b[i]] {
		i++
	}
	if i == len(b) || b[i] != '"' {
		return nil, false
	}
	p.i = i + 1
	return b[start:i], true
}

// plainJSON marks the bytes the fast codec reads and writes inside a string
// as they are: printable ASCII but the quote and the backslash. One lookup
// a byte, where comparisons cost the codec a third of its instructions.
var plainJSON = func() (t [256]bool) {
	for c := 0x20; c <= 0x7e; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// plainWord reports whether the 8 bytes of x are all plainJSON: eight at
// a time where tokens and ids are tens of bytes (the bit tricks are the
// exact "has a byte less than / more than / equal to" tests of Bit
// Twiddling Hacks; TestPlainWord checks them against the table).
func plainWord(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	less := (x - 0x20*ones) & ^x & highs // a byte < 0x20
	more := ((x + 1*ones) | x) & highs   // a byte > 0x7e
	q := x ^ '"'*ones                    // a '"' is a zero byte of q
	bs := x ^ '\\'*ones                  // a backslash is a zero byte of bs
	eq := ((q-ones) & ^q | (bs-ones) & ^bs) & highs
	return less|more|eq == 0
}

// end reports whether only whitespace is left.
func (p *jsonScanner) end() bool {
	p.ws()
	return p.i == len(p.b)
}

// appendValidateFast appends r as the gateway's marshaler would write it
// (protojson with EmitDefaultValues: every scalar and list, unset messages
// and optional fields left out; no reason on a valid answer), and reports false when r holds anything it
// does not handle: a string needing escapes, an unknown reason, an invalid
// timestamp or duration, metadata.
func appendValidateFast(dst []byte, r *keymintv1.ValidateTokenResponse) ([]byte, bool) {
	reason, ok := keymintv1.ValidateTokenResponse_Reason_name[int32(r.GetReason())]
	kind, kindOK := keymintv1.PrincipalKind_name[int32(r.GetPrincipalKind())]
	if !ok || !kindOK || r.GetMetadata() != nil {
		return dst, false
	}
	dst = append(dst, `{"valid":`...)
	dst = strconv.AppendBool(dst, r.GetValid())
	// REASON_UNSPECIFIED (a valid answer) is left out, as quietMarshaler does.
	if r.GetReason() != keymintv1.ValidateTokenResponse_REASON_UNSPECIFIED {
		dst = append(dst, `,"reason":"`...)
		dst = append(dst, reason...)
		dst = append(dst, '"')
	}
	for _, f := range [...]struct{ name, v string }{
		{`,"tokenId":`, r.GetTokenId()}, {`,"userId":`, r.GetUserId()}, {`,"organizationId":`, r.GetOrganizationId()},
		{`,"externalId":`, r.GetExternalId()},
	} {
		dst = append(dst, f.name...)
		if dst, ok = appendPlainString(dst, f.v); !ok {
			return dst, false
		}
	}
	dst = append(dst, `,"scopes":[`...)
	for i, s := range r.GetScopes() {
		if i > 0 {
			dst = append(dst, ',')
		}
		if dst, ok = appendPlainString(dst, s); !ok {
			return dst, false
		}
	}
	dst = append(dst, `],"allowedCidrs":[`...)
	for i, s := range r.GetAllowedCidrs() {
		if i > 0 {
			dst = append(dst, ',')
		}
		if dst, ok = appendPlainString(dst, s); !ok {
			return dst, false
		}
	}
	dst = append(dst, `],"noStore":`...)
	dst = strconv.AppendBool(dst, r.GetNoStore())
	dst = append(dst, `,"principalKind":"`...)
	dst = append(dst, kind...)
	dst = append(dst, '"')
	if r.RemainingUses != nil {
		// protojson writes 64-bit integers as strings.
		dst = append(dst, `,"remainingUses":"`...)
		dst = strconv.AppendInt(dst, r.GetRemainingUses(), 10)
		dst = append(dst, '"')
	}
	if d := r.GetRetryAfter(); d != nil {
		if d.CheckValid() != nil || d.GetSeconds() < 0 || d.GetNanos() < 0 {
			return dst, false
		}
		// protojson's form: seconds with 0, 3, 6 or 9 fractional digits, then "s".
		dst = append(dst, `,"retryAfter":"`...)
		dst = strconv.AppendInt(dst, d.GetSeconds(), 10)
		if n := d.GetNanos(); n != 0 {
			var buf [10]byte
			frac := strconv.AppendInt(buf[:0], int64(n)+1e9, 10)[1:] // 9 digits, leading zeros kept
			for len(frac) > 3 && string(frac[len(frac)-3:]) == "000" {
				frac = frac[:len(frac)-3]
			}
			dst = append(dst, '.')
			dst = append(dst, frac...)
		}
		dst = append(dst, `s"`...)
	}
	for _, f := range [...]struct {
		name string
		ts   *timestamppb.Timestamp
	}{{`,"expireTime":"`, r.GetExpireTime()}, {`,"createTime":"`, r.GetCreateTime()}} {
		if f.ts == nil {
			continue
		}
		if f.ts.CheckValid() != nil {
			return dst, false
		}
		dst = append(dst, f.name...)
		dst = appendTimestamp(dst, f.ts)
		dst = append(dst, '"')
	}
	return append(dst, '}'), true
}

// appendTimestamp appends ts (valid: years 1 to 9999) in protojson's form:
// RFC 3339 in UTC with 0, 3, 6 or 9 fractional digits. By hand: time's
// AppendFormat took a quarter of a cached REST validation's encoding.
func appendTimestamp(dst []byte, ts *timestamppb.Timestamp) []byte {
	secs := ts.GetSeconds()
	days, rem := secs/86400, secs%86400
	if rem < 0 {
		days, rem = days-1, rem+86400
	}
	y, m, d := civilDate(days)
	dst = appendDigits(dst, uint64(y), 4)
	dst = append(dst, '-')
	dst = appendDigits(dst, uint64(m), 2)
	dst = append(dst, '-')
	dst = appendDigits(dst, uint64(d), 2)
	dst = append(dst, 'T')
	dst = appendDigits(dst, uint64(rem/3600), 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, uint64(rem/60%60), 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, uint64(rem%60), 2)
	if n := ts.GetNanos(); n != 0 {
		dst = append(dst, '.')
		switch {
		case n%1e6 == 0:
			dst = appendDigits(dst, uint64(n/1e6), 3)
		case n%1e3 == 0:
			dst = appendDigits(dst, uint64(n/1e3), 6)
		default:
			dst = appendDigits(dst, uint64(n), 9)
		}
	}
	return append(dst, 'Z')
}

// civilDate is the proleptic Gregorian date of days since 1970-01-01
// (Howard Hinnant's days_from_civil, inverted).
func civilDate(days int64) (year int64, month, day int) {
	z := days + 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097                                  // [0, 146096]
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365 // [0, 399]
	doy := doe - (365*yoe + yoe/4 - yoe/100)               // [0, 365]
	mp := (5*doy + 2) / 153                                // [0, 11], from March
	day = int(doy - (153*mp+2)/5 + 1)
	month = int(mp + 3)
	if month > 12 {
		month -= 12
	}
	year = yoe + era*400
	if month <= 2 {
		year++
	}
	return year, month, day
}

// appendDigits appends v as exactly width decimal digits, zero-padded.
func appendDigits(dst []byte, v uint64, width int) []byte {
	var buf [20]byte
	for i := width - 1; i >= 0; i-- {
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	return append(dst, buf[:width]...)
}

// appendPlainString appends s quoted if it is printable ASCII needing no
// escape, and reports whether it was.
func appendPlainString(dst []byte, s string) ([]byte, bool) {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		if !plainWord(uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56) {
			break
		}
	}
	for ; i < len(s); i++ {
		if !plainJSON[s[i]] {
			return dst, false
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"'), true
}
