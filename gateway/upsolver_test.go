package gateway

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
)

// Upsolver's token keys, as the seed's example response shows them.
var (
	upsolverTokenKeys       = []string{"apiToken", "createdBy", "displayData", "id", "organizationId"}
	upsolverDisplayDataKeys = []string{"createdBy", "creationTime", "description", "name", "statusMessage", "statusType"}
)

// seedHeaders are the headers of the seed's curl example.
func seedHeaders() http.Header {
	return http.Header{
		"Content-Type":   {"application/json"},
		"X-Api-Email":    {testEmail},
		"X-Api-Password": {testPassword},
	}
}

// checkUpsolverShape decodes one Upsolver token object and checks its keys.
func checkUpsolverShape(t *testing.T, raw json.RawMessage, withSecret bool) map[string]any {
	t.Helper()
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		t.Fatalf("token is not a JSON object: %v: %s", err, raw)
	}
	want := upsolverTokenKeys
	if !withSecret {
		want = slices.DeleteFunc(slices.Clone(want), func(k string) bool { return k == "apiToken" })
	}
	if got := sortedKeys(obj); !slices.Equal(got, want) {
		t.Errorf("token keys = %v, want %v", got, want)
	}
	var dd map[string]json.RawMessage
	if err := json.Unmarshal(obj["displayData"], &dd); err != nil {
		t.Fatalf("displayData is not an object: %v", err)
	}
	if got := sortedKeys(dd); !slices.Equal(got, upsolverDisplayDataKeys) {
		t.Errorf("displayData keys = %v, want %v", got, upsolverDisplayDataKeys)
	}
	var v map[string]any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestUpsolverCreateSeedExample(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"/api-tokens/", "/api-tokens"} {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			g := newTestGateway(t, nil)
			h := seedHeaders()
			for k, vs := range hostileHeaders() {
				h[k] = vs
			}
			resp, body := send(t, http.MethodPost, g.url+path, seedCreateBody, h)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d: %s", resp.StatusCode, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store on a response carrying a secret", cc)
			}
			v := checkUpsolverShape(t, body, true)
			dd := v["displayData"].(map[string]any)
			wantTop := map[string]any{
				"id":             "tok-1",
				"organizationId": "org-1",
				"apiToken":       testSecret,
				"createdBy":      "docs@upsolver.com",
			}
			for k, want := range wantTop {
				if v[k] != want {
					t.Errorf("%s = %v, want %v", k, v[k], want)
				}
			}
			wantDD := map[string]any{
				"name":          "Data Sources Bot API Token",
				"description":   "API Token used by the bot \nto create Data Sources",
				"statusMessage": "ok",
				"statusType":    "ok",
				"creationTime":  "2018-11-01T12:09:27.971Z",
				"createdBy":     "docs@upsolver.com",
			}
			for k, want := range wantDD {
				if dd[k] != want {
					t.Errorf("displayData.%s = %q, want %q", k, dd[k], want)
				}
			}

			call := g.fake.lastCall(t)
			req := call.req.(*keymintv1.CreateTokenRequest)
			if req.GetName() != wantDD["name"] || req.GetDescription() != wantDD["description"] {
				t.Errorf("server got name %q description %q", req.GetName(), req.GetDescription())
			}
			checkMetadata(t, call.md)
			if got := call.md.Get("x-api-email"); !slices.Equal(got, []string{testEmail}) {
				t.Errorf("x-api-email = %q", got)
			}
			if got := call.md.Get("x-api-password"); !slices.Equal(got, []string{testPassword}) {
				t.Errorf("x-api-password = %q", got)
			}
			if got := call.md.Get("authorization"); len(got) != 0 {
				t.Errorf("authorization = %q, want none", got)
			}
			for k := range resp.Header {
				if strings.HasPrefix(k, "Grpc-") {
					t.Errorf("response leaks %s", k)
				}
			}
			logs := g.logs.String()
			for _, secret := range []string{testPassword, testEmail, testSecret, "Data Sources"} {
				if strings.Contains(logs, secret) {
					t.Errorf("logs contain %q: %s", secret, logs)
				}
			}
		})
	}
}

func TestUpsolverCreateSameMetadataAsNative(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, nil)
	h := seedHeaders()
	h.Set("Authorization", "Bearer "+testToken)
	keysOf := func(path, body string) []string {
		resp, b := send(t, http.MethodPost, g.url+path, body, h)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST %s: %d %s", path, resp.StatusCode, b)
		}
		return sortedKeys(g.fake.lastCall(t).md)
	}
	native := keysOf("/v1/tokens", `{"name":"x"}`)
	upsolver := keysOf("/api-tokens", `{"displayData":{"name":"x"}}`)
	if !slices.Equal(native, upsolver) {
		t.Errorf("metadata keys differ: native %v, upsolver %v", native, upsolver)
	}
}

func TestUpsolverCreateRejects(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, nil)
	tests := []struct {
		name, body  string
		wantMessage string
	}{
		{"empty body", "", "request body is not valid JSON"},
		{"truncated", `{"displayData":{"name":"x"`, "request body is not valid JSON"},
		{"single quotes", `{'displayData':{'name':'x'}}`, "request body is not valid JSON"},
		{"trailing garbage", `{"displayData":{"name":"x"}} x`, "request body is not valid JSON"},
		{"raw newline after backslash", "{\"displayData\":{\"name\":\"x\\\ny\"}}", "request body is not valid JSON"},
		{"raw NUL in string", "{\"displayData\":{\"name\":\"x\x00\"}}", "request body is not valid JSON"},
		{"name not a string", `{"displayData":{"name":7}}`, "displayData.name and displayData.description must be strings"},
		{"missing displayData", `{}`, "displayData.name is required"},
		{"null displayData", `{"displayData":null}`, "displayData.name is required"},
		{"null body", `null`, "displayData.name is required"},
		{"missing name", `{"displayData":{"description":"d"}}`, "displayData.name is required"},
		{"empty name", `{"displayData":{"name":""}}`, "displayData.name is required"},
		{"blank name", "{\"displayData\":{\"name\":\" \n\t\"}}", "displayData.name is required"},
	}
	for _, tt := range tests {
		resp, body := send(t, http.MethodPost, g.url+"/api-tokens", tt.body, seedHeaders())
		sb := wantStatusJSON(t, resp, body, http.StatusBadRequest, 3)
		if sb.Message != tt.wantMessage {
			t.Errorf("%s: message = %q, want %q", tt.name, sb.Message, tt.wantMessage)
		}
	}
	if n := g.fake.callCount(); n != 0 {
		t.Errorf("gRPC server got %d calls for bad bodies", n)
	}
}

func TestUpsolverCreateIgnoresUnknownFields(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, nil)
	body := `{"displayData":{"name":"n","description":"d","color":"red"},"clientId":7}`
	resp, b := send(t, http.MethodPost, g.url+"/api-tokens", body, seedHeaders())
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d: %s", resp.StatusCode, b)
	}
}

func TestUpsolverCreateUnauthenticated(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, nil)
	for name, h := range map[string]http.Header{
		"wrong password": {"X-Api-Email": {testEmail}, "X-Api-Password": {"nope"}},
		"no credentials": {},
		"smuggled":       {"Grpc-Metadata-X-Api-Email": {testEmail}, "Grpc-Metadata-X-Api-Password": {testPassword}},
	} {
		resp, body := send(t, http.MethodPost, g.url+"/api-tokens", seedCreateBody, h)
		sb := wantStatusJSON(t, resp, body, http.StatusUnauthorized, 16)
		if sb.Message != "invalid credentials" {
			t.Errorf("%s: message = %q", name, sb.Message)
		}
	}
}

func TestUpsolverList(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"/api-tokens", "/api-tokens/"} {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			g := newTestGateway(t, nil)
			// The seed's way to use a token: the raw token in authorization.
			resp, body := send(t, http.MethodGet, g.url+path, "", http.Header{"Authorization": {testToken}})
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d: %s", resp.StatusCode, body)
			}
			var items []json.RawMessage
			if err := json.Unmarshal(body, &items); err != nil {
				t.Fatalf("not a JSON array: %v: %s", err, body)
			}
			wantStatus := map[string]string{"tok-1": "ok", "tok-2": "revoked", "tok-3": "expired"}
			if len(items) != len(wantStatus) {
				t.Fatalf("got %d tokens, want %d (both pages): %s", len(items), len(wantStatus), body)
			}
			for _, raw := range items {
				v := checkUpsolverShape(t, raw, false)
				dd := v["displayData"].(map[string]any)
				id := v["id"].(string)
				if dd["statusType"] != wantStatus[id] || dd["statusMessage"] != wantStatus[id] {
					t.Errorf("%s: statusType %v statusMessage %v, want %s", id, dd["statusType"], dd["statusMessage"], wantStatus[id])
				}
			}
			if n := g.fake.callCount(); n != 2 {
				t.Errorf("ListTokens called %d times, want 2 (one per page)", n)
			}
			req := g.fake.lastCall(t).req.(*keymintv1.ListTokensRequest)
			if !req.GetShowInactive() || req.GetPageToken() != "page-2" {
				t.Errorf("last ListTokens request = %v", req)
			}
		})
	}
}

func TestUpsolverRevoke(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, nil)
	resp, body := send(t, http.MethodDelete, g.url+"/api-tokens/tok-7", "", http.Header{"Authorization": {"Bearer " + testToken}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d: %s", resp.StatusCode, body)
	}
	v := checkUpsolverShape(t, body, false)
	if v["id"] != "tok-7" {
		t.Errorf("id = %v", v["id"])
	}
	if dd := v["displayData"].(map[string]any); dd["statusType"] != "revoked" {
		t.Errorf("statusType = %v, want revoked", dd["statusType"])
	}
	call := g.fake.lastCall(t)
	if call.method != "RevokeToken" || call.req.(*keymintv1.RevokeTokenRequest).GetId() != "tok-7" {
		t.Errorf("server got %s %v", call.method, call.req)
	}
}

func TestUpsolverGet(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t, nil)
	auth := http.Header{"Authorization": {testToken}}
	resp, body := send(t, http.MethodGet, g.url+"/api-tokens/tok-5", "", auth)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d: %s", resp.StatusCode, body)
	}
	checkUpsolverShape(t, body, false)
	resp, body = send(t, http.MethodGet, g.url+"/api-tokens/missing", "", auth)
	wantStatusJSON(t, resp, body, http.StatusNotFound, 5)
}

func TestUpsolverStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		tok  *keymintv1.Token
		want string
	}{
		{"active", &keymintv1.Token{Status: keymintv1.TokenStatus_TOKEN_STATUS_ACTIVE}, "ok"},
		{"revoked", &keymintv1.Token{Status: keymintv1.TokenStatus_TOKEN_STATUS_REVOKED}, "revoked"},
		{"expired", &keymintv1.Token{Status: keymintv1.TokenStatus_TOKEN_STATUS_EXPIRED}, "expired"},
		{"unset, revoke time", fakeToken("a", keymintv1.TokenStatus_TOKEN_STATUS_REVOKED), "revoked"},
		{"unset, nothing", &keymintv1.Token{}, "ok"},
	}
	for _, tt := range tests {
		if tt.name == "unset, revoke time" {
			tt.tok.Status = keymintv1.TokenStatus_TOKEN_STATUS_UNSPECIFIED
		}
		if got := upsolverStatus(tt.tok); got != tt.want {
			t.Errorf("%s: upsolverStatus = %q, want %q", tt.name, got, tt.want)
		}
	}
}
