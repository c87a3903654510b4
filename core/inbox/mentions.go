package inbox

import (
	"encoding/json"
	"regexp"
	"strings"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/apis"
	"github.com/pocketbase/pocketbase/core"
	"github.com/pocketbase/pocketbase/tools/subscriptions"

	"github.com/omni/omni/core/api"
)

// MentionsTopic is the realtime topic on which an agent hears that a
// private note @mentioned them: {"conversation": Conversation, "message":
// MessageView}, sent only to the mentioned staff members' clients.
const MentionsTopic = "omni/inbox/mentions"

var mentionRe = regexp.MustCompile(`(?:^|[^\p{L}\p{N}_.@])@([\p{L}\p{N}][\p{L}\p{N}._-]*)`)

// resolveMentions finds the staff a note @mentions: "@ana" is a staff
// member whose first name (the first word of their name) or email local
// part is "ana", ignoring case. A name shared by two people mentions both.
func resolveMentions(db dbx.Builder, text string) []string {
	found := mentionRe.FindAllStringSubmatch(text, -1)
	if len(found) == 0 {
		return nil
	}
	handles := map[string]bool{}
	for _, f := range found {
		handles[strings.ToLower(strings.TrimRight(f[1], "._-"))] = true
	}
	var rows []struct {
		ID    string `db:"id"`
		Name  string `db:"name"`
		Email string `db:"email"`
	}
	if err := db.NewQuery("SELECT id, name, email FROM staff ORDER BY created").All(&rows); err != nil {
		return nil
	}
	var out []string
	for _, r := range rows {
		first := ""
		if f := strings.Fields(r.Name); len(f) > 0 {
			first = strings.ToLower(f[0])
		}
		local, _, _ := strings.Cut(strings.ToLower(r.Email), "@")
		if (first != "" && handles[first]) || (local != "" && handles[local]) {
			out = append(out, r.ID)
		}
	}
	return out
}

// pushMentions tells each agent a new note mentions (a live hook: it sees
// every push after commit).
func (m *Module) pushMentions(p Push) {
	for _, v := range p.Messages {
		if !v.Private || len(v.Mentions) == 0 {
			continue
		}
		to := map[string]bool{}
		for _, id := range v.Mentions {
			if s, ok := id.(string); ok {
				to[s] = true
			}
		}
		data, err := json.Marshal(map[string]any{"conversation": p.Conversation, "message": v})
		if err != nil {
			continue
		}
		msg := subscriptions.Message{Name: MentionsTopic, Data: data}
		for _, c := range m.app.SubscriptionsBroker().Clients() {
			if !c.HasSubscription(MentionsTopic) {
				continue
			}
			auth, _ := c.Get(apis.RealtimeClientAuthKey).(*core.Record)
			if !api.IsStaffRecord(auth) || !to[auth.Id] {
				continue
			}
			go c.Send(msg)
		}
	}
}
