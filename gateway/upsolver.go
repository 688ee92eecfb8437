package gateway

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
)

// Upsolver-compatible routes (see shared/seeds/upsolver-api-tokens.md):
//
//	POST   /api-tokens[/]  {"displayData":{"name":..,"description":..}} -> token with its secret
//	GET    /api-tokens[/]  -> array of tokens
//	GET    /api-tokens/{id} -> token
//	DELETE /api-tokens/{id} -> the revoked token
//
// Credentials (authorization, or x-api-email + x-api-password) are forwarded
// as gRPC metadata; the gRPC server decides what they are worth.

// creationTimeLayout is Upsolver's creationTime: RFC 3339 in UTC with
// milliseconds, "2018-11-01T12:09:27.971Z".
const creationTimeLayout = "2006-01-02T15:04:05.000Z"

// listPageSize and maxListPages bound GET /api-tokens: Upsolver answers with
// every token at once, so the route pages through ListTokens itself.
const (
	listPageSize = 1000
	maxListPages = 100
)

// upsolverRoutes serves the Upsolver-compatible routes over the gRPC client.
type upsolverRoutes struct {
	client keymintv1.TokenServiceClient
	errs   *errorWriter
}

// upsolverToken is a token in Upsolver's JSON shape. APIToken is set only in
// the answer that minted the token.
type upsolverToken struct {
	ID             string              `json:"id"`
	OrganizationID string              `json:"organizationId"`
	DisplayData    upsolverDisplayData `json:"displayData"`
	APIToken       string              `json:"apiToken,omitempty"`
	CreatedBy      string              `json:"createdBy"`
}

// upsolverDisplayData is the displayData object of upsolverToken.
type upsolverDisplayData struct {
	Name          string `json:"name"`
	Description   string `json:"description"`
	StatusMessage string `json:"statusMessage"`
	StatusType    string `json:"statusType"`
	CreationTime  string `json:"creationTime"`
	CreatedBy     string `json:"createdBy"`
}

// createTokenBody is the POST /api-tokens body. Fields it does not name are
// ignored: Upsolver clients may send more.
type createTokenBody struct {
	DisplayData *struct {
		Name        string `json:"name"`
		Description string `json:"description"`
	} `json:"displayData"`
}

// collection serves /api-tokens and /api-tokens/.
func (u *upsolverRoutes) collection(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
		u.create(w, r)
	case http.MethodGet:
		u.list(w, r)
	default:
		setAllow(w, http.MethodGet, http.MethodPost)
		u.errs.write(w, r, routingError(http.StatusMethodNotAllowed))
	}
}

// item serves /api-tokens/{id}.
func (u *upsolverRoutes) item(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		u.get(w, r)
	case http.MethodDelete:
		u.revoke(w, r)
	default:
		setAllow(w, http.MethodGet, http.MethodDelete)
		u.errs.write(w, r, routingError(http.StatusMethodNotAllowed))
	}
}

// create mints a token: POST /api-tokens.
func (u *upsolverRoutes) create(w http.ResponseWriter, r *http.Request) {
	req, err := decodeCreateBody(r)
	if err != nil {
		u.errs.write(w, r, err)
		return
	}
	ctx := metadata.NewOutgoingContext(r.Context(), outgoingMetadata(r))
	resp, err := u.client.CreateToken(ctx, req)
	if err != nil {
		u.errs.write(w, r, err)
		return
	}
	t := toUpsolver(resp.GetToken())
	t.APIToken = resp.GetSecret()
	writeJSON(w, http.StatusOK, t)
}

// list answers every token of the caller: GET /api-tokens.
func (u *upsolverRoutes) list(w http.ResponseWriter, r *http.Request) {
	ctx := metadata.NewOutgoingContext(r.Context(), outgoingMetadata(r))
	out := []upsolverToken{}
	req := &keymintv1.ListTokensRequest{PageSize: listPageSize, ShowInactive: true}
	for range maxListPages {
		resp, err := u.client.ListTokens(ctx, req)
		if err != nil {
			u.errs.write(w, r, err)
			return
		}
		for _, t := range resp.GetTokens() {
			out = append(out, toUpsolver(t))
		}
		if resp.GetNextPageToken() == "" || resp.GetNextPageToken() == req.PageToken {
			break
		}
		req.PageToken = resp.GetNextPageToken()
	}
	writeJSON(w, http.StatusOK, out)
}

// get answers one token: GET /api-tokens/{id}.
func (u *upsolverRoutes) get(w http.ResponseWriter, r *http.Request) {
	ctx := metadata.NewOutgoingContext(r.Context(), outgoingMetadata(r))
	t, err := u.client.GetToken(ctx, &keymintv1.GetTokenRequest{Id: r.PathValue("id")})
	if err != nil {
		u.errs.write(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toUpsolver(t))
}

// revoke revokes a token: DELETE /api-tokens/{id}.
func (u *upsolverRoutes) revoke(w http.ResponseWriter, r *http.Request) {
	ctx := metadata.NewOutgoingContext(r.Context(), outgoingMetadata(r))
	t, err := u.client.RevokeToken(ctx, &keymintv1.RevokeTokenRequest{Id: r.PathValue("id")})
	if err != nil {
		u.errs.write(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toUpsolver(t))
}

// decodeCreateBody reads the POST /api-tokens body into a CreateTokenRequest.
// Raw newlines, carriage returns and tabs inside strings are accepted (the
// seed's curl example sends one); anything else that is not JSON is a 400.
func decodeCreateBody(r *http.Request) (*keymintv1.CreateTokenRequest, error) {
	var raw []byte
	if r.Body != nil {
		var err error
		if raw, err = io.ReadAll(r.Body); err != nil {
			// ServeHTTP has already refused oversize bodies; this is a
			// client that went away mid-body.
			return nil, status.Error(codes.InvalidArgument, "could not read the request body")
		}
	}
	var body createTokenBody
	if err := json.Unmarshal(escapeRawControls(raw), &body); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return nil, status.Error(codes.InvalidArgument, "displayData.name and displayData.description must be strings")
		}
		return nil, status.Error(codes.InvalidArgument, "request body is not valid JSON")
	}
	if body.DisplayData == nil || strings.TrimSpace(body.DisplayData.Name) == "" {
		return nil, status.Error(codes.InvalidArgument, "displayData.name is required")
	}
	return &keymintv1.CreateTokenRequest{
		Name:        body.DisplayData.Name,
		Description: body.DisplayData.Description,
	}, nil
}

// toUpsolver renders t in Upsolver's shape, without a secret.
func toUpsolver(t *keymintv1.Token) upsolverToken {
	statusType := upsolverStatus(t)
	var created string
	if ct := t.GetCreateTime(); ct != nil {
		created = ct.AsTime().UTC().Format(creationTimeLayout)
	}
	return upsolverToken{
		ID:             t.GetId(),
		OrganizationID: t.GetOrganizationId(),
		DisplayData: upsolverDisplayData{
			Name:          t.GetName(),
			Description:   t.GetDescription(),
			StatusMessage: statusType,
			StatusType:    statusType,
			CreationTime:  created,
			CreatedBy:     t.GetCreatedByEmail(),
		},
		CreatedBy: t.GetCreatedByEmail(),
	}
}

// upsolverStatus is the statusType (and statusMessage) of t: "ok" while it
// works, else "revoked" or "expired". A status the server left unset is read
// from the token's times.
func upsolverStatus(t *keymintv1.Token) string {
	switch t.GetStatus() {
	case keymintv1.TokenStatus_TOKEN_STATUS_ACTIVE:
		return "ok"
	case keymintv1.TokenStatus_TOKEN_STATUS_REVOKED:
		return "revoked"
	case keymintv1.TokenStatus_TOKEN_STATUS_EXPIRED:
		return "expired"
	}
	switch {
	case t.GetRevokeTime() != nil:
		return "revoked"
	case t.GetExpireTime() != nil && !t.GetExpireTime().AsTime().After(time.Now()):
		return "expired"
	}
	return "ok"
}
