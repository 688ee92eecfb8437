package tokens

import (
	"errors"
	"sync"
)

// Why a stream ended, for its status message.
var (
	errHubClosed       = errors.New("the server is shutting down; resubscribe with since")
	errStreamTooSlow   = errors.New("the stream fell too far behind; resubscribe with since")
	errTooManyStreams  = errors.New("too many revocation streams on this server")
	errTooManyByClient = errors.New("too many revocation streams from this client address")
)

// revocationHub fans applied revocations out to this replica's streams.
// Publishing never blocks: each stream has a queue that grows as needed up
// to a bound, and a stream whose queue is full is cut off (its client
// resumes with since). Streams are bounded in total and per client address.
type revocationHub struct {
	maxStreams, maxPerClient, maxQueue int

	mu       sync.Mutex
	subs     map[*revocationSub]struct{}
	byClient map[string]int
	head     int64
	closed   bool
}

// revocationSub is one stream's queue: what a stream sees of the hub.
type revocationSub struct {
	hub    *revocationHub
	client string
	notify chan struct{} // one pending wake-up
	done   chan struct{} // closed when the stream must end
	// queue and err are guarded by the hub's mu.
	queue []Revocation
	err   error
}

func newRevocationHub(maxStreams, maxPerClient, maxQueue int) *revocationHub {
	return &revocationHub{maxStreams: maxStreams, maxPerClient: maxPerClient, maxQueue: maxQueue,
		subs: map[*revocationSub]struct{}{}, byClient: map[string]int{}}
}

// subscribe registers a stream and returns the head at that instant:
// every revocation after it will be queued.
func (h *revocationHub) subscribe(client string) (*revocationSub, int64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.closed:
		return nil, 0, errHubClosed
	case len(h.subs) >= h.maxStreams:
		return nil, 0, errTooManyStreams
	case h.byClient[client] >= h.maxPerClient:
		return nil, 0, errTooManyByClient
	}
	s := &revocationSub{hub: h, client: client, notify: make(chan struct{}, 1), done: make(chan struct{})}
	h.subs[s] = struct{}{}
	h.byClient[client]++
	return s, h.head, nil
}

// Wakeups signals when events were queued (at most one signal pending).
func (s *revocationSub) Wakeups() <-chan struct{} { return s.notify }

// Ended is closed when the stream must end; Take then says why.
func (s *revocationSub) Ended() <-chan struct{} { return s.done }

// Take returns the queued events (emptying the queue), the hub's head at
// that instant, and why the subscription ended, if it did.
func (s *revocationSub) Take() ([]Revocation, int64, error) { return s.hub.take(s) }

// Close unsubscribes (idempotent).
func (s *revocationSub) Close() { s.hub.unsubscribe(s) }

// unsubscribe removes s (idempotent).
func (h *revocationHub) unsubscribe(s *revocationSub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.endLocked(s, nil)
}

func (h *revocationHub) endLocked(s *revocationSub, err error) {
	if _, ok := h.subs[s]; !ok {
		return
	}
	delete(h.subs, s)
	if h.byClient[s.client]--; h.byClient[s.client] <= 0 {
		delete(h.byClient, s.client)
	}
	s.err, s.queue = err, nil
	close(s.done)
}

// publish queues v for every stream and moves the head.
func (h *revocationHub) publish(v Revocation) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.head = v.Seq
	for s := range h.subs {
		if len(s.queue) >= h.maxQueue {
			h.endLocked(s, errStreamTooSlow)
			continue
		}
		s.queue = append(s.queue, v)
		select {
		case s.notify <- struct{}{}:
		default:
		}
	}
}

// setHead sets the head without an event (the first read of the log).
func (h *revocationHub) setHead(seq int64) {
	h.mu.Lock()
	h.head = seq
	h.mu.Unlock()
}

// take returns s's queued events (emptying the queue, whose memory is
// released rather than kept at its largest) and the head at that instant.
func (h *revocationHub) take(s *revocationSub) ([]Revocation, int64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	q := s.queue
	s.queue = nil
	return q, h.head, s.err
}

func (h *revocationHub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

func (h *revocationHub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for s := range h.subs {
		h.endLocked(s, errHubClosed)
	}
}
