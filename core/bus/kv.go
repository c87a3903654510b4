package bus

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Follow hands every entry of kv to apply: the current ones before it
// returns, then each later change (a put, or a delete or purge: see
// Operation) from a goroutine of its own until stop is called. It is how
// the processes sharing a bus keep a copy of a bucket.
func Follow(ctx context.Context, kv jetstream.KeyValue, apply func(jetstream.KeyValueEntry)) (stop func(), err error) {
	w, err := kv.WatchAll(context.Background())
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", kv.Bucket(), err)
	}
	// The watcher sends the current values, then nil, then the changes.
	for initial := true; initial; {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("bucket %s: %w", kv.Bucket(), errors.New("watch closed"))
			}
			if e == nil {
				initial = false
				continue
			}
			apply(e)
		case <-ctx.Done():
			_ = w.Stop()
			return nil, fmt.Errorf("bucket %s: %w", kv.Bucket(), ctx.Err())
		}
	}
	go func() {
		for e := range w.Updates() {
			if e != nil {
				apply(e)
			}
		}
	}()
	return func() { _ = w.Stop() }, nil
}
