package recent

import (
	"sync"
	"testing"
)

type value struct {
	key     string
	version int
}

func is(key string, version int) func(*value) bool {
	return func(v *value) bool { return v.key == key && v.version == version }
}

func keyOf(key string) func(*value) bool { return func(v *value) bool { return v.key == key } }

// Two keys whose hashes share a bucket are both kept; a newer value of a
// key replaces its older one there, not the other key's. Mutation: Put
// storing in the slot h's top bit picks without looking for an empty one
// evicts a (both hashes pick the same slot).
func TestBucketKeepsTwoKeys(t *testing.T) {
	t.Parallel()
	var tab Table[value]
	ha, hb := uint64(7), uint64(7+Size/2) // one bucket, the same top bit
	tab.Put(ha, &value{"a", 1}, keyOf("a"))
	tab.Put(hb, &value{"b", 1}, keyOf("b"))
	if tab.Get(ha, is("a", 1)) == nil || tab.Get(hb, is("b", 1)) == nil {
		t.Fatal("two keys of one bucket: one was evicted")
	}
	tab.Put(hb, &value{"b", 2}, keyOf("b"))
	if tab.Get(hb, is("b", 1)) != nil || tab.Get(hb, is("b", 2)) == nil {
		t.Error("b's newer value did not replace its older one")
	}
	if tab.Get(ha, is("a", 1)) == nil {
		t.Error("b's newer value evicted a")
	}
	// Other buckets are untouched by all of it.
	if tab.Get(ha+1, keyOf("a")) != nil {
		t.Error("a found in another bucket")
	}
}

// A third key in a full bucket takes the slot its hash's top bit picks;
// the key in the other slot stays.
func TestFullBucketEvictsOne(t *testing.T) {
	t.Parallel()
	var tab Table[value]
	ha, hb := uint64(3), uint64(3+Size/2)
	tab.Put(ha, &value{"a", 1}, keyOf("a")) // slot 0 of the bucket (the first empty)
	tab.Put(hb, &value{"b", 1}, keyOf("b")) // slot 1
	hc := uint64(3+Size) | 1<<63            // the same bucket, top bit 1: slot 1
	tab.Put(hc, &value{"c", 1}, keyOf("c"))
	if tab.Get(hc, is("c", 1)) == nil {
		t.Fatal("c was not kept")
	}
	if tab.Get(ha, is("a", 1)) == nil || tab.Get(hb, is("b", 1)) != nil {
		t.Error("c evicted a, not the slot its hash picks (b's)")
	}
}

// Concurrent readers and writers of shared buckets see only values they
// accept, or none (run with -race).
func TestConcurrentGetPut(t *testing.T) {
	t.Parallel()
	var tab Table[value]
	keys := []string{"a", "b", "c", "d"}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				k := keys[(w+i)%len(keys)]
				h := uint64(len(k)) + uint64((w+i)%len(keys))*Size/2
				if v := tab.Get(h, keyOf(k)); v != nil && v.key != k {
					t.Errorf("Get for %s answered %s", k, v.key)
					return
				}
				tab.Put(h, &value{k, i}, keyOf(k))
			}
		})
	}
	wg.Wait()
}
