package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/omni/omni/core/bus"
)

// ConnectorState is a connector's entry in ConnectorsBucket: no settings,
// no secrets, only what a front end needs to take or refuse a webhook.
type ConnectorState struct {
	Name    string `json:"name"`
	Enabled bool   `json:"enabled"`
}

func connectorsBucket(ctx context.Context, b *bus.Bus) (jetstream.KeyValue, error) {
	kv, err := b.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      ConnectorsBucket,
		Description: "installed connectors and whether they are enabled, for the front ends",
		MaxBytes:    1 << 20,
		Replicas:    b.Replicas(),
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("connectors bucket: %w", err)
	}
	return kv, nil
}

// Publisher (writer) keeps ConnectorsBucket equal to the installed
// connectors.
type Publisher struct {
	kv   jetstream.KeyValue
	mu   sync.Mutex
	sent map[string]ConnectorState
}

// NewPublisher opens the bucket.
func NewPublisher(ctx context.Context, b *bus.Bus) (*Publisher, error) {
	kv, err := connectorsBucket(ctx, b)
	if err != nil {
		return nil, err
	}
	return &Publisher{kv: kv, sent: map[string]ConnectorState{}}, nil
}

// Set writes the installed connectors: entries that changed are put, the
// connectors no longer installed are deleted. Only changes reach the bus.
func (p *Publisher) Set(ctx context.Context, states []ConnectorState) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	first := len(p.sent) == 0
	keep := map[string]bool{}
	var errs []error
	for _, st := range states {
		keep[st.Name] = true
		if prev, ok := p.sent[st.Name]; ok && prev == st {
			continue
		}
		val, _ := json.Marshal(st)
		if _, err := p.kv.Put(ctx, st.Name, val); err != nil {
			errs = append(errs, err)
			continue
		}
		p.sent[st.Name] = st
	}
	for name := range p.sent {
		if !keep[name] {
			if err := p.kv.Delete(ctx, name); err != nil {
				errs = append(errs, err)
				continue
			}
			delete(p.sent, name)
		}
	}
	if first {
		// Entries left from connectors uninstalled while no writer ran.
		if keys, err := p.kv.ListKeys(ctx); err == nil {
			for k := range keys.Keys() {
				if !keep[k] {
					_ = p.kv.Delete(ctx, k)
				}
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("connectors bucket: %w", err)
	}
	return nil
}

// Known (front end) is the writer's list of connectors, followed live.
type Known struct {
	mu    sync.RWMutex
	state map[string]ConnectorState
	stop  func()
}

// WatchConnectors returns once the current entries are in, and follows
// changes until Stop.
func WatchConnectors(ctx context.Context, b *bus.Bus, log *slog.Logger) (*Known, error) {
	kv, err := connectorsBucket(ctx, b)
	if err != nil {
		return nil, err
	}
	k := &Known{state: map[string]ConnectorState{}}
	k.stop, err = bus.Follow(ctx, kv, func(e jetstream.KeyValueEntry) {
		k.mu.Lock()
		defer k.mu.Unlock()
		if e.Operation() != jetstream.KeyValuePut {
			delete(k.state, e.Key())
			return
		}
		var st ConnectorState
		if err := json.Unmarshal(e.Value(), &st); err != nil || st.Name != e.Key() {
			log.Error("connectors bucket: entry not understood", "key", e.Key(), "err", err)
			return
		}
		k.state[st.Name] = st
	})
	if err != nil {
		return nil, err
	}
	return k, nil
}

// Get returns the connector's state; ok is false for a connector the
// writer does not have.
func (k *Known) Get(name string) (ConnectorState, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	st, ok := k.state[name]
	return st, ok
}

// Stop ends the watch.
func (k *Known) Stop() { k.stop() }
