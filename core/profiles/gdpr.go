package profiles

import (
	"errors"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/api"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/relay"
)

// Export is everything held on one person.
type Export struct {
	ExportedAt string           `json:"exported_at"`
	Profile    *Detail          `json:"profile"`
	Events     []*TimelineEvent `json:"events"`
	// Records are other modules' rows about this person, by collection
	// (conversations, journey runs, …: see app.Setup.PersonOwned).
	Records map[string][]*core.Record `json:"records,omitempty"`
}

// ExportProfile gathers a profile, its events and other modules' rows.
func (m *Module) ExportProfile(app core.App, id string) (*Export, error) {
	if err := m.CatchUp(app, id); err != nil {
		return nil, err
	}
	d, err := Get(app, id)
	if err != nil {
		return nil, err
	}
	x := &Export{ExportedAt: m.now().UTC().Format(time.RFC3339), Profile: d, Events: []*TimelineEvent{}}
	ids := append([]string{d.ID}, d.MergedFrom...)
	in, ip := inList("i", ids)
	if err := app.DB().NewQuery("SELECT " + eventCols + " FROM events WHERE profile IN (" + in + ") ORDER BY occurred_at, id").Bind(ip).All(&x.Events); err != nil {
		return nil, err
	}
	for _, ev := range x.Events {
		ev.fill()
	}
	for _, t := range m.movable(app) {
		recs, err := app.FindAllRecords(t.name, dbx.In(t.field, toAny(ids)...))
		if err != nil {
			return nil, err
		}
		if len(recs) > 0 {
			if x.Records == nil {
				x.Records = map[string][]*core.Record{}
			}
			x.Records[t.name] = append(x.Records[t.name], recs...)
		}
	}
	return x, nil
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func (m *Module) handleExport(e *core.RequestEvent) error {
	x, err := m.ExportProfile(e.App, e.Request.PathValue("id"))
	if errors.Is(err, ErrNotFound) {
		return noProfile(e)
	}
	if err != nil {
		return api.Internal("Could not export the profile.", err)
	}
	e.Response.Header().Set("Content-Disposition", `attachment; filename="profile-`+x.Profile.ID+`.json"`)
	return e.JSON(200, x)
}

// Erased reports what an erasure removed.
type Erased struct {
	Erased     string `json:"erased"`
	Profiles   int    `json:"profiles"`
	Identities int    `json:"identities"`
	Events     int64  `json:"events"`
}

// Erase deletes a person (and every profile merged into it), writes
// tombstones for their identities and publishes profile.erased.
func (m *Module) Erase(app core.App, id string) (*Erased, error) {
	var out *Erased
	var hashes []string
	var idents []IdentityRow
	var survivor *profile
	var erasedEvents []*events.Event
	restore := func() {}
	err := app.RunInTransaction(func(tx core.App) error {
		row, err := findProfile(tx, id)
		if err != nil {
			return err
		}
		var ids []string
		if err := tx.DB().NewQuery("SELECT id FROM profiles WHERE merged_into={:id} AND merged_into != ''").Bind(dbx.Params{"id": row.ID}).Column(&ids); err != nil {
			return err
		}
		ids = append([]string{row.ID}, ids...)
		// Nothing of theirs may wait to be written, nor be decoded again.
		var err2 error
		if restore, err2 = m.catchUp(tx, ids, true); err2 != nil {
			return err2
		}
		in, ip := inList("i", ids)
		idents = nil
		if err := tx.DB().NewQuery("SELECT kind, value, created FROM identities WHERE profile IN (" + in + ")").Bind(ip).All(&idents); err != nil {
			return err
		}
		survivor = &profile{id: row.ID, ids: map[string][]string{}}
		hashes = hashes[:0]
		now := m.now().UTC().Format(dbTime)
		for _, it := range idents {
			survivor.ids[it.Kind] = append(survivor.ids[it.Kind], it.Value)
			h := IdentityHash(it.Kind, it.Value)
			hashes = append(hashes, h)
			if _, err := tx.DB().NewQuery("INSERT INTO profile_tombstones (id, hash, kind, profile, created) VALUES ({:id},{:h},{:k},{:p},{:c}) ON CONFLICT(hash) DO NOTHING").
				Bind(dbx.Params{"id": newID(), "h": h, "k": it.Kind, "p": row.ID, "c": now}).Execute(); err != nil {
				return err
			}
		}
		res, err := tx.DB().NewQuery("DELETE FROM events WHERE profile IN (" + in + ")").Bind(ip).Execute()
		if err != nil {
			return err
		}
		nev, _ := res.RowsAffected()
		for _, q := range []string{
			"DELETE FROM identities WHERE profile IN (" + in + ")",
			"DELETE FROM segment_members WHERE profile IN (" + in + ")",
			"DELETE FROM profile_search WHERE profile IN (" + in + ")", // no search finds an erased person
			"DELETE FROM profile_conflicts WHERE profile_a IN (" + in + ") OR profile_b IN (" + in + ")",
			"DELETE FROM profile_merges WHERE survivor IN (" + in + ") OR loser IN (" + in + ")",
			"DELETE FROM profile_pair_blocks WHERE profile_a IN (" + in + ") OR profile_b IN (" + in + ")", // they name an identifier
			"DELETE FROM profiles WHERE id IN (" + in + ")",
		} {
			if _, err := tx.DB().NewQuery(q).Bind(ip).Execute(); err != nil {
				return err
			}
		}
		for _, t := range m.movable(tx) {
			if _, err := tx.DB().NewQuery("DELETE FROM " + t.name + " WHERE " + t.field + " IN (" + in + ")").Bind(ip).Execute(); err != nil {
				return err
			}
		}
		out = &Erased{Erased: row.ID, Profiles: len(ids), Identities: len(idents), Events: nev}
		m.forgetCache()
		// In memory before commit: no batch may resolve these identities
		// once the erasure is visible.
		m.tomb.add(hashes...)
		// profile.erased tells connectors to propagate the erasure; staged
		// in this transaction so it is published even after a crash.
		erasedEvents = nil
		if len(idents) > 0 {
			all := make([]map[string]string, len(idents))
			for i, it := range idents {
				all[i] = map[string]string{"kind": it.Kind, "value": it.Value}
			}
			ev := systemEvent(events.ProfileErased, "erase:"+out.Erased, survivor, m.now().UTC(),
				map[string]any{"profile_id": out.Erased, "identity_hashes": hashes, "identities": all})
			for k, v := range survivor.ids {
				ev.Identities[k] = v[0]
			}
			erasedEvents = []*events.Event{ev}
		}
		return relay.Stage(tx, erasedEvents)
	})
	if err != nil {
		restore()
		if lerr := m.tomb.load(app); lerr != nil {
			m.log.Error("reload tombstones", "error", lerr)
		}
		return nil, err
	}
	m.emit(erasedEvents)
	return out, nil
}

func (m *Module) handleErase(e *core.RequestEvent) error {
	out, err := m.Erase(e.App, e.Request.PathValue("id"))
	if errors.Is(err, ErrNotFound) {
		return noProfile(e)
	}
	if err != nil {
		return api.Internal("Could not erase the profile.", err)
	}
	return e.JSON(200, out)
}
