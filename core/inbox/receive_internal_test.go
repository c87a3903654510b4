package inbox

import (
	"reflect"
	"testing"
	"time"

	"github.com/pocketbase/dbx"
	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/profiles"
	"github.com/omni/omni/core/store"
)

// receive hands on the conversation as its UPDATE left it without reading
// it back: in every way a message is filed (a new conversation, one that
// continues, one reopened from resolved or snoozed, an answer to the
// satisfaction survey, an out-of-office, an address learnt), the
// conversation it returns is the stored row.
func TestFiledConversationIsTheStoredRow(t *testing.T) {
	m := New(Options{})
	s := omnitest.Start(t, omnitest.Options{Modules: func(o *app.Omni) []app.Module {
		return []app.Module{profiles.New(profiles.Options{}), m}
	}})
	at := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	set := func(id string, cols dbx.Params) {
		t.Helper()
		if _, err := s.PB.DB().Update(ConversationsCollection, cols, dbx.HashExp{"id": id}).Execute(); err != nil {
			t.Fatal(err)
		}
	}
	var last *Filed
	cases := []struct {
		name   string
		before func()
		in     Inbound
		want   func(f *Filed) bool
	}{
		{"a new conversation", nil,
			Inbound{Profile: "p1", Channel: "whatsapp", Text: "Hi, where is my order?", ExternalID: "wamid.1"},
			func(f *Filed) bool {
				return f.Opened && f.Conversation.Unread == 1 && f.Conversation.WaitingSince != "" &&
					f.Conversation.LastAuthor == AuthorCustomer && f.Conversation.LastMessage == "Hi, where is my order?"
			}},
		{"the same conversation continues", nil,
			Inbound{Profile: "p1", Channel: "whatsapp", Text: "It was #1042", ExternalID: "wamid.2"},
			func(f *Filed) bool { return !f.Opened && f.Conversation.Unread == 2 }},
		{"a resolved one reopens", func() {
			set(last.Conversation.ID, dbx.Params{"status": StatusResolved, "resolved_at": store.FormatTime(at.Add(time.Minute)),
				"resolved_by": "staff1", "unread": 0, "waiting_since": "", "labels": `["vip"]`, "context": `{"order":"1042"}`})
		}, Inbound{Profile: "p1", Channel: "whatsapp", Text: "One more thing", ExternalID: "wamid.3"},
			func(f *Filed) bool {
				return f.Reopened && f.Conversation.Status == StatusOpen && f.Conversation.ResolvedAt == "" && len(f.Conversation.Labels) == 1
			}},
		{"a snoozed one reopens", func() {
			set(last.Conversation.ID, dbx.Params{"status": StatusSnoozed, "snoozed_until": store.FormatTime(at.Add(48 * time.Hour)),
				"snooze_until_reply": true})
		}, Inbound{Profile: "p1", Channel: "whatsapp", Text: "Any news?", ExternalID: "wamid.4"},
			func(f *Filed) bool {
				return f.Reopened && f.Conversation.SnoozedUntil == "" && !f.Conversation.SnoozeUntilReply
			}},
		{"an answer to the survey", func() {
			set(last.Conversation.ID, dbx.Params{"status": StatusResolved, "resolved_at": store.FormatTime(at.Add(time.Hour)),
				"csat_asked_at": store.FormatTime(at.Add(time.Hour)), "unread": 0})
		}, Inbound{Profile: "p1", Channel: "whatsapp", Text: "5", ExternalID: "wamid.5"},
			func(f *Filed) bool {
				return f.SurveyScore == 5 && !f.Reopened && f.Conversation.Status == StatusResolved && f.Conversation.Unread == 0
			}},
		{"an email, with its address", nil,
			Inbound{Profile: "p2", Channel: "email", Text: "Do you ship to Oslo?", Subject: "Shipping", Thread: "<a@mail>", Address: "p2@b-shop.dev"},
			func(f *Filed) bool { return f.Opened && f.Conversation.Address == "p2@b-shop.dev" }},
		{"an out-of-office", func() {
			set(last.Conversation.ID, dbx.Params{"waiting_since": "", "unread": 0})
		}, Inbound{Profile: "p2", Channel: "email", Text: "I am away", Subject: "Re: Shipping", RepliesTo: []string{"<a@mail>"}, AutoReply: true},
			func(f *Filed) bool {
				return !f.Opened && f.Conversation.WaitingSince == "" && f.Conversation.Unread == 1
			}},
		{"an address learnt", func() {
			set(last.Conversation.ID, dbx.Params{"address": ""})
		}, Inbound{Profile: "p2", Channel: "email", Text: "Hello?", Subject: "Re: Shipping", RepliesTo: []string{"<a@mail>"}, Address: "p2+x@b-shop.dev"},
			func(f *Filed) bool {
				return f.Conversation.Address == "p2+x@b-shop.dev" && f.Conversation.WaitingSince != ""
			}},
	}
	for i, tc := range cases {
		if tc.before != nil {
			tc.before()
		}
		tc.in.At = at.Add(time.Duration(i+2) * time.Hour)
		tc.in.EventID = tc.name
		err := s.PB.RunInTransaction(func(tx core.App) error {
			f, err := m.receive(tx, tc.in)
			if err != nil {
				return err
			}
			stored, err := loadConversation(tx.DB(), f.Conversation.ID)
			if err != nil {
				return err
			}
			if !tc.want(f) {
				t.Errorf("%s: filed %+v, conversation %+v", tc.name, f, f.Conversation)
			}
			if !reflect.DeepEqual(f.Conversation, stored) {
				t.Errorf("%s: handed on %+v\n stored %+v", tc.name, f.Conversation, stored)
			}
			last = f
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
	}
}
