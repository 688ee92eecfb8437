package e2e

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	_ "github.com/keymint/keymint/proto/keymint/v1" // the services' descriptors
)

// rawCodec sends a request's bytes as they are: malformed protobuf.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error)      { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error { *(v.(*[]byte)) = data; return nil }
func (rawCodec) Name() string                       { return "proto" }

// fillStrings sets every string field of m (one level of messages deep) to
// one of vals, and every repeated string field to all of them.
func fillStrings(m protoreflect.Message, vals []string, depth int) {
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		switch {
		case f.IsList() && f.Kind() == protoreflect.StringKind:
			l := m.Mutable(f).List()
			for _, v := range vals {
				l.Append(protoreflect.ValueOfString(v))
			}
		case f.IsMap():
		case f.Kind() == protoreflect.StringKind:
			m.Set(f, protoreflect.ValueOfString(vals[i%len(vals)]))
		case f.Kind() == protoreflect.MessageKind && !f.IsList() && depth > 0 &&
			!strings.HasPrefix(string(f.Message().FullName()), "google.protobuf."):
			fillStrings(m.Mutable(f).Message(), vals, depth-1)
		}
	}
}

// Malformed input carrying a real token and a real password, sent to every
// REST route and every gRPC method (as the wrong type, an unknown field, a
// repeated query parameter, a path segment, bad protobuf, every string
// field, a credential header it does not belong in) never comes back in an
// error body, and never reaches the debug-level logs or the metrics.
func TestMalformedInputNeverEchoesSecrets(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	const email, admin = "echo@example.com", "echoadmin@example.com"
	pw, adminPW := "echo user's real password", "echo admin's real password"
	createUser(t, cfg, email, "echoorg", pw, false)
	createUser(t, cfg, admin, "echoorg", adminPW, true)
	srv := startServer(t, cfg)
	tok := mintToken(t, srv, email, pw)
	var secrets secretSet
	secrets.add(tok, pw, adminPW)
	adminCreds := map[string]string{"x-api-email": admin, "x-api-password": adminPW}

	checked := 0
	check := func(what string, code int, body string) {
		t.Helper()
		if code >= 200 && code < 300 {
			return
		}
		checked++
		if leaked := secrets.leaks(body); len(leaked) > 0 {
			t.Errorf("%s answered %d with a secret: %.300s", what, code, body)
		}
	}

	// REST: the generated routes (from the OpenAPI document) and the
	// hand-written ones.
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	if code, _ := do(t, "GET", srv.http+"/openapi.json", nil, "", &doc); code != 200 || len(doc.Paths) == 0 {
		t.Fatal("no OpenAPI document")
	}
	type route struct{ method, path string }
	var routes []route
	param := regexp.MustCompile(`\{[^}]+\}`)
	for p, verbs := range doc.Paths {
		for v := range verbs {
			routes = append(routes, route{strings.ToUpper(v), param.ReplaceAllString(p, url.PathEscape(tok))})
		}
	}
	routes = append(routes, []route{{"POST", "/api-tokens"}, {"GET", "/api-tokens"}, {"DELETE", "/api-tokens/" + tok},
		{"POST", "/api/auth/login"}, {"POST", "/api/auth/logout"}, {"GET", "/api/user/tokens"}, {"POST", "/api/user/tokens"},
		{"DELETE", "/api/user/tokens/" + tok}, {"GET", "/v1/forward-auth"}}...)
	q := url.Values{"token": {tok, tok}, "pageToken": {tok, pw}, "pageSize": {pw}, "allUsers": {tok}, tok: {pw}}.Encode()
	bodies := []string{
		tok,                                      // not JSON at all
		`{"tokens":"` + tok + `"}`,               // a string for a list
		`{"token":["` + tok + `","` + pw + `"]}`, // a list for a string
		`{"` + tok + `":"` + pw + `"}`,           // an unknown field named by a secret
		`{"name":"x","name":"` + tok + `"}`,      // a repeated field
		`{"pageSize":"` + pw + `"}`,              // a string for a number
		`{"gracePeriod":"` + pw + `","expireTime":"` + tok + `"}`,
		`["` + tok + `","` + pw + `"]`,
		`{"auth":` + tok + `,"password":"` + pw + `"}`,
		`{"displayData":{"name":["` + tok + `"],"description":"` + pw + `"}}`,
	}
	headerSets := []map[string]string{
		adminCreds,
		{"x-api-email": pw, "x-api-password": tok}, // secrets in the wrong headers
		{"authorization": "Basic " + pw, "cookie": "keymint_session=" + tok},
		{"authorization": "Bearer " + tok + tok}, // a token with a typo
	}
	for _, r := range routes {
		for _, h := range headerSets {
			hdr := map[string]string{"content-type": "application/json"}
			for k, v := range h {
				hdr[k] = v
			}
			code, body := do(t, r.method, srv.http+r.path+"?"+q, hdr, "", nil)
			check(r.method+" "+r.path+" (query)", code, body)
			if r.method == "GET" || r.method == "DELETE" {
				continue
			}
			for _, b := range bodies {
				code, body := do(t, r.method, srv.http+r.path, hdr, b, nil)
				check(r.method+" "+r.path+" "+b, code, body)
			}
		}
	}

	// gRPC: every unary method of keymint's services, with every string
	// field a secret, and with a body that is not protobuf.
	ctx := metadata.NewOutgoingContext(context.Background(), metadata.Pairs(
		"x-api-email", admin, "x-api-password", adminPW, "x-api-key", tok, "x-keymint-note", pw))
	for _, svc := range []protoreflect.FullName{"keymint.v1.TokenService", "keymint.v1.AccountService"} {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(svc)
		if err != nil {
			t.Fatal(err)
		}
		methods := d.(protoreflect.ServiceDescriptor).Methods()
		for i := 0; i < methods.Len(); i++ {
			m := methods.Get(i)
			if m.IsStreamingServer() || m.IsStreamingClient() {
				continue
			}
			full := "/" + string(svc) + "/" + string(m.Name())
			for _, vals := range [][]string{{tok, pw}, {pw, tok}} {
				in := dynamicpb.NewMessage(m.Input())
				fillStrings(in, vals, 2)
				out := dynamicpb.NewMessage(m.Output())
				if err := srv.conn.Invoke(ctx, full, in, out); err != nil {
					b, _ := protojson.Marshal(status.Convert(err).Proto())
					check(full+" "+string(b), 400, string(b))
				}
			}
			garbage := []byte(tok + pw)
			var reply []byte
			if err := srv.conn.Invoke(ctx, full, &garbage, &reply, grpc.ForceCodec(rawCodec{})); err != nil {
				b, _ := protojson.Marshal(status.Convert(err).Proto())
				check(full+" (garbage)", 400, string(b))
			}
		}
	}
	if checked < 100 {
		t.Fatalf("only %d error answers checked", checked)
	}

	code, metrics := do(t, "GET", srv.http+"/metrics", nil, "", nil)
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d", code)
	}
	if leaked := secrets.leaks(metrics); len(leaked) > 0 {
		t.Errorf("metrics hold secrets: %q", leaked)
	}
	srv.stop()
	logs := srv.logs.String()
	if !strings.Contains(logs, `"level":"DEBUG"`) {
		t.Fatal("no debug lines logged: nothing was checked")
	}
	if leaked := secrets.leaks(logs); len(leaked) > 0 {
		t.Errorf("logs hold secrets: %q", leaked)
	}
	t.Logf("%d error answers, %d bytes of logs, none with a secret", checked, len(logs))
}
