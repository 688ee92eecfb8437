package gateway

import (
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"sync"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
)

// newMarshaler is the gateway's JSON codec: protojson with every default
// value written (so {"valid": false} says false), and unknown fields a 400.
func newMarshaler() quietMarshaler {
	return quietMarshaler{&runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{EmitDefaultValues: true},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
	}}
}

// Parse errors answered to callers. grpc-gateway's generated routes answer a
// body or query that does not parse with the parser's own text, which
// quotes what it could not take (`unexpected token "km_..."`, `too many
// values for field "token": km_A, km_B`): a token or password a caller put
// in the wrong place would come back in the error body and, through
// clients that log errors, land in logs. These fixed texts name no value.
const (
	msgBadBody  = "request body is not valid JSON for this call (bad syntax, an unknown field, a repeated field or a value of the wrong type)"
	msgBadQuery = "query parameters are invalid for this call (an unknown or repeated parameter, or a value of the wrong type)"
)

var (
	errBadBody  = errors.New(msgBadBody)
	errBadQuery = errors.New(msgBadQuery)
)

// quietMarshaler is the gateway's JSON marshaler with decoding errors
// replaced by errBadBody; io.EOF (an empty body, which the generated routes
// take as an empty message) passes through.
type quietMarshaler struct {
	*runtime.JSONPb
}

// Marshal encodes v as protojson with default values, except that a
// ValidateTokenResponse without a reason (a valid answer) leaves out
// "reason" rather than saying REASON_UNSPECIFIED.
func (m quietMarshaler) Marshal(v any) ([]byte, error) {
	b, err := m.JSONPb.Marshal(v)
	if r, ok := v.(*keymintv1.ValidateTokenResponse); err != nil || !ok || r.GetReason() != keymintv1.ValidateTokenResponse_REASON_UNSPECIFIED {
		return b, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return nil, err
	}
	delete(fields, "reason")
	return json.Marshal(fields)
}

// Unmarshal decodes data into v; any error is errBadBody.
func (m quietMarshaler) Unmarshal(data []byte, v any) error {
	if err := m.JSONPb.Unmarshal(data, v); err != nil {
		return errBadBody
	}
	return nil
}

// NewDecoder returns a decoder whose errors, io.EOF aside, are errBadBody.
func (m quietMarshaler) NewDecoder(r io.Reader) runtime.Decoder {
	d := m.JSONPb.NewDecoder(r)
	return runtime.DecoderFunc(func(v any) error {
		err := d.Decode(v)
		if err == nil || errors.Is(err, io.EOF) {
			return err
		}
		return errBadBody
	})
}

// quietQueryOnce installs quietQueryParser.
var quietQueryOnce sync.Once

// useQuietQueryParser makes quietQueryParser grpc-gateway's query parser.
// SetQueryParameterParser sets a package variable of grpc-gateway (for every
// ServeMux, not the one it is given to), so it is set once, through a
// throwaway ServeMux, before any gateway serves: setting it with each
// gateway's options raced with the requests of the gateways built before.
func useQuietQueryParser() {
	quietQueryOnce.Do(func() { runtime.NewServeMux(runtime.SetQueryParameterParser(&quietQueryParser{})) })
}

// quietQueryParser is grpc-gateway's query parser with its errors replaced
// by errBadQuery.
type quietQueryParser struct {
	runtime.DefaultQueryParser
}

// Parse populates msg from values; any error is errBadQuery.
func (p *quietQueryParser) Parse(msg proto.Message, values url.Values, filter *utilities.DoubleArray) error {
	if err := p.DefaultQueryParser.Parse(msg, values, filter); err != nil {
		return errBadQuery
	}
	return nil
}
