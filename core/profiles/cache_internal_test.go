package profiles

import (
	"math"
	"runtime/debug"
	"testing"
)

// The cross-batch cache follows the Go heap's soft limit: at memtune's
// default limit it holds a few thousand profiles, a bigger GOMEMLIMIT
// lets it grow up to its cap, and no limit at all means the cap.
func TestCacheBoundsFollowTheMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	for _, c := range []struct {
		limit    int64
		profiles int
	}{
		{160 << 20, 160 << 20 / 10 / cachedProfileBytes}, // memtune.DefaultLimit
		{2 << 30, 2 << 30 / 10 / cachedProfileBytes},
		{math.MaxInt64, maxCacheProfiles},
		{1 << 20, minCacheProfiles},
	} {
		debug.SetMemoryLimit(c.limit)
		p, ids := cacheBounds()
		if p != c.profiles || ids != 4*c.profiles {
			t.Errorf("limit %d: bounds %d profiles, %d identities; want %d, %d", c.limit, p, ids, c.profiles, 4*c.profiles)
		}
	}
	debug.SetMemoryLimit(160 << 20)
	if p, _ := cacheBounds(); p*cachedProfileBytes > 160<<20/8 {
		t.Errorf("at the default limit the cache may hold %d profiles, about %d MB", p, p*cachedProfileBytes>>20)
	}
}
