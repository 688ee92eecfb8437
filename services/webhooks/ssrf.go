package webhooks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// MaxURLLength bounds an endpoint URL.
const MaxURLLength = 2048

// ErrForbiddenAddress is a URL or dial refused as pointing inside the
// network (loopback, private, link-local, metadata and similar ranges).
var ErrForbiddenAddress = errors.New("address not allowed: loopback, private, link-local or reserved")

// Guard decides which URLs keymint may send to. Unless AllowPrivate, a URL
// must be https and every address its host resolves to must be public; the
// dialer checks the address it actually connects to as well, so a name that
// resolves differently at delivery (DNS rebinding) is still refused.
type Guard struct {
	AllowPrivate bool
	// Resolver resolves hosts at creation; nil is net.DefaultResolver.
	Resolver *net.Resolver
}

// reserved are ranges no webhook should reach beyond what netip's
// predicates cover: "this network", carrier-grade NAT, IETF protocol
// assignments, benchmarking, the old 6to4 relay, reserved and broadcast,
// NAT64 and discard prefixes.
var reserved = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("192.88.99.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("100::/64"),
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("2002::/16"),
}

// Forbidden reports whether ip is off limits (always false with
// AllowPrivate). Cloud metadata services (169.254.169.254, fd00:ec2::254)
// are link-local or private, so they are covered.
func (g Guard) Forbidden(ip netip.Addr) bool {
	if g.AllowPrivate {
		return false
	}
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() {
		return true
	}
	for _, p := range reserved {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// CheckURL validates an endpoint URL: absolute http(s) (https unless
// AllowPrivate), a host, no user info, no fragment, at most MaxURLLength,
// and a host whose every address is allowed.
func (g Guard) CheckURL(ctx context.Context, raw string) (*url.URL, error) {
	u, err := g.checkSyntax(raw)
	if err != nil {
		return nil, err
	}
	if err := g.checkHost(ctx, u.Hostname()); err != nil {
		return nil, err
	}
	return u, nil
}

// checkSyntax is CheckURL without the resolution.
func (g Guard) checkSyntax(raw string) (*url.URL, error) {
	if len(raw) > MaxURLLength {
		return nil, fmt.Errorf("url is longer than %d characters", MaxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return nil, errors.New("url must be absolute, such as https://hooks.example.com/keymint")
	}
	switch {
	case u.Scheme != "https" && !(g.AllowPrivate && u.Scheme == "http"):
		return nil, errors.New("url must use https")
	case u.User != nil:
		return nil, errors.New("url must not carry user info")
	case u.Fragment != "":
		return nil, errors.New("url must not have a fragment")
	}
	return u, nil
}

func (g Guard) checkHost(ctx context.Context, host string) error {
	if g.AllowPrivate {
		return nil
	}
	if ip, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		if g.Forbidden(ip) {
			return ErrForbiddenAddress
		}
		return nil
	}
	r := g.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return fmt.Errorf("url host %q does not resolve", host)
	}
	for _, a := range addrs {
		if g.Forbidden(a) {
			return ErrForbiddenAddress
		}
	}
	return nil
}

// control is a net.Dialer Control func: it runs on the address about to be
// connected to, after resolution, so it sees what DNS answered this time.
func (g Guard) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("dial %s: %w", address, ErrForbiddenAddress)
	}
	if g.Forbidden(ap.Addr()) {
		return fmt.Errorf("dial %s: %w", ap.Addr(), ErrForbiddenAddress)
	}
	return nil
}
