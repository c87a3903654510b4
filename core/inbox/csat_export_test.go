package inbox

import (
	"context"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"
)

// Test hooks for the csat part's tests: the moves staff make through
// /api/v1/conversations, on the same core functions that API calls.

// Resolve resolves a conversation as staff member by.
func Resolve(m *Module, id, by string) error {
	return m.inTx(func(tx core.App) error {
		c, err := loadConversation(tx.DB(), id)
		if err != nil {
			return err
		}
		return m.setStatus(tx, c, StatusResolved, by, m.opts.Now())
	})
}

// Reply posts an agent's reply.
func Reply(m *Module, id, staff, text string) error {
	return m.inTx(func(tx core.App) error {
		c, err := loadConversation(tx.DB(), id)
		if err != nil {
			return err
		}
		_, err = m.post(tx, c, Outgoing{Author: AuthorAgent, Staff: staff, Text: text})
		return err
	})
}

// SetPriority changes a conversation's priority and its SLA due time.
func SetPriority(m *Module, id, priority string) error {
	return m.inTx(func(tx core.App) error {
		if _, err := tx.DB().Update(ConversationsCollection, dbx.Params{"priority": priority}, dbx.HashExp{"id": id}).Execute(); err != nil {
			return err
		}
		return m.slaRecompute(tx, id)
	})
}

// CheckSLA runs the SLA check as the tick would at now.
func CheckSLA(m *Module, now time.Time) { m.checkSLA(context.Background(), now) }

// SLADueQuery is the SLA check's query ({:now} bound by the caller).
func SLADueQuery() string { return slaDueSQL }

func (m *Module) inTx(f func(tx core.App) error) error {
	if err := m.app.RunInTransaction(f); err != nil {
		return err
	}
	m.afterCommit()
	return nil
}
