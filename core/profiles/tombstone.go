package profiles

import (
	"crypto/sha256"
	"encoding/hex"
	"sync"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/events"
)

// IdentityHash is what a tombstone keeps of an erased identity.
func IdentityHash(kind, value string) string {
	h := sha256.Sum256([]byte(kind + ":" + value))
	return hex.EncodeToString(h[:])
}

// tombstones is the in-memory set of erased identity hashes (erasures are
// rare, so the whole set fits in memory and the hot path never queries it).
type tombstones struct {
	mu  sync.RWMutex
	set map[string]struct{}
}

func (t *tombstones) load(app core.App) error {
	var hashes []string
	if err := app.DB().NewQuery("SELECT hash FROM profile_tombstones").Column(&hashes); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.set = make(map[string]struct{}, len(hashes))
	for _, h := range hashes {
		t.set[h] = struct{}{}
	}
	return nil
}

func (t *tombstones) has(kind, value string) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if len(t.set) == 0 {
		return false
	}
	_, ok := t.set[IdentityHash(kind, value)]
	return ok
}

func (t *tombstones) add(hashes ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.set == nil {
		t.set = map[string]struct{}{}
	}
	for _, h := range hashes {
		t.set[h] = struct{}{}
	}
}

// lift removes the tombstones of ids (new consent was given).
func (t *tombstones) lift(tx core.App, ids events.Identities) error {
	var hs []string
	for k, v := range ids {
		if t.has(k, v) {
			hs = append(hs, IdentityHash(k, v))
		}
	}
	if len(hs) == 0 {
		return nil
	}
	for _, h := range hs {
		if _, err := tx.DB().NewQuery("DELETE FROM profile_tombstones WHERE hash={:h}").Bind(dbx.Params{"h": h}).Execute(); err != nil {
			return err
		}
	}
	t.mu.Lock()
	for _, h := range hs {
		delete(t.set, h)
	}
	t.mu.Unlock()
	return nil
}
