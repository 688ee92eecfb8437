package gateway

import (
	"embed"
	"io/fs"
	"mime"
	"net/http"
	"path"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
)

// The token page: plain HTML, CSS and JavaScript embedded in the binary, no
// build step. It talks to the same JSON routes as any other client.
//
//go:embed web/index.html web/app.js web/style.css web/docs.html web/docs.js web/docs.css
var webFiles embed.FS

// Security headers of every response. The API answers JSON only, so nothing
// may load from it or frame it; the page relaxes that to its own files.
const (
	apiCSP  = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
	pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

// webPage serves the page at / and its files under /ui/.
type webPage struct {
	files fs.FS
	errs  *errorWriter
}

func newWebPage(errs *errorWriter) *webPage {
	sub, err := fs.Sub(webFiles, "web")
	if err != nil {
		panic(err) // the directory is embedded at build time; this cannot fail
	}
	return &webPage{files: sub, errs: errs}
}

// index serves the page itself: GET /.
func (p *webPage) index(w http.ResponseWriter, r *http.Request) {
	p.serve(w, r, "index.html")
}

// asset serves one of the page's files: GET /ui/{file}.
func (p *webPage) asset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	if name == "index.html" {
		http.Redirect(w, r, "/", http.StatusFound)
		return
	}
	p.serve(w, r, name)
}

func (p *webPage) serve(w http.ResponseWriter, r *http.Request, name string) {
	if !allowMethods(w, r, p.errs, http.MethodGet, http.MethodHead) {
		return
	}
	b, err := fs.ReadFile(p.files, name)
	if err != nil {
		p.errs.write(w, r, routingError(http.StatusNotFound))
		return
	}
	h := w.Header()
	h.Set("Content-Security-Policy", pageCSP)
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	h.Set("Content-Type", ct)
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
}

// docs serves the API reference page: GET /docs.
func (p *webPage) docs(w http.ResponseWriter, r *http.Request) {
	p.serve(w, r, "docs.html")
}

// openAPI serves the OpenAPI document generated from the protos.
func (p *webPage) openAPI(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, p.errs, http.MethodGet, http.MethodHead) {
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(keymintv1.OpenAPI)
	}
}
