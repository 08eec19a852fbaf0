package server

import "sync"

// Locks is a set of mutexes by key (one per account) that holds an entry
// only while someone holds or waits for it. The roster and offline modules
// each kept a sync.Map with one mutex for every account they had ever
// seen, which grew without bound on a server that lives for months (and
// with every name a stranger made them look up); striping by hash would
// bound it too, but would let one account's long offline delivery stall
// another account's writes.
type Locks struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	mu   sync.Mutex
	refs int // holders and waiters
}

// Lock locks key and returns the function that unlocks it, to be called
// exactly once.
func (l *Locks) Lock(key string) (unlock func()) {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*keyLock{}
	}
	k := l.m[key]
	if k == nil {
		k = new(keyLock)
		l.m[key] = k
	}
	k.refs++
	l.mu.Unlock()
	k.mu.Lock()
	return func() {
		k.mu.Unlock()
		l.mu.Lock()
		if k.refs--; k.refs == 0 {
			delete(l.m, key)
		}
		l.mu.Unlock()
	}
}

// Len is how many keys are held or waited for.
func (l *Locks) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}
