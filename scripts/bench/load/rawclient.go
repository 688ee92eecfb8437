package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/proto"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
)

// The load clients speak the wire protocols directly, with everything that
// can be encoded once encoded once, so that one core of load costs a
// fraction of what one core of server does: the server, not the client, is
// what saturates, and the ratio between two servers measures them.

// recorder collects one load run's outcome. Only the goroutine that owns it
// touches lats; the counters are read by the coordinator.
type recorder struct {
	measuring *atomic.Bool
	stop      *atomic.Bool
	calls     atomic.Int64
	errs      atomic.Int64
	firstErr  atomic.Value
	lats      []int64
}

func (r *recorder) done(start time.Time, err error) {
	if !r.measuring.Load() {
		return
	}
	r.calls.Add(1)
	if err != nil {
		if r.errs.Add(1) == 1 {
			r.firstErr.Store(err.Error())
		}
		return
	}
	r.lats = append(r.lats, int64(time.Since(start)))
}

// validPrefix is how a ValidateTokenResponse with valid = true starts on the
// wire: field 1, varint, 1 (protobuf writes fields in number order).
var validPrefix = []byte{0x08, 0x01}

// h2Conn drives concurrent gRPC ValidateToken calls over one HTTP/2
// connection from one goroutine: it reads a frame, and for each finished
// call starts the next; writes are flushed whenever the read buffer runs dry.
type h2Conn struct {
	conn         net.Conn
	br           *bufio.Reader
	bw           *bufio.Writer
	fr           *http2.Framer
	dec          *hpack.Decoder
	headers      []byte   // the request's HPACK block once the table holds it
	firstHeaders []byte   // the first request's block, which fills the table
	bodies       [][]byte // gRPC-framed requests, one per token
	next         int      // next body
	nextID       uint32
	sendWin      int64 // connection-level flow-control window for our DATA
	waiting      int   // calls held back for lack of window
	calls        map[uint32]*h2Call
	rec          *recorder
	budget       *atomic.Int64 // calls left to start, shared by the connections (nil: until stop)
	okPrefix     []byte        // how an allowing answer starts
	// per-decode scratch
	status string
}

type h2Call struct {
	start time.Time
	valid bool
}

// authzOKPrefix is how an ext_authz CheckResponse allowing the request
// starts: field 1 (status), an empty message (code 0, OK).
var authzOKPrefix = []byte{0x0a, 0x00}

// callFor returns the gRPC method, the encoded request for token and the
// answer prefix that means "allowed" for a protocol: keymint's ValidateToken,
// or Envoy's ext_authz Check.
func callFor(protocol, token, clientIP string) (string, []byte, []byte, error) {
	if protocol == "authz" {
		msg, err := proto.Marshal(&authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
				Method: "GET", Path: "/", Headers: map[string]string{"authorization": "Bearer " + token}}}}})
		return authv3.Authorization_Check_FullMethodName, msg, authzOKPrefix, err
	}
	msg, err := proto.Marshal(&keymintv1.ValidateTokenRequest{Token: token, ClientIp: clientIP})
	return keymintv1.TokenService_ValidateToken_FullMethodName, msg, validPrefix, err
}

func dialH2(addr string, tokens []string, clientIP, protocol string, rec *recorder) (*h2Conn, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &h2Conn{conn: conn, br: bufio.NewReaderSize(conn, 64<<10), bw: bufio.NewWriterSize(conn, 64<<10),
		nextID: 1, sendWin: 65535, calls: map[uint32]*h2Call{}, rec: rec}
	c.fr = http2.NewFramer(c.bw, c.br)
	c.fr.SetReuseFrames()
	c.dec = hpack.NewDecoder(4096, c.onField)
	// Like grpc-go's client: the first request adds its headers to the
	// HPACK dynamic table, every later one names them by index. Encoding
	// the same fields a second time gives that indexed block, which stays
	// valid for every later request since nothing else is ever added.
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	method, _, okPrefix, err := callFor(protocol, tokens[0], clientIP)
	if err != nil {
		return nil, err
	}
	c.okPrefix = okPrefix
	encode := func() []byte {
		hb.Reset()
		for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"},
			{":path", method}, {":authority", addr},
			{"content-type", "application/grpc"}, {"te", "trailers"}} {
			_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		return bytes.Clone(hb.Bytes())
	}
	c.firstHeaders = encode()
	c.headers = encode()
	for _, t := range tokens {
		_, msg, _, err := callFor(protocol, t, clientIP)
		if err != nil {
			return nil, err
		}
		b := make([]byte, 5+len(msg))
		b[1], b[2], b[3], b[4] = byte(len(msg)>>24), byte(len(msg)>>16), byte(len(msg)>>8), byte(len(msg))
		copy(b[5:], msg)
		c.bodies = append(c.bodies, b)
	}
	if _, err := c.bw.WriteString(http2.ClientPreface); err != nil {
		return nil, err
	}
	// Large receive windows: the server never waits for our window updates.
	if err := c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 30}); err != nil {
		return nil, err
	}
	if err := c.fr.WriteWindowUpdate(0, 1<<30); err != nil {
		return nil, err
	}
	return c, c.bw.Flush()
}

func (c *h2Conn) onField(f hpack.HeaderField) {
	switch f.Name {
	case ":status":
		if f.Value != "200" {
			c.status = "http " + f.Value
		}
	case "grpc-status":
		if f.Value != "0" {
			c.status = "grpc-status " + f.Value
		}
	}
}

// start sends one call, or holds it back until the window allows.
func (c *h2Conn) start() error {
	body := c.bodies[c.next%len(c.bodies)]
	if c.sendWin < int64(len(body)) {
		c.waiting++
		return nil
	}
	// After the window test: a held-back call takes its share when it is sent.
	if c.budget != nil && c.budget.Add(-1) < 0 {
		return nil
	}
	c.next++
	id := c.nextID
	c.nextID += 2
	c.sendWin -= int64(len(body))
	c.calls[id] = &h2Call{start: time.Now()}
	block := c.headers
	if id == 1 {
		block = c.firstHeaders
	}
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndHeaders: true}); err != nil {
		return err
	}
	return c.fr.WriteData(id, true, body)
}

func (c *h2Conn) finish(id uint32, err error) error {
	call, ok := c.calls[id]
	if !ok {
		return nil
	}
	delete(c.calls, id)
	if err == nil && !call.valid {
		err = errors.New("answer is not valid=true")
	}
	c.rec.done(call.start, err)
	if c.rec.stop.Load() {
		return nil
	}
	return c.start()
}

// run keeps inflight calls going until stop, then drains.
func (c *h2Conn) run(inflight int) error {
	defer c.conn.Close()
	for range inflight {
		if err := c.start(); err != nil {
			return err
		}
	}
	if err := c.bw.Flush(); err != nil {
		return err
	}
	for len(c.calls) > 0 || c.waiting > 0 && !c.rec.stop.Load() {
		f, err := c.fr.ReadFrame()
		if err != nil {
			return err
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				err = c.fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				err = c.fr.WritePing(true, f.Data)
			}
		case *http2.WindowUpdateFrame:
			if f.StreamID == 0 {
				c.sendWin += int64(f.Increment)
				for c.waiting > 0 && err == nil && !c.rec.stop.Load() {
					c.waiting--
					err = c.start()
				}
			}
		case *http2.HeadersFrame:
			c.status = ""
			if _, derr := c.dec.Write(f.HeaderBlockFragment()); derr != nil {
				return derr
			}
			if !f.HeadersEnded() {
				return errors.New("CONTINUATION frames are not supported")
			}
			if f.StreamEnded() {
				var cerr error
				if c.status != "" {
					cerr = errors.New(c.status)
				}
				err = c.finish(f.StreamID, cerr)
			} else if c.status != "" {
				err = c.finish(f.StreamID, errors.New(c.status))
			}
		case *http2.DataFrame:
			d := f.Data()
			if call, ok := c.calls[f.StreamID]; ok && len(d) >= 5+len(c.okPrefix) && bytes.Equal(d[5:5+len(c.okPrefix)], c.okPrefix) {
				call.valid = true
			}
		case *http2.RSTStreamFrame:
			err = c.finish(f.StreamID, fmt.Errorf("stream reset: %v", f.ErrCode))
		case *http2.GoAwayFrame:
			return fmt.Errorf("server sent GOAWAY: %v", f.ErrCode)
		}
		if err != nil {
			return err
		}
		if c.br.Buffered() == 0 {
			if err := c.bw.Flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// http1Conn is one keep-alive HTTP/1.1 connection doing one call at a time:
// a pre-built request written, the answer read with just enough parsing to
// find its end and check it.
type http1Conn struct {
	conn net.Conn
	br   *bufio.Reader
	reqs [][]byte
	rec  *recorder
	body []byte
	// want is what the answer's body must hold besides a 200: "valid":true
	// for validate, the MALFORMED reason for malformed, nothing for
	// forward-auth (it answers 200 with no body).
	want []byte
}

var (
	validJSON     = []byte(`"valid":true`)
	malformedJSON = []byte(`"reason":"MALFORMED"`)
)

func dialHTTP1(addr, path string, tokens []string, clientIP, protocol string, rec *recorder) (*http1Conn, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &http1Conn{conn: conn, br: bufio.NewReaderSize(conn, 16<<10), rec: rec}
	switch protocol {
	case "validate":
		c.want = validJSON
	case "malformed":
		c.want = malformedJSON
	}
	for _, t := range tokens {
		if protocol == "forward-auth" {
			// nginx auth_request's subrequest: a GET with the original URI.
			c.reqs = append(c.reqs, []byte("GET "+path+" HTTP/1.1\r\nHost: "+addr+
				"\r\nAuthorization: Bearer "+t+"\r\nX-Original-URI: /reports\r\nX-Original-Method: GET\r\n\r\n"))
			continue
		}
		body := validateBody(t, clientIP)
		c.reqs = append(c.reqs, []byte("POST "+path+" HTTP/1.1\r\nHost: "+addr+
			"\r\nContent-Type: application/json\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body))
	}
	return c, nil
}

func (c *http1Conn) run(first int) error {
	defer c.conn.Close()
	for i := first; !c.rec.stop.Load(); i++ {
		start := time.Now()
		if _, err := c.conn.Write(c.reqs[i%len(c.reqs)]); err != nil {
			return err
		}
		err := c.readResponse()
		if err != nil && !errors.Is(err, errBadAnswer) {
			return err
		}
		c.rec.done(start, err)
	}
	return nil
}

var errBadAnswer = errors.New("bad answer")

func (c *http1Conn) readResponse() error {
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return err
	}
	ok := bytes.HasPrefix(line, []byte("HTTP/1.1 200 "))
	length := -1
	for {
		h, err := c.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(h) <= 2 {
			break
		}
		if len(h) > 15 && bytes.EqualFold(h[:15], []byte("content-length:")) {
			length, err = strconv.Atoi(string(bytes.TrimSpace(h[15:])))
			if err != nil {
				return fmt.Errorf("content-length: %w", err)
			}
		}
		if bytes.HasPrefix(bytes.ToLower(h), []byte("transfer-encoding:")) {
			return errors.New("chunked answers are not supported")
		}
	}
	if length < 0 {
		return errors.New("answer without content-length")
	}
	if cap(c.body) < length {
		c.body = make([]byte, length)
	}
	c.body = c.body[:length]
	if _, err := io.ReadFull(c.br, c.body); err != nil {
		return err
	}
	if !ok || !bytes.Contains(c.body, c.want) {
		return fmt.Errorf("%w: %.120s %.200s", errBadAnswer, line, c.body)
	}
	return nil
}
