// Package connlimit bounds the connections a listener keeps open: in total
// (golang.org/x/net/netutil.LimitListener, which stops accepting at the cap
// so further clients wait in the kernel's backlog) and per client address
// (a connection over the address's cap is closed as soon as it is
// accepted). Without such bounds anyone who can reach a port can hold
// connections, and the buffers each one costs, until memory runs out.
package connlimit

import (
	"net"
	"net/netip"
	"sync"

	"golang.org/x/net/netutil"
)

// Config bounds a listener.
type Config struct {
	// Total caps the open connections; 0 means no total cap.
	Total int
	// PerAddr caps the open connections of one remote IP address; 0 means
	// no cap.
	PerAddr int
	// Exempt reports whether an address is free of the PerAddr cap (proxies
	// that carry many clients' traffic); nil exempts none.
	Exempt func(netip.Addr) bool
}

// Listen wraps l with cfg's caps.
func Listen(l net.Listener, cfg Config) net.Listener {
	if cfg.Total > 0 {
		l = netutil.LimitListener(l, cfg.Total)
	}
	if cfg.PerAddr <= 0 {
		return l
	}
	return &perAddr{Listener: l, max: cfg.PerAddr, exempt: cfg.Exempt, open: map[netip.Addr]int{}}
}

// perAddr closes accepted connections whose address already has max open.
type perAddr struct {
	net.Listener
	max    int
	exempt func(netip.Addr) bool
	mu     sync.Mutex
	open   map[netip.Addr]int
	// refused counts connections closed at accept, for tests and metrics.
	refused int64
}

func (p *perAddr) Accept() (net.Conn, error) {
	for {
		c, err := p.Listener.Accept()
		if err != nil {
			return nil, err
		}
		a := remoteIP(c)
		if !a.IsValid() || (p.exempt != nil && p.exempt(a)) {
			return c, nil
		}
		p.mu.Lock()
		if p.open[a] >= p.max {
			p.refused++
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		p.open[a]++
		p.mu.Unlock()
		return &conn{Conn: c, release: func() { p.release(a) }}, nil
	}
}

func (p *perAddr) release(a netip.Addr) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open[a]--; p.open[a] <= 0 {
		delete(p.open, a)
	}
}

// Refused is how many connections a listener from Listen closed for being
// over their address's cap (0 for a listener without one).
func Refused(l net.Listener) int64 {
	p, ok := l.(*perAddr)
	if !ok {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.refused
}

// remoteIP is c's remote IP address, the zero Addr when it has none.
func remoteIP(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		a, _ := netip.AddrFromSlice(ta.IP)
		return a.Unmap()
	}
	return netip.Addr{}
}

// conn gives its address's count back once, on the first Close.
type conn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
