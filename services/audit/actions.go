package audit

// Actions: what an event records (store.AuditEvent.Action). They are
// stored and listed by these names: never rename one.
const (
	SignInSuccess  = "sign_in.success"
	SignInFailure  = "sign_in.failure"
	SignOut        = "sign_out"
	TokenMint      = "token.mint"
	TokenRevoke    = "token.revoke"
	PasswordChange = "password.change"
	// TokenRotate: a token was rotated; the target is the old token.
	TokenRotate = "token.rotate"
	// TokenLeakRevoke: a token reported as leaked was revoked; the
	// actor is "leak-report", with the reporter's address.
	TokenLeakRevoke = "token.leak_revoke"
	// TokenLeakReport: a secret-scanning partner reported a token
	// found in public and keymint revoked it (if it was not already); the
	// actor is the partner ("github"), Details hold url and source.
	TokenLeakReport  = "token.leak_report"
	OrgPolicyUpdate  = "org.policy_update"
	UserScopesUpdate = "user.scopes_update"
	// The lifecycle of users, service accounts and organizations, by an
	// admin; the target is the user, service account or organization id.
	UserDisable          = "user.disable"
	UserEnable           = "user.enable"
	UserDelete           = "user.delete"
	UserAdminUpdate      = "user.admin_update"
	UserPasswordReset    = "user.password_reset"
	PasswordResetRedeem  = "password.reset"
	ServiceAccountCreate = "service_account.create"
	ServiceAccountDelete = "service_account.delete"
	OrgRename            = "org.rename"
	// Webhook endpoints: created, deleted, a delivery replayed, and
	// disabled by keymint for failing too long (actor "webhooks").
	WebhookCreate   = "webhook.create"
	WebhookDelete   = "webhook.delete"
	WebhookReplay   = "webhook.replay"
	WebhookDisabled = "webhook.disabled"
)
