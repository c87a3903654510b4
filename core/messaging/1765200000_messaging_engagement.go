package messaging

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"

	"github.com/omni/omni/core/events"
)

// opened_at and clicked_at record on the ledger when an email was first
// opened and first clicked (email.opened / email.clicked naming the
// message, folded in by the ledger processor; a click proves an open), so
// that a journey's results and the message list read them off the row
// instead of searching the customer's events for each send. Rows sent
// before this migration get them from the events already stored.
func init() {
	m.Register(func(app core.App) error {
		c, err := app.FindCollectionByNameOrId(Collection)
		if err != nil {
			return err
		}
		c.Fields.Add(&core.DateField{Name: "opened_at"}, &core.DateField{Name: "clicked_at"})
		if err := app.Save(c); err != nil {
			return err
		}
		return backfillEngagement(app)
	}, func(app core.App) error {
		c, err := app.FindCollectionByNameOrId(Collection)
		if err != nil {
			return nil
		}
		c.Fields.RemoveByName("opened_at")
		c.Fields.RemoveByName("clicked_at")
		return app.Save(c)
	}, "1765200000_messaging_engagement.go")
}

// backfillEngagement sets opened_at and clicked_at on the messages that
// stored events name, as the ledger processor records them from now on.
func backfillEngagement(app core.App) error {
	for _, q := range []string{
		engagementFromEvents("opened_at", "'"+events.EmailOpened+"', '"+events.EmailClicked+"'"),
		engagementFromEvents("clicked_at", "'"+events.EmailClicked+"'"),
	} {
		if _, err := app.DB().NewQuery(q).Execute(); err != nil {
			return err
		}
	}
	return nil
}

// engagementFromEvents is the UPDATE that sets column on each message an
// event of types names (outbound_id, else message_id) to the earliest such
// event of the same customer at or after the message was created.
func engagementFromEvents(column, types string) string {
	named := `COALESCE(NULLIF(json_extract(e.properties, '$.outbound_id'), ''), json_extract(e.properties, '$.message_id'))`
	return `UPDATE ` + Collection + ` SET ` + column + ` = COALESCE((SELECT MIN(e.occurred_at) FROM events e
		WHERE e.type IN (` + types + `) AND e.profile = ` + Collection + `.profile AND e.occurred_at >= ` + Collection + `.created
		AND json_valid(e.properties) AND ` + named + ` = ` + Collection + `.id), '')
		WHERE id IN (SELECT ` + named + ` FROM events e WHERE e.type IN (` + types + `) AND json_valid(e.properties))`
}
