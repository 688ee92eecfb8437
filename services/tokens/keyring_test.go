package tokens

import (
	"bytes"
	"strings"
	"testing"
)

func TestKeyringRotation(t *testing.T) {
	t.Parallel()
	oldText, _ := GeneratePepperFile("old")
	newText, _ := GeneratePepperFile("new")
	oldRing, err := ParseKeyring(oldText)
	if err != nil {
		t.Fatal(err)
	}
	// After rotation the new pepper is primary and the old still verifies.
	rotated, err := ParseKeyring(newText + oldText)
	if err != nil {
		t.Fatal(err)
	}
	secret := "km_example"
	oldDigest := oldRing.Primary(secret)
	all := rotated.All(secret)
	if len(all) != 2 || !bytes.Equal(all[1], oldDigest) || bytes.Equal(all[0], oldDigest) {
		t.Fatal("rotated ring does not offer the old digest second")
	}
	if rotated.PrimaryID() != "new" || !rotated.Matches("old", oldDigest, secret) || rotated.Matches("new", oldDigest, secret) {
		t.Fatal("Matches does not follow pepper ids")
	}
	if rotated.Matches("old", oldDigest, secret+"x") {
		t.Fatal("Matches accepted another secret")
	}
}

func TestParseKeyringErrorsNeverEchoKeys(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"",
		"nokey",
		"a:!!notbase64!!",
		"a:" + strings.Repeat("A", 20), // too short
		"a:" + strings.Repeat("A", 44) + ",a:" + strings.Repeat("B", 44), // duplicate id
	} {
		_, err := ParseKeyring(in)
		if err == nil {
			t.Fatalf("accepted %q", in)
		}
		if strings.Contains(err.Error(), "AAAA") || strings.Contains(err.Error(), "notbase64") {
			t.Fatalf("error echoes key material: %v", err)
		}
	}
}

// A malformed entry is named by its position among the entries (blank and
// comment lines not counted), never by its text: shown failing on
// ParseKeyring's `len(peppers)+1` → `len(peppers)-1`, a gremlins survivor,
// and on NewKeyring's `i+1` → `i-1` (not covered before).
func TestParseKeyringNamesTheBadEntry(t *testing.T) {
	t.Parallel()
	key := strings.Repeat("A", 43) + "="
	_, err := ParseKeyring("# ring\n\na:" + key + ", b:" + key + "\nsecret-without-colon\n")
	if err == nil || err.Error() != "pepper 3: want id:base64key" {
		t.Fatalf("the third entry without a colon: %v", err)
	}
	// NewKeyring's own check, the same way (keyring.go:40 `i+1` → `i-1`).
	_, err = ParseKeyring("a:" + key + "\nb c:" + key)
	if err == nil || err.Error() != "pepper 2: id must be non-empty, without ':', ',' or spaces" {
		t.Fatalf("the second entry's id with a space: %v", err)
	}
}
