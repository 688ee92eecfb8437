package gateway

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"strconv"

	"google.golang.org/grpc/codes"
)

// net/http answers a request it cannot parse (a malformed header, headers
// over MaxHeaderBytes, a bad Host) itself, before any handler runs, by
// writing a text/plain response straight to the connection. JSONErrors
// rewrites those few responses into keymint's error JSON, so that every
// error a client sees has the same shape.

// rawErrorHeaders is the header block net/http writes after the status line
// of its own error responses (net/http server.go, errorHeaders). A handler's
// response never carries it: the server adds Date to those.
var rawErrorHeaders = []byte("\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n")

// JSONErrors wraps l so that the error responses net/http writes on its
// own are JSON {"code", "message", "details"} like every other error.
func JSONErrors(l net.Listener) net.Listener { return jsonErrorListener{l} }

type jsonErrorListener struct{ net.Listener }

func (l jsonErrorListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return jsonErrorConn{c}, nil
}

type jsonErrorConn struct{ net.Conn }

// Write passes p on, unless p is a whole net/http error response (written
// in one call), which it replaces with the JSON form of the same status.
func (c jsonErrorConn) Write(p []byte) (int, error) {
	out, ok := rewriteRawError(p)
	if !ok {
		return c.Conn.Write(p)
	}
	if _, err := c.Conn.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// rewriteRawError returns the JSON response for p when p is one of
// net/http's own error responses.
func rewriteRawError(p []byte) ([]byte, bool) {
	const prefix = "HTTP/1.1 "
	// Cheap checks first: most writes are a handler's 2xx response.
	if len(p) < len(prefix)+3 || string(p[:len(prefix)]) != prefix || (p[len(prefix)] != '4' && p[len(prefix)] != '5') {
		return nil, false
	}
	httpStatus, err := strconv.Atoi(string(p[len(prefix) : len(prefix)+3]))
	if err != nil || httpStatus < 400 || httpStatus > 599 || !bytes.Contains(p, rawErrorHeaders) {
		return nil, false
	}
	code, msg := codes.InvalidArgument, "the request is not valid HTTP (a malformed request line, header or Host)"
	switch httpStatus {
	case http.StatusRequestHeaderFieldsTooLarge:
		code, msg = codes.ResourceExhausted, "request headers are too large"
	case http.StatusNotImplemented:
		code, msg = codes.Unimplemented, "unsupported transfer encoding"
	case http.StatusHTTPVersionNotSupported:
		msg = "HTTP version not supported"
	}
	body, _ := json.Marshal(struct {
		Code    codes.Code `json:"code"`
		Message string     `json:"message"`
		Details []struct{} `json:"details"`
	}{code, msg, []struct{}{}})
	var b bytes.Buffer
	b.WriteString(prefix + strconv.Itoa(httpStatus) + " " + http.StatusText(httpStatus) + "\r\n")
	b.WriteString("Content-Type: application/json\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n")
	b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n")
	b.Write(body)
	return b.Bytes(), true
}
