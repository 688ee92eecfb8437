package secretscan

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/keymint/keymint/services/store"
	"github.com/keymint/keymint/services/tokens"
)

// Path is where GitHub posts matches.
const Path = "/v1/secret-scanning/github"

// Reporter is the actor of the audit events GitHub's reports write.
const Reporter = "github"

// Request limits. GitHub batches matches; the limits leave room for
// thousands per request while bounding what one request may hold in memory
// (the body, needed whole for its signature, and the kept matches).
const (
	// MaxBodyBytes bounds a request body.
	MaxBodyBytes = 16 << 20
	// MaxMatches bounds the matches of one request.
	MaxMatches = 20000
	// Field limits of one match; a longer field refuses the request.
	maxTokenBytes  = 1024
	maxURLBytes    = 4096
	maxSourceBytes = 256
	maxTypeBytes   = 256
	// MaxInFlight bounds the requests read at once (each may hold
	// MaxBodyBytes before its signature is checked); more wait up to
	// slotWait for a slot, then get a 503 with Retry-After.
	MaxInFlight = 8
	slotWait    = 5 * time.Second
)

// Tokens classifies reported tokens (tokens.Service).
type Tokens interface {
	LookupReported(ctx context.Context, secrets []string) ([]tokens.ReportedToken, error)
}

// Config configures the handler.
type Config struct {
	Keys   *KeySet
	Tokens Tokens
	Store  store.LeakReports
	// Processor is told when a report was recorded; nil: it finds it on
	// its next pass.
	Processor *Processor
	Logger    *slog.Logger
}

// Handler is GitHub's secret scanning partner endpoint.
type Handler struct {
	cfg   Config
	log   *slog.Logger
	slots chan struct{}
}

// NewHandler returns the endpoint over cfg.
func NewHandler(cfg Config) *Handler {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{cfg: cfg, log: log, slots: make(chan struct{}, MaxInFlight)}
}

// match is one element of GitHub's request array.
type match struct {
	Token  string `json:"token"`
	Type   string `json:"type"`
	URL    string `json:"url"`
	Source string `json:"source"`
}

// label is one element of the answer array, for a token of keymint's
// format: true_positive if it exists, false_positive if it does not. The
// token goes back as its SHA-256 (token_hash), never raw.
type label struct {
	TokenHash string `json:"token_hash"`
	TokenType string `json:"token_type"`
	Label     string `json:"label"`
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]string{"error": code, "message": msg})
	_, _ = w.Write(append(b, '\n'))
}

// ServeHTTP verifies the signature over the raw body, decodes the matches
// one at a time, looks up each token of keymint's format, records the
// known ones, answers the labels, then lets the processor revoke.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use POST")
		return
	}
	keyID, sig := r.Header.Get("Github-Public-Key-Identifier"), r.Header.Get("Github-Public-Key-Signature")
	if keyID == "" || sig == "" {
		// Refused before the body is read: an unsigned request costs nothing.
		writeError(w, http.StatusUnauthorized, "bad_signature", "the request is not signed by a GitHub secret scanning key")
		return
	}
	ctx := r.Context()
	wait := time.NewTimer(slotWait)
	select {
	case h.slots <- struct{}{}:
		wait.Stop()
		defer func() { <-h.slots }()
	case <-wait.C:
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "busy", "too many reports at once; retry shortly")
		return
	case <-ctx.Done():
		wait.Stop()
		return
	}
	if r.ContentLength > MaxBodyBytes {
		writeError(w, http.StatusRequestEntityTooLarge, "too_large", "the body is larger than "+strconv.Itoa(MaxBodyBytes)+" bytes")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, "too_large", "the body is larger than "+strconv.Itoa(MaxBodyBytes)+" bytes")
			return
		}
		writeError(w, http.StatusBadRequest, "bad_request", "could not read the body")
		return
	}
	err = h.cfg.Keys.Verify(ctx, keyID, sig, body)
	if errors.Is(err, ErrNoKeys) {
		w.Header().Set("Retry-After", "60")
		writeError(w, http.StatusServiceUnavailable, "unavailable", "GitHub's signing keys are not loaded yet; retry shortly")
		return
	}
	if err != nil {
		writeError(w, http.StatusUnauthorized, "bad_signature", "the request is not signed by a GitHub secret scanning key")
		return
	}
	matches, status, msg := decodeMatches(body)
	if status != 0 {
		writeError(w, status, "bad_request", msg)
		return
	}
	labels, reports, err := h.classify(ctx, matches)
	if err != nil {
		h.log.ErrorContext(ctx, "secret scanning report not processed", "err", err.Error())
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the report could not be processed; retry shortly")
		return
	}
	// Recorded before the answer: once GitHub has its answer, the
	// revocations are owed whatever happens to this process.
	if err := h.cfg.Store.RecordLeakReports(ctx, reports); err != nil {
		h.log.ErrorContext(ctx, "secret scanning report not recorded", "err", err.Error())
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the report could not be recorded; retry shortly")
		return
	}
	out, _ := json.Marshal(labels)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(out, '\n'))
	h.log.InfoContext(ctx, "secret scanning report received", "reporter", Reporter, "matches", len(matches),
		"labels", len(labels), "recorded", len(reports))
	if len(reports) > 0 && h.cfg.Processor != nil {
		h.cfg.Processor.Kick()
	}
}

// decodeMatches reads GitHub's array one element at a time (no tree of
// the whole document is built), refusing more than MaxMatches elements or
// an oversized field. status is 0 on success.
func decodeMatches(body []byte) (matches []match, status int, msg string) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('[') {
		return nil, http.StatusBadRequest, "the body must be a JSON array of {token, type, url, source}"
	}
	for dec.More() {
		if len(matches) == MaxMatches {
			return nil, http.StatusRequestEntityTooLarge, "at most " + strconv.Itoa(MaxMatches) + " matches per request"
		}
		var m match
		if err := dec.Decode(&m); err != nil {
			return nil, http.StatusBadRequest, "each match must be an object {token, type, url, source}"
		}
		if len(m.Token) > maxTokenBytes || len(m.URL) > maxURLBytes || len(m.Source) > maxSourceBytes || len(m.Type) > maxTypeBytes {
			return nil, http.StatusBadRequest, "a match field is longer than allowed"
		}
		matches = append(matches, m)
	}
	if t, err := dec.Token(); err != nil || t != json.Delim(']') {
		return nil, http.StatusBadRequest, "the body must be a JSON array of {token, type, url, source}"
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, http.StatusBadRequest, "nothing may follow the array"
	}
	return matches, 0, ""
}

// classify looks up each distinct token of keymint's format (one bulk
// lookup): a label for it, and a report per distinct place a known one
// was found.
func (h *Handler) classify(ctx context.Context, matches []match) ([]label, []store.LeakReport, error) {
	index := make(map[string]int, len(matches))
	var distinct []string
	for _, m := range matches {
		if _, ok := index[m.Token]; !ok {
			index[m.Token] = len(distinct)
			distinct = append(distinct, m.Token)
		}
	}
	kinds, err := h.cfg.Tokens.LookupReported(ctx, distinct)
	if err != nil {
		return nil, nil, err
	}
	labels := []label{}
	labelled := make([]bool, len(distinct))
	places := make(map[[2]string]bool)
	var reports []store.LeakReport
	now := time.Now().UTC().Truncate(time.Microsecond)
	for _, m := range matches {
		i := index[m.Token]
		k := kinds[i]
		if !labelled[i] && k.Kind != tokens.ReportedNotOurs {
			labelled[i] = true
			sum := sha256.Sum256([]byte(m.Token))
			l := label{TokenHash: hex.EncodeToString(sum[:]), TokenType: m.Type, Label: "false_positive"}
			if k.Kind == tokens.ReportedKnown {
				l.Label = "true_positive"
			}
			labels = append(labels, l)
		}
		if k.Kind != tokens.ReportedKnown || places[[2]string{k.Token.ID, m.URL}] {
			continue
		}
		places[[2]string{k.Token.ID, m.URL}] = true
		reports = append(reports, store.LeakReport{ID: uuid.NewString(), TokenID: k.Token.ID, Reporter: Reporter,
			URL: m.URL, Source: m.Source, ReceivedAt: now})
	}
	return labels, reports, nil
}
