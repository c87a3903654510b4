package bus

import (
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// PullHeartbeat is how often the server tells a waiting pull request it is
// still held. The client pulls again after two missed ones.
//
// The client library (nats.go v1.55, unchanged in v1.56) asks for more
// messages only as one arrives, and skips that while its previous request
// is still marked as being written. When that lasts (a connection busy
// with ingest's publishes, both cores busy) until every message asked for
// has arrived, no request is left and none is sent. Only missed
// heartbeats end that, and the library's default heartbeat is half the
// request's 30 s expiry: ingest's events waited 30 s to be stored, about
// once in twenty-five loads of 300k events (bench/ingest). At one second
// they wait about two. An idle consumer costs the server one small
// message a second.
const PullHeartbeat = time.Second

// Consume starts c's pull loop with the options every Omni consumer
// shares: batch messages per pull request (0: the library's default) and
// PullHeartbeat. onErr gets each error but a missed heartbeat: that one is
// the library pulling again, and is reported by nothing else.
func Consume(c jetstream.Consumer, handler jetstream.MessageHandler, batch int, onErr func(error)) (jetstream.ConsumeContext, error) {
	opts := consumeOpts(onErr)
	if batch > 0 {
		opts = append(opts, jetstream.PullMaxMessages(batch))
	}
	return c.Consume(handler, opts...)
}

// ConsumeBytes is Consume with the client's buffer bounded by bytes
// instead of messages, for a stream whose messages vary a hundredfold in
// size (EVENTS: one event, or a request's batch of them). maxBytes must be
// several times the largest message: a pull asks for what the buffer lacks
// once it is half empty, and a message larger than that would stall it.
func ConsumeBytes(c jetstream.Consumer, handler jetstream.MessageHandler, maxBytes int, onErr func(error)) (jetstream.ConsumeContext, error) {
	return c.Consume(handler, append(consumeOpts(onErr), jetstream.PullMaxBytes(maxBytes))...)
}

func consumeOpts(onErr func(error)) []jetstream.PullConsumeOpt {
	return []jetstream.PullConsumeOpt{
		jetstream.PullHeartbeat(PullHeartbeat),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if !errors.Is(err, jetstream.ErrNoHeartbeat) && onErr != nil {
				onErr(err)
			}
		}),
	}
}
