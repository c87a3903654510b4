package inbox

import "github.com/pocketbase/pocketbase/core"

// ReplyForTest posts a staff reply (or a private note) the way the
// conversations API does, committed and pushed live.
func (m *Module) ReplyForTest(conversation, staff, text string, private bool) (string, error) {
	var id string
	err := m.app.RunInTransaction(func(tx core.App) error {
		c, err := loadConversation(tx.DB(), conversation)
		if err != nil {
			return err
		}
		msg, err := m.post(tx, c, Outgoing{Author: AuthorAgent, Staff: staff, Text: text, Private: private})
		if err != nil {
			return err
		}
		id = msg.ID
		return nil
	})
	m.afterCommit()
	return id, err
}
