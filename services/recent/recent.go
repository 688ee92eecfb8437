// Package recent is a fixed-size table of values recently built for keys,
// read without locks: the validation paths keep the answer they built for
// a token and answer it again while nothing it was built from changed.
//
// A key's hash picks a bucket of two slots, so two keys whose hashes meet
// are both kept. With one slot a key, as these tables had, 100 tokens in
// 1,024 slots left about one call in ten (one in seven in a bench run)
// rebuilding an answer its slot-mate had just evicted; with two, a key is
// evicted only when two others share its bucket (about one in fifty).
package recent

import "sync/atomic"

// Size is how many values a Table holds at most.
const Size = 1024

// Table holds up to Size values, each in its key's bucket. The zero Table
// is empty and ready. Values are shared with every reader once put: they
// must be read-only from then on.
type Table[V any] struct {
	slots [Size]atomic.Pointer[V]
}

// bucket is the first of h's two slots.
func bucket(h uint64) int { return int(h%(Size/2)) * 2 }

// Get is the value in h's bucket that fresh accepts, or nil.
func (t *Table[V]) Get(h uint64, fresh func(*V) bool) *V {
	i := bucket(h)
	if v := t.slots[i].Load(); v != nil && fresh(v) {
		return v
	}
	if v := t.slots[i+1].Load(); v != nil && fresh(v) {
		return v
	}
	return nil
}

// Put stores v in h's bucket: over the value sameKey reports as an older
// one for v's key, else in an empty slot, else over the slot h's top bit
// picks. Concurrent Puts may overwrite each other's values; the loser's
// key is merely built again on its next Get.
func (t *Table[V]) Put(h uint64, v *V, sameKey func(*V) bool) {
	i := bucket(h)
	pair := t.slots[i : i+2]
	target := &pair[h>>63]
	for j := range pair {
		if old := pair[j].Load(); old != nil && sameKey(old) {
			pair[j].Store(v)
			return
		}
	}
	for j := range pair {
		if pair[j].Load() == nil {
			target = &pair[j]
			break
		}
	}
	target.Store(v)
}
