package inbox_test

import (
	"testing"
	"time"

	"github.com/pocketbase/dbx"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/inbox"
)

// A customer's messages on one channel land in one conversation; another
// channel opens another; an email reply threads by its References.
func TestInboundMessagesOpenAndContinueConversations(t *testing.T) {
	s, _ := startInbox(t, inbox.Options{})
	wa := events.Identities{events.WhatsAppID: "447700900123"}
	receive(t, s, "wamid.1", "whatsapp", wa, map[string]any{"text": "Hi, where is my order?"})
	receive(t, s, "wamid.2", "whatsapp", wa, map[string]any{"text": "It was #1042"})
	convs := conversationsOf(t, s, events.WhatsAppID, "447700900123")
	if len(convs) != 1 {
		t.Fatalf("two WhatsApp messages made %d conversations, want 1", len(convs))
	}
	c := convs[0]
	if c.Status != inbox.StatusOpen || c.Channel != "whatsapp" || c.Unread != 2 || c.LastMessage != "It was #1042" || c.WaitingSince == "" {
		t.Fatalf("conversation = %+v", c)
	}
	var texts []string
	if err := s.PB.DB().NewQuery("SELECT text FROM conversation_messages WHERE conversation = {:c} ORDER BY created").
		Bind(dbx.Params{"c": c.ID}).Column(&texts); err != nil {
		t.Fatal(err)
	}
	if len(texts) != 2 || texts[0] != "Hi, where is my order?" {
		t.Fatalf("messages = %q", texts)
	}

	mail := events.Identities{events.Email: "ana@omni-shop.dev"}
	receive(t, s, "email:1", "email", mail, map[string]any{"text": "Question", "subject": "Sizes",
		"conversation_key": "<a1@mail.omni-shop.dev>", "provider_message_id": "<a1@mail.omni-shop.dev>"})
	receive(t, s, "email:2", "email", mail, map[string]any{"text": "Another question", "subject": "Returns",
		"conversation_key": "<b1@mail.omni-shop.dev>", "provider_message_id": "<b1@mail.omni-shop.dev>"})
	receive(t, s, "email:3", "email", mail, map[string]any{"text": "Following up", "subject": "Re: Sizes",
		"conversation_key": "<a1@mail.omni-shop.dev>", "in_reply_to": "<a1@mail.omni-shop.dev>",
		"references": []any{"<a1@mail.omni-shop.dev>"}})
	convs = conversationsOf(t, s, events.Email, "ana@omni-shop.dev")
	if len(convs) != 2 {
		t.Fatalf("two email threads made %d conversations, want 2", len(convs))
	}
	if convs[0].Subject != "Sizes" || convs[0].Unread != 2 || convs[1].Unread != 1 {
		t.Fatalf("threads = %+v", convs)
	}
	// conversation.opened goes out through the relay for each new one.
	omnitest.Eventually(t, 10*time.Second, func() bool {
		var n int
		_ = s.PB.DB().NewQuery("SELECT COUNT(*) FROM events WHERE type = 'conversation.opened'").Row(&n)
		return n == 3
	}, "three conversation.opened events")
}
