package ingest

import (
	"sync"
	"time"

	"github.com/pocketbase/pocketbase/core"
)

// source is what a request needs to know about its write key's source.
type source struct {
	id   string // record id: scopes the source's event ids
	name string
	kind string // KindBrowser or KindServer
}

func (s *source) browser() bool { return s.kind != KindServer }

// keyCache remembers keys (by their hash, so no secret key is kept in
// memory) for a short while so a tracking call does
// not query SQLite for its key. Any change to a source through PocketBase
// clears it; the TTL bounds staleness from changes made by another process.
type keyCache struct {
	mu      sync.Mutex
	entries map[string]keyEntry
	ttl     time.Duration
}

type keyEntry struct {
	src     *source
	expires time.Time
}

const keyCacheMax = 10000

func newKeyCache(app core.App) *keyCache {
	c := &keyCache{entries: map[string]keyEntry{}, ttl: 30 * time.Second}
	clear := func(e *core.RecordEvent) error {
		c.mu.Lock()
		c.entries = map[string]keyEntry{}
		c.mu.Unlock()
		return e.Next()
	}
	app.OnRecordAfterCreateSuccess("sources").BindFunc(clear)
	app.OnRecordAfterUpdateSuccess("sources").BindFunc(clear)
	app.OnRecordAfterDeleteSuccess("sources").BindFunc(clear)
	return c
}

// lookup returns the enabled source of key. Unknown keys are not cached, so
// a key created by `omni source create` works at once.
func (c *keyCache) lookup(app core.App, key string) (*source, error) {
	now := time.Now()
	ck := keyHash(key)
	c.mu.Lock()
	ent, ok := c.entries[ck]
	c.mu.Unlock()
	if ok && now.Before(ent.expires) {
		return ent.src, nil
	}
	rec, err := sourceByKey(app, key)
	if err != nil {
		return nil, err
	}
	src := &source{id: rec.Id, name: rec.GetString("name"), kind: rec.GetString("kind")}
	c.mu.Lock()
	if len(c.entries) >= keyCacheMax {
		c.entries = map[string]keyEntry{}
	}
	c.entries[ck] = keyEntry{src: src, expires: now.Add(c.ttl)}
	c.mu.Unlock()
	return src, nil
}
