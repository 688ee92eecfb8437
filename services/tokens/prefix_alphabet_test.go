package tokens

import "testing"

// TestPrefixAlphabetEdges: --token-prefix is 1-16 lower-case letters and
// digits, a letter first (README, configuration), edges included: a, z, 0
// and 9 are in; the characters just outside each range (` { / :) are out.
//
// Mutation (gremlins, lived before this test): services/tokens/format.go
// NewFormat `c <= 'z'` → `c < 'z'` (a prefix with a z refused), and the same
// for the other three bounds.
func TestPrefixAlphabetEdges(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"a", "z", "za", "az", "a0", "a9", "z09az"} {
		if _, err := NewFormat(p); err != nil {
			t.Errorf("prefix %q refused: %v", p, err)
		}
	}
	for _, p := range []string{"`", "{", "a`", "a{", "a/", "a:", "0", "9a"} {
		if _, err := NewFormat(p); err == nil {
			t.Errorf("prefix %q accepted", p)
		}
	}
}
