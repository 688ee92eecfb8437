package store

import (
	"encoding/base64"

	"github.com/google/uuid"
)

// PageToken is the API's opaque page token for a list that continues after
// the row with this id (every list pages by id).
func PageToken(lastID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(lastID))
}

// ParsePageToken is the id a PageToken names; ok is false for anything
// PageToken could not have made.
func ParsePageToken(tok string) (lastID string, ok bool) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || uuid.Validate(string(b)) != nil {
		return "", false
	}
	return string(b), true
}
