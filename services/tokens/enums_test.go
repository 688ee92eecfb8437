package tokens

import (
	"testing"

	keymintv1 "github.com/keymint/keymint/proto/keymint/v1"
)

// Every Reason has its own API reason, and every API reason (from the
// generated name table, so a value added to the proto counts) is some
// Reason's: the mapping is a bijection.
func TestReasonToProtoCoversBothEnums(t *testing.T) {
	t.Parallel()
	from := map[keymintv1.ValidateTokenResponse_Reason]Reason{}
	for r := ReasonNone; r < numReasons; r++ {
		p := reasonToProto[r]
		if p == keymintv1.ValidateTokenResponse_REASON_UNSPECIFIED && r != ReasonNone {
			t.Errorf("Reason %d has no API reason in reasonToProto", r)
			continue
		}
		if other, dup := from[p]; dup {
			t.Errorf("Reasons %d and %d both map to %v", other, r, p)
		}
		from[p] = r
	}
	for n, name := range keymintv1.ValidateTokenResponse_Reason_name {
		if _, ok := from[keymintv1.ValidateTokenResponse_Reason(n)]; !ok {
			t.Errorf("API reason %s has no Reason mapped to it", name)
		}
	}
}

func TestStatusToProtoCoversBothEnums(t *testing.T) {
	t.Parallel()
	from := map[keymintv1.TokenStatus]Status{}
	if statusToProto[0] != keymintv1.TokenStatus_TOKEN_STATUS_UNSPECIFIED {
		t.Error("the zero Status, no state, must map to TOKEN_STATUS_UNSPECIFIED")
	}
	for s := StatusActive; s < numStatuses; s++ {
		p := statusToProto[s]
		if p == keymintv1.TokenStatus_TOKEN_STATUS_UNSPECIFIED {
			t.Errorf("Status %d has no API status in statusToProto", s)
			continue
		}
		if other, dup := from[p]; dup {
			t.Errorf("Statuses %d and %d both map to %v", other, s, p)
		}
		from[p] = s
	}
	for n, name := range keymintv1.TokenStatus_name {
		p := keymintv1.TokenStatus(n)
		if _, ok := from[p]; !ok && p != keymintv1.TokenStatus_TOKEN_STATUS_UNSPECIFIED {
			t.Errorf("API status %s has no Status mapped to it", name)
		}
	}
}
