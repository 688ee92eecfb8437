package tokens

import keymintv1 "github.com/keymint/keymint/proto/keymint/v1"

// The API's enums are mapped by these tables, not by numeric order: the
// proto numbering is a wire contract and tokens' own is not. enums_test.go
// fails when either side gains a value without a row here.

// reasonToProto is the ValidateTokenResponse reason for each Reason. An
// array, not a map: it is on the validation hot path.
var reasonToProto = [numReasons]keymintv1.ValidateTokenResponse_Reason{
	ReasonNone:              keymintv1.ValidateTokenResponse_REASON_UNSPECIFIED,
	ReasonMalformed:         keymintv1.ValidateTokenResponse_MALFORMED,
	ReasonNotFound:          keymintv1.ValidateTokenResponse_NOT_FOUND,
	ReasonExpired:           keymintv1.ValidateTokenResponse_EXPIRED,
	ReasonRevoked:           keymintv1.ValidateTokenResponse_REVOKED,
	ReasonInsufficientScope: keymintv1.ValidateTokenResponse_INSUFFICIENT_SCOPE,
	ReasonRateLimited:       keymintv1.ValidateTokenResponse_RATE_LIMITED,
	ReasonUsageExhausted:    keymintv1.ValidateTokenResponse_USAGE_EXHAUSTED,
	ReasonIPNotAllowed:      keymintv1.ValidateTokenResponse_IP_NOT_ALLOWED,
	ReasonOwnerDisabled:     keymintv1.ValidateTokenResponse_OWNER_DISABLED,
}

// statusToProto is the API's TokenStatus for each Status (0 is no state).
var statusToProto = [numStatuses]keymintv1.TokenStatus{
	StatusActive:  keymintv1.TokenStatus_TOKEN_STATUS_ACTIVE,
	StatusExpired: keymintv1.TokenStatus_TOKEN_STATUS_EXPIRED,
	StatusRevoked: keymintv1.TokenStatus_TOKEN_STATUS_REVOKED,
}
