// Package store holds the SQL helpers shared by the packages that write
// PocketBase tables with plain SQL on hot paths (events, profiles, relay,
// dead letters). The collections themselves are in store/migrations.
package store

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/types"
)

// NewRecordID returns a PocketBase-shaped record id (15 chars of [a-z0-9])
// that starts with the time in milliseconds, so inserts append to the id
// index instead of splitting pages at random, then 7 random characters.
func NewRecordID() string {
	const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
	var b [15]byte
	ms := uint64(time.Now().UnixMilli())
	for i := 7; i >= 0; i-- {
		b[i] = alphabet[ms%36]
		ms /= 36
	}
	r := rand.Uint64()
	for i := 8; i < 15; i++ {
		b[i] = alphabet[r%36]
		r /= 36
	}
	return string(b[:])
}

// FormatTime renders a time the way PocketBase stores dates, so rows
// written with plain SQL sort and filter like any other date field.
func FormatTime(t time.Time) string {
	return t.UTC().Format(types.DefaultDateLayout)
}

// Executor returns the raw SQL executor of a (transaction) app. Hot paths
// use its prepared statements directly: dbx's named-parameter parsing and
// query hooks cost more than SQLite's own work for small rows.
func Executor(tx core.App) dbx.Executor {
	type executorOf interface{ Executor() dbx.Executor }
	switch db := tx.DB().(type) {
	case *dbx.Tx:
		return db.Builder.(executorOf).Executor()
	case *dbx.DB:
		return db.Builder.(executorOf).Executor()
	case executorOf:
		return db.Executor()
	}
	panic(fmt.Sprintf("store: no SQL executor in %T", tx.DB()))
}

// SurvivingProfile follows merges from a profile id to the profile that
// holds the customer now (a merge moves the customer's rows to the
// survivor). sql.ErrNoRows when the id is no profile, nor is a link of
// its chain (or the chain does not end within 64 hops).
func SurvivingProfile(db dbx.Builder, id string) (string, error) {
	for range 64 {
		var into string
		if err := db.NewQuery("SELECT merged_into FROM profiles WHERE id={:id}").Bind(dbx.Params{"id": id}).Row(&into); err != nil {
			return "", err
		}
		if into == "" {
			return id, nil
		}
		id = into
	}
	return "", sql.ErrNoRows
}

// profileSyncKey holds, in the app's store, the profiles writer's CatchUp.
const profileSyncKey = "omni.profiles.sync"

// SetProfileSync registers the profiles module's write-behind catch-up
// (profiles.Module.CatchUp) on app.
func SetProfileSync(app core.App, sync func(app core.App, ids ...string) error) {
	app.Store().Set(profileSyncKey, sync)
}

// SyncProfiles has the profiles writer write what it holds back of the
// given profiles' rows (the columns events derive: computed values, last
// seen, orders, stages wait up to profiles.write_delay), in app's
// transaction when app is one. A module that reads those columns with SQL
// and acts on them at once (a send's template, a journey's branch) calls
// it first; no ids means every profile (a report over all of them). A
// failure is the caller's to report or ignore: the rows then read as last
// written.
func SyncProfiles(app core.App, ids ...string) error {
	sync, _ := app.Store().Get(profileSyncKey).(func(core.App, ...string) error)
	if sync == nil {
		return nil
	}
	return sync(app, ids...)
}
