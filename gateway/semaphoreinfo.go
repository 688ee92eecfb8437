package gateway

import (
	"net/http"

	"google.golang.org/grpc/metadata"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
)

// The read-only Semaphore routes a Semaphore client (its web page, its CLI)
// calls besides sign-in and tokens:
//
//	GET /api/auth/login  -> {"oidc_providers": [], "login_with_password": true}
//	GET /api/user        -> the signed-in user in Semaphore's shape
//	GET /api/ping        -> "pong" (text/plain)
//	GET /api/info        -> {"version": API_VERSION}

const (
	userPath = "/api/user"
	pingPath = "/api/ping"
	infoPath = "/api/info"
	// apiVersion is the REST API's version, the OpenAPI document's
	// info.version.
	apiVersion = "1.0.0"
)

// semaphoreLoginMetadata is what Semaphore's login page reads before it
// shows the form: keymint has no OIDC providers, only passwords.
type semaphoreLoginMetadata struct {
	OIDCProviders     []struct{} `json:"oidc_providers"`
	LoginWithPassword bool       `json:"login_with_password"`
}

// semaphoreUser is a user in Semaphore's shape. keymint keeps no names:
// name and username are the email; id is keymint's UUID string.
type semaphoreUser struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Username string `json:"username"`
	Email    string `json:"email"`
	Admin    bool   `json:"admin"`
	External bool   `json:"external"`
}

// semaphoreInfo is the /api/info answer. Semaphore reports its own and
// Ansible's versions there; keymint has the API's.
type semaphoreInfo struct {
	Version string `json:"version"`
}

// loginMetadata answers GET /api/auth/login.
func (s *semaphoreRoutes) loginMetadata(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, semaphoreLoginMetadata{OIDCProviders: []struct{}{}, LoginWithPassword: true})
}

// user answers GET /api/user from GetCurrentUser.
func (s *semaphoreRoutes) user(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, s.errs, http.MethodGet) {
		return
	}
	ctx := metadata.NewOutgoingContext(r.Context(), outgoingMetadata(r))
	u, err := s.accounts.GetCurrentUser(ctx, &keymintv1.GetCurrentUserRequest{})
	if err != nil {
		s.errs.write(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, semaphoreUser{
		ID: u.GetId(), Name: u.GetEmail(), Username: u.GetEmail(), Email: u.GetEmail(), Admin: u.GetAdmin(),
	})
}

// ping answers GET /api/ping with "pong", as Semaphore does.
func (s *semaphoreRoutes) ping(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, s.errs, http.MethodGet) {
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("pong"))
}

// info answers GET /api/info.
func (s *semaphoreRoutes) info(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, s.errs, http.MethodGet) {
		return
	}
	writeJSON(w, http.StatusOK, semaphoreInfo{Version: apiVersion})
}
