package bus

import (
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// PullHeartbeat is how often the server tells a waiting pull request it is
// still held. The client pulls again after two missed ones.
//
// The library's default is half the request's 30 s expiry, so a missed
// heartbeat took 30 s to notice. Under load a consumer was seen in that
// state about once in twenty-five loads of 300k events (bench/ingest):
// nothing delivered, nothing awaiting an ack, no request held by the
// server, while the client still counted messages as requested. Ingest's
// events then waited 30 s to be stored. At one second it waits about two.
// An idle consumer costs the server one small message a second.
const PullHeartbeat = time.Second

// Consume starts c's pull loop with the options every Omni consumer
// shares: batch messages per pull request (0: the library's default) and
// PullHeartbeat. onErr gets each error but a missed heartbeat: that one is
// the library pulling again, and is reported by nothing else.
func Consume(c jetstream.Consumer, handler jetstream.MessageHandler, batch int, onErr func(error)) (jetstream.ConsumeContext, error) {
	opts := []jetstream.PullConsumeOpt{
		jetstream.PullHeartbeat(PullHeartbeat),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if !errors.Is(err, jetstream.ErrNoHeartbeat) && onErr != nil {
				onErr(err)
			}
		}),
	}
	if batch > 0 {
		opts = append(opts, jetstream.PullMaxMessages(batch))
	}
	return c.Consume(handler, opts...)
}
