// Package clientip decides which address a request came from, for sign-in
// throttling, the audit log and access logs. A forwarded-for header is only
// believed as far as it was written by a proxy the operator listed as
// trusted: any caller can send one, and taking it blindly would let an
// attacker pick the address every limit is keyed by.
//
// Over HTTP the gateway walks the connection's address and then
// X-Forwarded-For from the right, skipping trusted proxies; the first address
// that is not one is the client. It sends that address to the gRPC server as
// the x-keymint-client-ip metadata key, which the gateway never forwards from
// a caller. The gRPC server believes that key only from a trusted gRPC peer
// (the in-process gateway, or a peer inside a range of its own list, such as
// a separate `keymint gateway`); for any other caller the peer address is the
// client. The two lists are separate: an HTTP proxy trusted to write
// X-Forwarded-For (often a whole pod network) must not thereby be able to
// name any client address over gRPC.
package clientip

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// Metadata keys the gateway sets for the gRPC server. Callers cannot set
// them through the gateway (its header allow-list never forwards them), and
// the server ignores them from peers it does not trust.
const (
	MetadataIP        = "x-keymint-client-ip"
	MetadataUserAgent = "x-keymint-user-agent"
)

// MaxUserAgent bounds the user agent kept for logs and the audit log.
const MaxUserAgent = 256

// inProcessNetwork is the network of the in-process gateway's connection
// (google.golang.org/grpc/test/bufconn): always keymint's own gateway.
const inProcessNetwork = "bufconn"

// Resolver finds a request's client address under a set of trusted HTTP
// proxies and trusted gRPC peers. The zero Resolver (and nil) trusts none.
type Resolver struct {
	trusted []netip.Prefix
	// grpcPeers may send x-keymint-client-ip.
	grpcPeers []netip.Prefix
}

// New returns a Resolver believing X-Forwarded-For from the proxies ranges
// and x-keymint-client-ip from the grpcPeers ranges (and from the
// in-process gateway).
func New(proxies []netip.Prefix, grpcPeers ...netip.Prefix) *Resolver {
	return &Resolver{trusted: proxies, grpcPeers: grpcPeers}
}

// ParseTrusted parses a list of CIDR ranges or single addresses separated
// by commas or spaces, such as "10.0.0.0/8, 192.168.1.7".
func ParseTrusted(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' }) {
		if strings.Contains(f, "/") {
			p, err := netip.ParsePrefix(f)
			if err != nil {
				return nil, fmt.Errorf("trusted proxy %q: not a CIDR range", f)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: not an address or CIDR range", f)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// Trusted reports whether a is a trusted HTTP proxy.
func (r *Resolver) Trusted(a netip.Addr) bool {
	return r != nil && contains(r.trusted, a)
}

// TrustedPeer reports whether a is a gRPC peer trusted to name the client.
func (r *Resolver) TrustedPeer(a netip.Addr) bool {
	return r != nil && contains(r.grpcPeers, a)
}

func contains(list []netip.Prefix, a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	a = a.Unmap()
	for _, p := range list {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// FromHTTP returns the client address of an HTTP request that arrived from
// remoteAddr (host:port) carrying the given X-Forwarded-For header values:
// the right-most address of the chain that is not a trusted proxy. An
// unparsable entry stops the walk at the address to its right. The zero
// Addr means remoteAddr itself was unparsable.
func (r *Resolver) FromHTTP(remoteAddr string, forwardedFor []string) netip.Addr {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	client := ap.Addr().Unmap()
	if !r.Trusted(client) {
		return client
	}
	var hops []string
	for _, v := range forwardedFor {
		hops = append(hops, strings.Split(v, ",")...)
	}
	for i := len(hops) - 1; i >= 0 && r.Trusted(client); i-- {
		a, ok := parseHop(hops[i])
		if !ok {
			break
		}
		client = a
	}
	return client
}

// parseHop parses one X-Forwarded-For entry: an address, perhaps with a
// port, an IPv6 one perhaps in brackets.
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

// Info is who is on the other end of a request, as far as keymint can tell.
type Info struct {
	// IP is the client address; the zero Addr when unknown.
	IP netip.Addr
	// UserAgent is the client's self-description, printable ASCII, at most
	// MaxUserAgent bytes. Callers choose it freely: it is a hint, not a
	// fact.
	UserAgent string
}

// FromGRPC returns the client of a gRPC call: the peer, or, when the peer is
// keymint's own in-process gateway or a trusted gRPC peer, the client the
// gateway named in metadata.
func (r *Resolver) FromGRPC(ctx context.Context) Info {
	var info Info
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return info
	}
	md, _ := metadata.FromIncomingContext(ctx)
	trustedPeer := p.Addr.Network() == inProcessNetwork
	if !trustedPeer {
		info.IP = addrIP(p.Addr)
		trustedPeer = r.TrustedPeer(info.IP)
	}
	if trustedPeer {
		if v := md.Get(MetadataIP); len(v) > 0 {
			if a, err := netip.ParseAddr(v[0]); err == nil {
				info.IP = a.Unmap()
			}
		}
		if v := md.Get(MetadataUserAgent); len(v) > 0 {
			info.UserAgent = CleanUserAgent(v[0])
			return info
		}
	}
	if v := md.Get("user-agent"); len(v) > 0 {
		info.UserAgent = CleanUserAgent(v[0])
	}
	return info
}

// addrIP is the IP of a network address, the zero Addr if it has none.
func addrIP(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(ta.IP)
		return ip.Unmap()
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// CleanUserAgent keeps the printable ASCII of ua, at most MaxUserAgent bytes.
func CleanUserAgent(ua string) string {
	var b strings.Builder
	for i := 0; i < len(ua) && b.Len() < MaxUserAgent; i++ {
		if c := ua[i]; c >= 0x20 && c <= 0x7e {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// String renders a (possibly zero) address for logs and the audit log: ""
// when unknown.
func String(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}
