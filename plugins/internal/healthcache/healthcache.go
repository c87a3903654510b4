// Package healthcache remembers a connector's last vendor health probe for
// a while: the host asks for health every few seconds, and each real probe
// costs the shop's API quota.
package healthcache

import (
	"sync"
	"time"
)

// Cache holds one probe result, valid for Every and for the settings (key)
// it was made with.
type Cache struct {
	Every time.Duration

	mu  sync.Mutex
	key any
	at  time.Time
	err error
	set bool
}

// Check returns the cached result when it is fresh and was made with the
// same key, else runs probe and remembers its result.
func (c *Cache) Check(now time.Time, key any, probe func() error) error {
	c.mu.Lock()
	if c.set && c.key == key && now.Sub(c.at) < c.Every {
		err := c.err
		c.mu.Unlock()
		return err
	}
	c.mu.Unlock()
	err := probe()
	c.mu.Lock()
	c.key, c.at, c.err, c.set = key, now, err, true
	c.mu.Unlock()
	return err
}
