package ingest

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/security"
)

// writeKeyPrefix makes write keys recognisable in configs and snippets.
const writeKeyPrefix = "wk_"

// NewWriteKey returns a fresh random write key.
func NewWriteKey() string { return writeKeyPrefix + security.RandomString(32) }

// RegisterSourceHooks fills in a write key for sources created without one
// (from the admin UI or the REST API).
func RegisterSourceHooks(app core.App) {
	app.OnRecordCreate("sources").BindFunc(func(e *core.RecordEvent) error {
		if e.Record.GetString("write_key") == "" {
			e.Record.Set("write_key", NewWriteKey())
		}
		e.Record.Set("name", strings.TrimSpace(e.Record.GetString("name")))
		return e.Next()
	})
}

// CreateSource adds a source and returns its record (with write key).
func CreateSource(app core.App, name string) (*core.Record, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return nil, errors.New("source name must not be empty")
	}
	col, err := app.FindCollectionByNameOrId("sources")
	if err != nil {
		return nil, err
	}
	if existing, _ := app.FindFirstRecordByData(col, "name", name); existing != nil {
		return nil, fmt.Errorf("a source named %q already exists", name)
	}
	rec := core.NewRecord(col)
	rec.Set("name", name)
	rec.Set("write_key", NewWriteKey())
	if err := app.Save(rec); err != nil {
		return nil, err
	}
	return rec, nil
}

// sourceByWriteKey finds the enabled source a write key belongs to.
func sourceByWriteKey(app core.App, key string) (*core.Record, error) {
	if !strings.HasPrefix(key, writeKeyPrefix) && len(key) < 8 {
		return nil, errors.New("unknown write key")
	}
	recs, err := app.FindRecordsByFilter("sources", "write_key = {:k}", "", 1, 0, dbx.Params{"k": key})
	if err != nil || len(recs) == 0 {
		return nil, errors.New("unknown write key")
	}
	rec := recs[0]
	// The index lookup is exact; compare again in constant time anyway.
	if subtle.ConstantTimeCompare([]byte(rec.GetString("write_key")), []byte(key)) != 1 {
		return nil, errors.New("unknown write key")
	}
	if rec.GetBool("disabled") {
		return nil, errors.New("source is disabled")
	}
	return rec, nil
}
