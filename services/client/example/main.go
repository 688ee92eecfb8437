// Command example is a tiny resource service behind keymint: GET /reports
// needs a token with reports:read, GET /whoami any valid token.
//
//	go run ./services/client/example --keymint 127.0.0.1:9090 --listen 127.0.0.1:8081
//	curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8081/whoami
package main

import (
	"context"
	"encoding/json"
	"flag"
	"log"
	"net/http"
	"os"
	"os/signal"
	"time"

	"github.com/keymint/keymint/services/client"
)

func main() {
	target := flag.String("keymint", "127.0.0.1:9090", "keymint gRPC address")
	listen := flag.String("listen", "127.0.0.1:8081", "listen address")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	v, err := client.NewValidator(ctx, client.ValidatorConfig{Target: *target})
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()

	mux := http.NewServeMux()
	mux.Handle("GET /reports", v.Middleware("reports:read")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := client.IdentityFrom(r.Context())
		_ = json.NewEncoder(w).Encode(map[string]any{"reports": []string{"q3", "q4"}, "for_org": id.OrganizationID})
	})))
	mux.Handle("GET /whoami", v.Middleware()(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := client.IdentityFrom(r.Context())
		_ = json.NewEncoder(w).Encode(id)
	})))
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Printf("example resource service on http://%s (keymint at %s)", *listen, *target)
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
