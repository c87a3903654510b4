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

// JoinEvents returns the messages that publish single, one message per
// event (each on its event's subject, with its id), in their order: every
// run of two or more Batchable ones joined into batch messages, as few as
// their size allows; the rest as they are. covers[k] is how many of single
// the messages up to k publish, all of them (for telling each event how
// its message fared).
func (b *Bus) JoinEvents(single []Msg) (msgs []Msg, covers []int) {
	for i := 0; i < len(single); {
		j := i
		for j < len(single) && Batchable(single[j].Subject) {
			j++
		}
		if j-i < 2 {
			msgs = append(msgs, single[i])
			covers = append(covers, i+1)
			i++
			continue
		}
		for _, eb := range eventBatches(single[i:j], b.batchLimit()) {
			msgs = append(msgs, eb.msg)
			covers = append(covers, i+eb.to)
		}
		i = j
	}
	return msgs, covers
}

// batchLimit is the largest batch message: maxEventBatchBytes, or less
// when the NATS servers take smaller payloads.
func (b *Bus) batchLimit() int {
	limit := maxEventBatchBytes
	if b != nil && b.Conn != nil {
		if mp := int(b.Conn.MaxPayload()); mp > 0 && mp-(32<<10) < limit {
			limit = max(mp-(32<<10), 1)
		}
	}
	return limit
}

// eventBatch is one batch message and the events of single[:to] it
// completes (its first is the one after the message before).
type eventBatch struct {
	msg Msg
	to  int
}

// eventBatches joins the events of single (each one event's JSON, with
// no line break) into batch messages of at most limit bytes; an event
// larger than that goes alone, as a batch of one.
func eventBatches(single []Msg, limit int) []eventBatch {
	var out []eventBatch
	for from := 0; from < len(single); {
		size, to := len(single[from].Data), from+1
		for to < len(single) && size+1+len(single[to].Data) <= limit {
			size += 1 + len(single[to].Data)
			to++
		}
		data := make([]byte, 0, size)
		for i := from; i < to; i++ {
			if i > from {
				data = append(data, '\n')
			}
			data = append(data, single[i].Data...)
		}
		out = append(out, eventBatch{
			msg: Msg{Subject: EventBatchSubject, Data: data,
				Header: nats.Header{EventCountHeader: []string{strconv.Itoa(to - from)}}},
			to: to,
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
