package client

import (
	"net/netip"
	"testing"
)

// AllowsIP: anywhere without allowed CIDRs; with them, only from inside one
// (an unknown address and an unreadable prefix match nothing). Mutations it
// fails on: `len(id.AllowedCIDRs) == 0` negated.
func TestAllowsIP(t *testing.T) {
	t.Parallel()
	in, out := netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("192.0.2.1")
	open := &Identity{}
	if !open.AllowsIP(in) || !open.AllowsIP(netip.Addr{}) {
		t.Error("a token without allowed CIDRs refused")
	}
	listed := &Identity{AllowedCIDRs: []netip.Prefix{{}, netip.MustParsePrefix("10.0.0.0/8")}}
	if !listed.AllowsIP(in) {
		t.Error("an address inside an allowed CIDR refused")
	}
	if listed.AllowsIP(out) || listed.AllowsIP(netip.Addr{}) {
		t.Error("an address outside every allowed CIDR, or an unknown one, allowed")
	}
	unreadable := &Identity{AllowedCIDRs: []netip.Prefix{{}}}
	if unreadable.AllowsIP(in) {
		t.Error("an unreadable allow-list allowed an address")
	}
}

func TestHasScopes(t *testing.T) {
	t.Parallel()
	id := &Identity{Scopes: sortedCopy([]string{"reports:read", "a"})}
	if !id.HasScopes() || !id.HasScopes("a", "reports:read") {
		t.Error("held scopes refused")
	}
	if id.HasScopes("a", "reports:write") {
		t.Error("a scope not held allowed")
	}
}
