package bus

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
)

// EventCountHeader marks a message on EVENTS that carries several events:
// the encoded events, one a line, and their count in this header. A
// tracking request's events travel this way, so JetStream stores,
// delivers and deletes one message for the request instead of one for
// each event (a sixth of the server's CPU per stored event went there).
// A message without it carries one event, its id in EventIDHeader.
const EventCountHeader = "Omni-Event-Count"

// EventBatchSubject is the subject of messages carrying several events. It
// has one token less than any single event's (omni.events.SOURCE.TYPE), so
// no consumer filtering on a source and type receives one.
const EventBatchSubject = eventsPrefix + "batch"

// Batchable reports whether an event published on subject may travel in
// a batch message. profile.erased goes alone: connectors' erasures select
// it by subject. Every other consumer of EVENTS takes the whole stream.
func Batchable(subject string) bool {
	return strings.HasPrefix(subject, eventsPrefix) && !strings.HasSuffix(subject, ".profile.erased")
}

// maxEventBatchBytes bounds one batch message below NATS's default payload
// limit (1 MB), with room for its headers.
const maxEventBatchBytes = 960 << 10

// EventBatch is a batch message: the events of encoded[From:To] (the
// indexes into what EventBatches was given) in Msg.
type EventBatch struct {
	Msg      Msg
	From, To int
}

// EventBatches joins encoded events (each one event's JSON, with no line
// break) into as few EVENTS messages as their size allows; one event alone
// still goes as a batch of one.
func (b *Bus) EventBatches(encoded [][]byte) []EventBatch {
	limit := maxEventBatchBytes
	if b != nil && b.Conn != nil {
		if mp := int(b.Conn.MaxPayload()); mp > 0 && mp-(32<<10) < limit {
			limit = max(mp-(32<<10), 1)
		}
	}
	return eventBatches(encoded, limit)
}

func eventBatches(encoded [][]byte, limit int) []EventBatch {
	var out []EventBatch
	for from := 0; from < len(encoded); {
		size, to := len(encoded[from]), from+1
		for to < len(encoded) && size+1+len(encoded[to]) <= limit {
			size += 1 + len(encoded[to])
			to++
		}
		data := make([]byte, 0, size)
		for i := from; i < to; i++ {
			if i > from {
				data = append(data, '\n')
			}
			data = append(data, encoded[i]...)
		}
		out = append(out, EventBatch{
			Msg: Msg{Subject: EventBatchSubject, Data: data,
				Header: nats.Header{EventCountHeader: []string{strconv.Itoa(to - from)}}},
			From: from, To: to,
		})
		from = to
	}
	return out
}

// SplitEvents returns the encoded events one EVENTS message carries: its
// lines when it has EventCountHeader, else its data. A line of a batch is
// the same bytes a single event's message would carry.
func SplitEvents(header nats.Header, data []byte) [][]byte {
	if header.Get(EventCountHeader) == "" {
		return [][]byte{data}
	}
	n, _ := strconv.Atoi(header.Get(EventCountHeader))
	out := make([][]byte, 0, max(n, 1))
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(line) > 0 {
			out = append(out, line)
		}
	}
	return out
}
