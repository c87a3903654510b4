package topology

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/bus"
)

// SourcesBucket carries the writer's sources to the front ends. Browser
// write keys are public by design; server sources carry only the hash of
// their secret key, as in SQLite.
const SourcesBucket = "omni_sources"

// sourceRow is one row of the sources table as the front ends need it:
// the same id, so a retried call gets the same event id on any front end.
type sourceRow struct {
	ID         string `json:"id" db:"id"`
	Name       string `json:"name" db:"name"`
	Kind       string `json:"kind" db:"kind"`
	WriteKey   string `json:"write_key" db:"write_key"`
	SecretHash string `json:"secret_hash" db:"secret_hash"`
	Disabled   bool   `json:"disabled" db:"disabled"`
}

func sourcesBucket(ctx context.Context, b *bus.Bus) (jetstream.KeyValue, error) {
	kv, err := b.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      SourcesBucket,
		Description: "sources (write keys) copied from the writer to the front ends",
		MaxBytes:    16 << 20,
		Replicas:    b.Replicas(),
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("sources bucket: %w", err)
	}
	return kv, nil
}

// PublishSources (writer) puts every source in the bucket, removes the
// ones deleted meanwhile, and follows every later change.
func PublishSources(ctx context.Context, app core.App, b *bus.Bus, log *slog.Logger) error {
	kv, err := sourcesBucket(ctx, b)
	if err != nil {
		return err
	}
	var rows []sourceRow
	if err := app.DB().NewQuery("SELECT id, name, kind, write_key, secret_hash, disabled FROM sources").All(&rows); err != nil {
		return fmt.Errorf("sources: %w", err)
	}
	kept := map[string]bool{}
	for _, r := range rows {
		if err := putSource(ctx, kv, r); err != nil {
			return err
		}
		kept[r.ID] = true
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("sources bucket: %w", err)
	}
	for k := range keys.Keys() {
		if !kept[k] {
			_ = kv.Delete(ctx, k)
		}
	}
	put := func(e *core.RecordEvent) error {
		r := e.Record
		row := sourceRow{ID: r.Id, Name: r.GetString("name"), Kind: r.GetString("kind"), WriteKey: r.GetString("write_key"),
			SecretHash: r.GetString("secret_hash"), Disabled: r.GetBool("disabled")}
		if err := putSource(context.Background(), kv, row); err != nil {
			log.Error("sources: not copied to the front ends", "source", r.Id, "err", err)
		}
		return e.Next()
	}
	app.OnRecordAfterCreateSuccess("sources").BindFunc(put)
	app.OnRecordAfterUpdateSuccess("sources").BindFunc(put)
	app.OnRecordAfterDeleteSuccess("sources").BindFunc(func(e *core.RecordEvent) error {
		if err := kv.Delete(context.Background(), e.Record.Id); err != nil {
			log.Error("sources: deletion not copied to the front ends", "source", e.Record.Id, "err", err)
		}
		return e.Next()
	})
	return nil
}

func putSource(ctx context.Context, kv jetstream.KeyValue, r sourceRow) error {
	val, _ := json.Marshal(r)
	if _, err := kv.Put(ctx, r.ID, val); err != nil {
		return fmt.Errorf("sources bucket: %w", err)
	}
	return nil
}

// MirrorSources (front end) copies the bucket into the local sources
// table, returns once the current sources are in, and follows changes
// until stop is called. Rows are written with plain SQL: they are a copy,
// not new sources (no key is generated, no hook runs). A key disabled on
// the writer stops working here within the ingest key cache's TTL.
func MirrorSources(ctx context.Context, app core.App, b *bus.Bus, log *slog.Logger) (stop func(), err error) {
	kv, err := sourcesBucket(ctx, b)
	if err != nil {
		return nil, err
	}
	return bus.Follow(ctx, kv, func(e jetstream.KeyValueEntry) {
		if err := applySource(app, e); err != nil {
			log.Error("sources: not mirrored", "source", e.Key(), "err", err)
		}
	})
}

func applySource(app core.App, e jetstream.KeyValueEntry) error {
	if e.Operation() != jetstream.KeyValuePut {
		_, err := app.DB().NewQuery("DELETE FROM sources WHERE id = {:id}").Bind(dbx.Params{"id": e.Key()}).Execute()
		return err
	}
	var r sourceRow
	if err := json.Unmarshal(e.Value(), &r); err != nil || r.ID != e.Key() {
		return fmt.Errorf("bad entry: %v", err)
	}
	// A source renamed or re-keyed on the writer may collide with the old
	// row's unique indexes until it is replaced: delete, then insert.
	return app.RunInTransaction(func(tx core.App) error {
		if _, err := tx.DB().NewQuery("DELETE FROM sources WHERE id = {:id} OR name = {:name}").Bind(dbx.Params{"id": r.ID, "name": r.Name}).Execute(); err != nil {
			return err
		}
		_, err := tx.DB().NewQuery(`INSERT INTO sources (id, name, kind, write_key, secret_hash, disabled, created, updated)
			VALUES ({:id}, {:name}, {:kind}, {:wk}, {:sh}, {:dis}, strftime('%Y-%m-%d %H:%M:%fZ'), strftime('%Y-%m-%d %H:%M:%fZ'))`).
			Bind(dbx.Params{"id": r.ID, "name": r.Name, "kind": r.Kind, "wk": r.WriteKey, "sh": r.SecretHash, "dis": r.Disabled}).Execute()
		return err
	})
}
