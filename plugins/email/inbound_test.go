package email

import (
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func crlf(s string) []byte {
	return []byte(strings.ReplaceAll(strings.TrimLeft(s, "\n"), "\n", "\r\n"))
}

// A customer's reply to one of Omni's emails: threaded to the outbound
// message by In-Reply-To, HTML-only body stripped to text, attachment
// names listed, the thread keyed by its root.
const replyMail = `
From: Ann Example <Ann@Omni-Shop.dev>
To: help@omni-shop.dev
Subject: Re: Your cart misses you
Date: Mon, 30 Nov 2026 11:58:00 +0000
Message-ID: <CAF-reply-1@mail.omni-shop.dev>
In-Reply-To: <omni.msg0001@omni-shop.dev>
References: <omni.msg0001@omni-shop.dev>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=b1

--b1
Content-Type: text/html; charset=utf-8

<div>Do you have it in <b>blue</b>?</div><div>Ann</div>
--b1
Content-Type: image/png
Content-Disposition: attachment; filename="photo.png"
Content-Transfer-Encoding: base64

iVBORw0KGgo=
--b1--
`

func TestInboundReplyThreadsToOutbound(t *testing.T) {
	evs, err := Inbound(crlf(replyMail), "INBOX:1:7", "help@omni-shop.dev", now)
	if err != nil || len(evs) != 1 {
		t.Fatalf("%v %+v", err, evs)
	}
	e := evs[0]
	p := e.Properties
	if e.Type != "message.received" || e.Identities["email"] != "ann@omni-shop.dev" || e.Context.Channel != "email" ||
		e.ID != "email:CAF-reply-1@mail.omni-shop.dev" || !e.OccurredAt.Equal(time.Date(2026, 11, 30, 11, 58, 0, 0, time.UTC)) {
		t.Fatalf("event %+v", e)
	}
	if p["outbound_id"] != "msg0001" || p["in_reply_to"] != "<omni.msg0001@omni-shop.dev>" ||
		p["conversation_key"] != "<omni.msg0001@omni-shop.dev>" || p["subject"] != "Re: Your cart misses you" ||
		p["from"] != "ann@omni-shop.dev" || p["provider_message_id"] != "<CAF-reply-1@mail.omni-shop.dev>" {
		t.Fatalf("properties %+v", p)
	}
	if p["text"] != "Do you have it in blue?\n\nAnn" {
		t.Fatalf("text %q", p["text"])
	}
	if a, _ := p["attachments"].([]any); len(a) != 1 || a[0] != "photo.png" {
		t.Fatalf("attachments %v", p["attachments"])
	}
	if _, auto := p["auto_reply"]; auto {
		t.Fatal("a person's reply marked auto_reply")
	}
}

// A new conversation (no In-Reply-To) is keyed by its own Message-ID and
// has no outbound_id; the text part wins over HTML.
func TestInboundNewConversation(t *testing.T) {
	raw := crlf(`
From: bob@omni-shop.dev
To: help@omni-shop.dev
Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=
Message-ID: <new-1@omni-shop.dev>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary=x

--x
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

Gr=FC=DFe, where is my order?
--x
Content-Type: text/html

<p>ignored</p>
--x--
`)
	evs, err := Inbound(raw, "INBOX:1:8", "", now)
	if err != nil || len(evs) != 1 {
		t.Fatalf("%v %+v", err, evs)
	}
	p := evs[0].Properties
	if p["text"] != "Grüße, where is my order?" || p["subject"] != "Grüße" || p["conversation_key"] != "<new-1@omni-shop.dev>" {
		t.Fatalf("properties %+v", p)
	}
	if _, ok := p["outbound_id"]; ok {
		t.Fatal("outbound_id on a new conversation")
	}
}

// Vacation notices are kept but marked, so journeys and the inbox can tell
// them from a customer's words.
func TestInboundAutoReplyMarked(t *testing.T) {
	for name, hdr := range map[string]string{
		"auto-submitted": "Auto-Submitted: auto-replied\n",
		"x-autoreply":    "X-Autoreply: yes\n",
		"precedence":     "Precedence: auto_reply\n",
	} {
		raw := crlf("From: ann@omni-shop.dev\nTo: help@omni-shop.dev\nSubject: Out of the office\nMessage-ID: <v-" + name + "@omni-shop.dev>\n" +
			hdr + "In-Reply-To: <omni.msg0002@omni-shop.dev>\n\nI am away until Monday.\n")
		evs, err := Inbound(raw, "INBOX:1:9", "", now)
		if err != nil || len(evs) != 1 || evs[0].Properties["auto_reply"] != true || evs[0].Properties["outbound_id"] != "msg0002" {
			t.Fatalf("%s: %v %+v", name, err, evs)
		}
	}
}

// An RFC 3464 bounce becomes message.failed for the recipient, joined to
// the outbound message by the original Message-ID, permanent for 5.x.x.
const bounceMail = `
From: Mail Delivery System <MAILER-DAEMON@mx.omni-shop.dev>
To: shop@omni-shop.dev
Subject: Undelivered Mail Returned to Sender
Message-ID: <bounce-1@mx.omni-shop.dev>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="r"

--r
Content-Type: text/plain

This is the mail system. Your message could not be delivered.
--r
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.omni-shop.dev
Arrival-Date: Mon, 30 Nov 2026 11:00:00 +0000

Final-Recipient: rfc822; gone@omni-shop.dev
Original-Recipient: rfc822;gone@omni-shop.dev
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <gone@omni-shop.dev>: Recipient address rejected: User unknown

Final-Recipient: rfc822; slow@omni-shop.dev
Action: delayed
Status: 4.4.1

--r
Content-Type: text/rfc822-headers

From: Omni Test Shop <shop@omni-shop.dev>
To: gone@omni-shop.dev
Subject: Your cart misses you
Message-ID: <omni.msg0003@omni-shop.dev>

--r--
`

func TestInboundBounceBecomesFailure(t *testing.T) {
	evs, err := Inbound(crlf(bounceMail), "INBOX:1:10", "", now)
	if err != nil || len(evs) != 1 {
		t.Fatalf("%v %+v", err, evs)
	}
	e := evs[0]
	p := e.Properties
	if e.Type != "message.failed" || e.Identities["email"] != "gone@omni-shop.dev" || p["outbound_id"] != "msg0003" ||
		p["permanent"] != true || p["error_code"] != "5.1.1" || !strings.Contains(p["error_reason"].(string), "User unknown") ||
		p["provider_message_id"] != "<omni.msg0003@omni-shop.dev>" {
		t.Fatalf("event %+v", e)
	}
	// A soft bounce (4.x.x) that finally failed is not permanent.
	soft := strings.Replace(strings.Replace(bounceMail, "Status: 5.1.1", "Status: 4.2.2", 1), "Action: delayed", "Action: delivered", 1)
	evs, _ = Inbound(crlf(soft), "INBOX:1:11", "", now)
	if len(evs) != 1 || evs[0].Properties["permanent"] != false {
		t.Fatalf("soft bounce %+v", evs)
	}
}

// A mail client following the List-Unsubscribe mailto sends "unsubscribe"
// to the reply address: that is the customer's consent change.
func TestInboundMailtoUnsubscribe(t *testing.T) {
	raw := crlf("From: ann@omni-shop.dev\nTo: help@omni-shop.dev\nSubject: unsubscribe\nMessage-ID: <u-1@omni-shop.dev>\n\nThis message was automatically generated by Gmail.\n")
	evs, err := Inbound(raw, "INBOX:1:12", "help@omni-shop.dev", now)
	if err != nil || len(evs) != 1 {
		t.Fatalf("%v %+v", err, evs)
	}
	e := evs[0]
	if e.Type != "consent.changed" || e.Identities["email"] != "ann@omni-shop.dev" || e.Properties["channel"] != "email" ||
		e.Properties["status"] != "unsubscribed" || e.Properties["source"] != "customer" {
		t.Fatalf("event %+v", e)
	}
	// The same words to another address are just a message.
	evs, _ = Inbound(raw, "INBOX:1:12", "other@omni-shop.dev", now)
	if len(evs) != 1 || evs[0].Type != "message.received" {
		t.Fatalf("%+v", evs)
	}
}

// Garbage and sender-less mail never stop the reader.
func TestInboundOddMail(t *testing.T) {
	if evs, err := Inbound([]byte("\x00\x01 not mail at all"), "INBOX:1:13", "", now); len(evs) != 0 {
		t.Fatalf("garbage gave %+v (%v)", evs, err)
	}
	evs, err := Inbound(crlf("Subject: no sender\n\nhello\n"), "INBOX:1:14", "", now)
	if err != nil || len(evs) != 0 {
		t.Fatalf("sender-less: %v %+v", err, evs)
	}
	// No Message-ID: the mailbox position identifies it.
	evs, _ = Inbound(crlf("From: c@omni-shop.dev\nSubject: hi\n\nhello\n"), "INBOX:1:15", "", now)
	if len(evs) != 1 || evs[0].ID != "email:imap:INBOX:1:15" || evs[0].Properties["conversation_key"] != "imap:INBOX:1:15" {
		t.Fatalf("%+v", evs)
	}
}

func TestHTMLToText(t *testing.T) {
	got := HTMLToText(`<html><head><title>x</title><script>alert(1)</script></head><body><h1>Sale</h1><ul><li>Shoes</li><li>Hats &amp; caps</li></ul><p>See <a href="https://shop.omni-shop.dev/s">the sale</a><br>Bye</p></body></html>`)
	want := "Sale\n\n- Shoes\n- Hats & caps\n\nSee the sale (https://shop.omni-shop.dev/s)\nBye"
	if got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}
