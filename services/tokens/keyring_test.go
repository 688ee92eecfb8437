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
