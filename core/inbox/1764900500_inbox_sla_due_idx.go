package inbox

import (
	"github.com/pocketbase/pocketbase/core"
	m "github.com/pocketbase/pocketbase/migrations"
)

// The SLA check runs every second: these partial indexes hold only the
// open conversations with a due time not yet counted, so it reads the
// ones that are due instead of every open conversation.
func init() {
	m.Register(func(app core.App) error {
		c, err := app.FindCollectionByNameOrId(ConversationsCollection)
		if err != nil {
			return err
		}
		c.AddIndex("idx_conversations_first_due", false, "first_response_due", slaFirstPending)
		c.AddIndex("idx_conversations_next_due", false, "next_response_due", slaNextPending)
		return app.Save(c)
	}, func(app core.App) error {
		c, err := app.FindCollectionByNameOrId(ConversationsCollection)
		if err != nil {
			return nil
		}
		c.RemoveIndex("idx_conversations_first_due")
		c.RemoveIndex("idx_conversations_next_due")
		return app.Save(c)
	})
}
