package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
	"github.com/keymint/keymint/services/authn"
)

// Semaphore-compatible routes (see shared/seeds/semaphore-api-tokens.md):
//
//	POST   /api/auth/login        {"auth": EMAIL, "password": ..} -> 204 + session cookie
//	POST   /api/auth/logout       -> 204, cookie cleared
//	GET    /api/user/tokens       -> [{"id","created","expired","user_id","name","hint"}]
//	POST   /api/user/tokens       -> 201 {"id": SECRET, ...}, the secret shown this once
//	DELETE /api/user/tokens/{id}  (token id or the secret itself) -> 204
//
// and the read-only ones of semaphoreinfo.go (GET /api/auth/login, /api/user,
// /api/ping, /api/info).
//
// They authenticate with the session cookie or, like every route, with
// Authorization: Bearer TOKEN (or x-api-email + x-api-password). Unlike
// Semaphore, the list never shows a secret again: its "id" is the token id.

const (
	loginPath  = "/api/auth/login"
	logoutPath = "/api/auth/logout"
)

// semaphoreRoutes serves the Semaphore-compatible routes over gRPC clients.
type semaphoreRoutes struct {
	g        *gateway
	tokens   keymintv1.TokenServiceClient
	accounts keymintv1.AccountServiceClient
	errs     *errorWriter
	now      func() time.Time
}

// semaphoreToken is a token in Semaphore's JSON shape, plus name and hint.
// UserID is keymint's user id, a UUID string where Semaphore has an integer.
type semaphoreToken struct {
	ID      string `json:"id"`
	Created string `json:"created"`
	Expired bool   `json:"expired"`
	UserID  string `json:"user_id"`
	Name    string `json:"name"`
	Hint    string `json:"hint"`
	// TokenID is set only in the answer that minted the token, whose ID is
	// the secret: it names the token for later calls.
	TokenID string `json:"token_id,omitempty"`
}

// loginBody is the POST /api/auth/login body.
type loginBody struct {
	Auth     string `json:"auth"`
	Password string `json:"password"`
}

// semaphoreCreateBody is the optional POST /api/user/tokens body. Semaphore
// sends none; unknown fields are ignored.
type semaphoreCreateBody struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Scopes      []string `json:"scopes"`
	// ExpireTime is RFC 3339; TTL a Go duration such as "720h". At most one.
	ExpireTime string `json:"expire_time"`
	TTL        string `json:"ttl"`
}

// credentialMetadata is every metadata key a caller's credentials travel in.
var credentialMetadata = [...]string{authn.HeaderAuthorization, authn.HeaderEmail, authn.HeaderPassword, authn.HeaderSession}

// anonymousMetadata is outgoingMetadata(r) without any credential: what the
// server sees of a sign-in, whose credentials are in the request message.
func anonymousMetadata(r *http.Request) metadata.MD {
	md := outgoingMetadata(r)
	for _, k := range credentialMetadata {
		md.Delete(k)
	}
	return md
}

// sessionMetadata sends only the cookie's session, to end it.
func sessionMetadata(r *http.Request, session string) metadata.MD {
	md := anonymousMetadata(r)
	md.Set(authn.HeaderSession, session)
	return md
}

// readJSON decodes r's body into v; an empty body leaves v as it is when
// emptyOK. Anything that is not JSON of v's shape is a 400.
func readJSON(r *http.Request, v any, emptyOK bool) error {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return status.Error(codes.InvalidArgument, "could not read the request body")
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		if emptyOK {
			return nil
		}
		return status.Error(codes.InvalidArgument, "request body is not valid JSON")
	}
	if err := json.Unmarshal(raw, v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			if typeErr.Field == "" {
				return status.Error(codes.InvalidArgument, "request body must be a JSON object")
			}
			return status.Errorf(codes.InvalidArgument, "field %s has the wrong type", typeErr.Field)
		}
		return status.Error(codes.InvalidArgument, "request body is not valid JSON")
	}
	return nil
}

// login signs in: POST /api/auth/login (GET answers the login page's
// metadata). The answer for a wrong password and
// an unknown email is the server's one Unauthenticated status, byte for byte.
func (s *semaphoreRoutes) login(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		s.loginMetadata(w, r)
		return
	}
	if !allowMethods(w, r, s.errs, http.MethodGet, http.MethodPost) {
		return
	}
	var body loginBody
	if err := readJSON(r, &body, false); err != nil {
		s.errs.write(w, r, err)
		return
	}
	if strings.TrimSpace(body.Auth) == "" || body.Password == "" {
		s.errs.write(w, r, status.Error(codes.InvalidArgument, "auth (the email) and password are required"))
		return
	}
	ctx := metadata.NewOutgoingContext(r.Context(), anonymousMetadata(r))
	resp, err := s.accounts.Login(ctx, &keymintv1.LoginRequest{Email: body.Auth, Password: body.Password})
	if err != nil {
		s.errs.write(w, r, err)
		return
	}
	// A browser signing in again gets a new session; the one it had ends.
	if old := sessionFrom(r.Context()); old != "" {
		s.endSession(r, old)
	}
	s.g.setSessionCookie(w, r, resp.GetSessionToken(), resp.GetExpireTime().AsTime())
	w.WriteHeader(http.StatusNoContent)
}

// logout signs out: POST /api/auth/logout. It answers 204 and clears the
// cookie whether or not the session was still good.
func (s *semaphoreRoutes) logout(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, s.errs, http.MethodPost) {
		return
	}
	if session := sessionFrom(r.Context()); session != "" {
		s.endSession(r, session)
	}
	s.g.clearSessionCookie(w, r)
	w.WriteHeader(http.StatusNoContent)
}

// endSession ends a session, best effort: one that is already over needs no
// ending, and a failure only logs (the cookie is cleared regardless).
func (s *semaphoreRoutes) endSession(r *http.Request, session string) {
	ctx := metadata.NewOutgoingContext(r.Context(), sessionMetadata(r, session))
	_, err := s.accounts.Logout(ctx, &keymintv1.LogoutRequest{})
	if err != nil && status.Code(err) != codes.Unauthenticated {
		s.g.log.WarnContext(r.Context(), "sign-out failed", "code", status.Code(err).String())
	}
}

// collection serves /api/user/tokens.
func (s *semaphoreRoutes) collection(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.list(w, r)
	case http.MethodPost:
		s.create(w, r)
	default:
		setAllow(w, http.MethodGet, http.MethodPost)
		s.errs.write(w, r, routingError(http.StatusMethodNotAllowed))
	}
}

// list answers every token of the caller, revoked and expired ones too:
// GET /api/user/tokens.
func (s *semaphoreRoutes) list(w http.ResponseWriter, r *http.Request) {
	ctx := metadata.NewOutgoingContext(r.Context(), outgoingMetadata(r))
	out := []semaphoreToken{}
	req := &keymintv1.ListTokensRequest{PageSize: listPageSize, ShowInactive: true}
	for range maxListPages {
		resp, err := s.tokens.ListTokens(ctx, req)
		if err != nil {
			s.errs.write(w, r, err)
			return
		}
		for _, t := range resp.GetTokens() {
			out = append(out, s.toSemaphore(t))
		}
		if resp.GetNextPageToken() == "" || resp.GetNextPageToken() == req.PageToken {
			break
		}
		req.PageToken = resp.GetNextPageToken()
	}
	writeJSON(w, http.StatusOK, out)
}

// create mints a token: POST /api/user/tokens, with no body as Semaphore
// sends it (a default name) or an optional JSON body. Only a session or
// email + password may mint; a Bearer token gets the server's 403.
func (s *semaphoreRoutes) create(w http.ResponseWriter, r *http.Request) {
	var body semaphoreCreateBody
	if err := readJSON(r, &body, true); err != nil {
		s.errs.write(w, r, err)
		return
	}
	req := &keymintv1.CreateTokenRequest{Name: body.Name, Description: body.Description, Scopes: body.Scopes}
	if strings.TrimSpace(req.Name) == "" {
		req.Name = "semaphore token " + s.now().UTC().Format("2006-01-02 15:04:05")
	}
	if body.ExpireTime != "" {
		at, err := time.Parse(time.RFC3339, body.ExpireTime)
		if err != nil {
			s.errs.write(w, r, status.Error(codes.InvalidArgument, "expire_time must be an RFC 3339 time such as 2030-01-02T15:04:05Z"))
			return
		}
		req.ExpireTime = timestamppb.New(at)
	}
	if body.TTL != "" {
		d, err := time.ParseDuration(body.TTL)
		if err != nil {
			s.errs.write(w, r, status.Error(codes.InvalidArgument, "ttl must be a duration such as 720h"))
			return
		}
		req.Ttl = durationpb.New(d)
	}
	ctx := metadata.NewOutgoingContext(r.Context(), outgoingMetadata(r))
	resp, err := s.tokens.CreateToken(ctx, req)
	if err != nil {
		s.errs.write(w, r, err)
		return
	}
	t := s.toSemaphore(resp.GetToken())
	t.TokenID, t.ID = t.ID, resp.GetSecret()
	writeJSON(w, http.StatusCreated, t)
}

// item serves /api/user/tokens/{id}: DELETE revokes ("expires") the token
// named by its id or by its secret.
func (s *semaphoreRoutes) item(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, s.errs, http.MethodDelete) {
		return
	}
	id := r.PathValue("id")
	req := &keymintv1.RevokeTokenRequest{Id: id}
	if uuid.Validate(id) != nil {
		req = &keymintv1.RevokeTokenRequest{Token: id}
	}
	ctx := metadata.NewOutgoingContext(r.Context(), outgoingMetadata(r))
	if _, err := s.tokens.RevokeToken(ctx, req); err != nil {
		s.errs.write(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// toSemaphore renders t in Semaphore's shape; "expired" is true once the
// token is revoked or past its expiry.
func (s *semaphoreRoutes) toSemaphore(t *keymintv1.Token) semaphoreToken {
	var created string
	if ct := t.GetCreateTime(); ct != nil {
		created = ct.AsTime().UTC().Format(time.RFC3339)
	}
	return semaphoreToken{
		ID:      t.GetId(),
		Created: created,
		Expired: upsolverStatus(t) != "ok",
		UserID:  t.GetUserId(),
		Name:    t.GetName(),
		Hint:    t.GetHint(),
	}
}
