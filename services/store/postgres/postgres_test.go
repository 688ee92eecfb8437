package postgres_test

import (
	"testing"

	"github.com/keymint/keymint/services/store"
	"github.com/keymint/keymint/services/store/postgres"
	"github.com/keymint/keymint/services/store/postgres/pgtest"
	"github.com/keymint/keymint/services/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := postgres.Open(t.Context(), pgtest.NewDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
