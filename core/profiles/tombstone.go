package profiles

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/api"
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

func (t *tombstones) remove(hash string) {
	t.mu.Lock()
	delete(t.set, hash)
	t.mu.Unlock()
}

// RemoveTombstone lets an erased identity be resolved again, and reports
// whether it had a tombstone. Only an owner can do this
// (DELETE /api/v1/tombstones/{kind}/{value}): no event lifts a tombstone,
// whatever its source, since a tracking write key is public and a consent
// event is easy to forge. value is normalised like an event's identity.
func (m *Module) RemoveTombstone(app core.App, kind, value string) (bool, error) {
	value = strings.TrimSpace(value)
	switch kind {
	case events.Email:
		value = events.NormalizeEmail(value)
	case events.Phone:
		value, _ = events.Normalizer{DefaultRegion: m.region()}.Phone(value)
	}
	if value == "" {
		return false, nil
	}
	h := IdentityHash(kind, value)
	res, err := app.DB().NewQuery("DELETE FROM profile_tombstones WHERE hash={:h}").Bind(dbx.Params{"h": h}).Execute()
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	// After the commit: a batch that still saw the tombstone ran before
	// the removal. The lock is the set's own, never the batch cache's
	// (that one is held inside the writer's transaction).
	m.tomb.remove(h)
	return n > 0, nil
}

func (m *Module) handleRemoveTombstone(e *core.RequestEvent) error {
	kind, value := e.Request.PathValue("kind"), e.Request.PathValue("value")
	if !events.KnownIdentity(kind) {
		return api.FieldError(http.StatusBadRequest, "kind", "validation_unknown_kind",
			strconv.Quote(kind)+" is not an identity kind ("+strings.Join(events.IdentityKinds, ", ")+")")
	}
	removed, err := m.RemoveTombstone(e.App, kind, value)
	if err != nil {
		return api.Internal("Could not remove the tombstone.", err)
	}
	if !removed {
		return api.Error(http.StatusNotFound, "No tombstone for "+kind+" "+strconv.Quote(value)+" (was it erased?)")
	}
	m.log.Info("tombstone removed by an owner", "kind", kind, "hash", IdentityHash(kind, value)[:12])
	return e.JSON(http.StatusOK, map[string]any{"removed": true, "kind": kind})
}
