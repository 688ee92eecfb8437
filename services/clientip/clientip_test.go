package clientip

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/test/bufconn"
)

func mustTrusted(t *testing.T, list string) *Resolver {
	t.Helper()
	p, err := ParseTrusted(list)
	if err != nil {
		t.Fatal(err)
	}
	return New(p)
}

func TestParseTrusted(t *testing.T) {
	t.Parallel()
	p, err := ParseTrusted(" 10.0.0.0/8, 192.168.1.7 ,2001:db8::/32\n::ffff:172.16.0.1")
	if err != nil || len(p) != 4 || p[1].Bits() != 32 || p[3].Addr().Is4In6() {
		t.Fatalf("ParseTrusted = %v, %v", p, err)
	}
	if p, err := ParseTrusted(""); err != nil || len(p) != 0 {
		t.Fatalf("empty list = %v, %v", p, err)
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "10.0.0", "10.0.0.1/"} {
		if _, err := ParseTrusted(bad); err == nil {
			t.Errorf("ParseTrusted(%q) accepted", bad)
		}
	}
}

func TestFromHTTP(t *testing.T) {
	t.Parallel()
	r := mustTrusted(t, "10.0.0.0/8, 2001:db8:1::/48")
	for _, tc := range []struct {
		name   string
		remote string
		xff    []string
		want   string
	}{
		{"direct, no header", "198.51.100.7:5555", nil, "198.51.100.7"},
		{"untrusted peer's header is ignored", "198.51.100.7:5555", []string{"203.0.113.1"}, "198.51.100.7"},
		{"one trusted proxy", "10.1.2.3:80", []string{"203.0.113.1"}, "203.0.113.1"},
		{"spoofed left entries are skipped", "10.1.2.3:80", []string{"1.1.1.1, 203.0.113.1"}, "203.0.113.1"},
		{"two trusted proxies", "10.1.2.3:80", []string{"1.1.1.1, 203.0.113.1, 10.9.9.9"}, "203.0.113.1"},
		{"several header lines", "10.1.2.3:80", []string{"1.1.1.1", "203.0.113.1", "10.9.9.9"}, "203.0.113.1"},
		{"all trusted: the left-most", "10.1.2.3:80", []string{"10.7.7.7, 10.9.9.9"}, "10.7.7.7"},
		{"garbage stops the walk", "10.1.2.3:80", []string{"203.0.113.1, not-an-ip"}, "10.1.2.3"},
		{"entry with a port", "10.1.2.3:80", []string{"203.0.113.1:4711"}, "203.0.113.1"},
		{"ipv6 proxy and client", "[2001:db8:1::5]:443", []string{"[2001:db8:ff::9]"}, "2001:db8:ff::9"},
		{"mapped ipv4 peer", "[::ffff:10.1.2.3]:80", []string{"203.0.113.1"}, "203.0.113.1"},
		{"no trusted proxy header at all", "10.1.2.3:80", nil, "10.1.2.3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := r.FromHTTP(tc.remote, tc.xff); got.String() != tc.want {
				t.Errorf("FromHTTP(%s, %q) = %s, want %s", tc.remote, tc.xff, got, tc.want)
			}
		})
	}
	// Without trusted proxies the header is never read.
	var none *Resolver
	if got := none.FromHTTP("10.1.2.3:80", []string{"203.0.113.1"}); got.String() != "10.1.2.3" {
		t.Errorf("nil resolver = %s", got)
	}
	if got := r.FromHTTP("garbage", nil); got.IsValid() {
		t.Errorf("unparsable remote = %s, want invalid", got)
	}
}

func grpcCtx(addr net.Addr, kv ...string) context.Context {
	ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: addr})
	return metadata.NewIncomingContext(ctx, metadata.Pairs(kv...))
}

func TestFromGRPC(t *testing.T) {
	t.Parallel()
	// 192.168.0.0/16 is a trusted HTTP proxy range only: its gRPC claims
	// are ignored.
	proxies, err := ParseTrusted("192.168.0.0/16")
	if err != nil {
		t.Fatal(err)
	}
	peers, err := ParseTrusted("10.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	r := New(proxies, peers...)
	untrusted := &net.TCPAddr{IP: net.ParseIP("198.51.100.7"), Port: 4000}
	gatewayPeer := &net.TCPAddr{IP: net.ParseIP("10.0.0.5"), Port: 4000}
	httpProxy := &net.TCPAddr{IP: net.ParseIP("192.168.1.9"), Port: 4000}
	lis := bufconn.Listen(1)
	defer lis.Close()
	inProcess := lis.Addr()

	claims := []string{MetadataIP, "203.0.113.1", MetadataUserAgent, "curl/8", "user-agent", "grpc-go/1.0"}
	for _, tc := range []struct {
		name   string
		ctx    context.Context
		ip, ua string
	}{
		{"untrusted peer's claim is ignored", grpcCtx(untrusted, claims...), "198.51.100.7", "grpc-go/1.0"},
		{"trusted HTTP proxy's gRPC claim is ignored", grpcCtx(httpProxy, claims...), "192.168.1.9", "grpc-go/1.0"},
		{"trusted gateway names the client", grpcCtx(gatewayPeer, claims...), "203.0.113.1", "curl/8"},
		{"in-process gateway names the client", grpcCtx(inProcess, claims...), "203.0.113.1", "curl/8"},
		{"trusted peer without a claim", grpcCtx(gatewayPeer, "user-agent", "grpc-go/1.0"), "10.0.0.5", "grpc-go/1.0"},
		{"bad claimed address", grpcCtx(gatewayPeer, MetadataIP, "nope"), "10.0.0.5", ""},
		{"no peer", context.Background(), "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := r.FromGRPC(tc.ctx)
			if String(got.IP) != tc.ip || got.UserAgent != tc.ua {
				t.Errorf("FromGRPC = %s %q, want %s %q", String(got.IP), got.UserAgent, tc.ip, tc.ua)
			}
		})
	}
}

func TestCleanUserAgent(t *testing.T) {
	t.Parallel()
	if got := CleanUserAgent("a\x00b\nc\u00e9d"); got != "abcd" {
		t.Errorf("CleanUserAgent = %q", got)
	}
	if got := CleanUserAgent(strings.Repeat("x", 1000)); len(got) != MaxUserAgent {
		t.Errorf("long user agent kept %d bytes", len(got))
	}
	if String(netip.Addr{}) != "" {
		t.Error("String of the zero Addr is not empty")
	}
}
