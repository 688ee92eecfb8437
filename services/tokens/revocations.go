package tokens

import (
	"sync"
	"time"
)

// Revocation is one revoked token, as WatchRevocations streams it.
type Revocation struct {
	TokenID string
	At      time.Time
}

// RevocationHub fans revocations out to every WatchRevocations stream of
// this replica. Publishers never block: a subscriber that falls behind is cut
// off, and its client resubscribes and clears its cache, which is safe where
// dropping an event silently would not be.
type RevocationHub struct {
	mu     sync.Mutex
	subs   map[*revocationSub]struct{}
	closed bool
	// relay, when set, carries a local revocation to every replica (this one
	// included, through Deliver); if it fails, the revocation is delivered
	// locally so this replica's watchers still hear it.
	relay func(Revocation) error
}

type revocationSub struct {
	ch   chan Revocation
	done chan struct{} // closed when cut off or the hub closes
	once sync.Once
}

func (s *revocationSub) end() { s.once.Do(func() { close(s.done) }) }

// subscriberBuffer absorbs revocation bursts (an admin revoking a batch).
const subscriberBuffer = 1024

// NewRevocationHub returns an empty hub.
func NewRevocationHub() *RevocationHub {
	return &RevocationHub{subs: map[*revocationSub]struct{}{}}
}

// Subscribe returns the revocations channel, a channel closed when the
// subscription ends (fell behind, or the hub closed), and a cancel func.
func (h *RevocationHub) Subscribe() (<-chan Revocation, <-chan struct{}, func()) {
	s := &revocationSub{ch: make(chan Revocation, subscriberBuffer), done: make(chan struct{})}
	h.mu.Lock()
	if h.closed {
		s.end()
	} else {
		h.subs[s] = struct{}{}
	}
	h.mu.Unlock()
	cancel := func() {
		h.mu.Lock()
		delete(h.subs, s)
		h.mu.Unlock()
		s.end()
	}
	return s.ch, s.done, cancel
}

// SetRelay makes Publish go through relay (Redis pub/sub across replicas).
// Call it before serving.
func (h *RevocationHub) SetRelay(relay func(Revocation) error) {
	h.mu.Lock()
	h.relay = relay
	h.mu.Unlock()
}

// Publish announces a revocation made on this replica.
func (h *RevocationHub) Publish(r Revocation) {
	h.mu.Lock()
	relay := h.relay
	h.mu.Unlock()
	if relay != nil && relay(r) == nil {
		return
	}
	h.fanOut(r)
}

// Deliver hands a revocation heard from the relay to this replica's watchers.
func (h *RevocationHub) Deliver(tokenID string, at time.Time) {
	h.fanOut(Revocation{TokenID: tokenID, At: at})
}

// Reset cuts off every current watcher, which then resubscribes and clears
// its cache: used when the relay may have lost messages.
func (h *RevocationHub) Reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		delete(h.subs, s)
		s.end()
	}
}

// fanOut sends r to every subscriber without blocking.
func (h *RevocationHub) fanOut(r Revocation) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		select {
		case s.ch <- r:
		default:
			delete(h.subs, s)
			s.end()
		}
	}
}

// Subscribers is how many streams are watching.
func (h *RevocationHub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// Close ends every subscription (at shutdown, so graceful stop need not wait
// for watch streams) and refuses new ones.
func (h *RevocationHub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for s := range h.subs {
		delete(h.subs, s)
		s.end()
	}
}
