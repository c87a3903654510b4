package omnitest_test

import (
	"strings"
	"testing"
	"time"

	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/internal/testkit/outcome"
)

func TestEventuallyWaitsForTheConditionOrFailsNamingIt(t *testing.T) {
	polls := 0
	o := outcome.Run(t, func(tb testing.TB) {
		omnitest.Eventually(tb, time.Minute, func() bool { polls++; return polls == 5 }, "five polls")
	})
	if o.Failed != "" || polls != 5 {
		t.Fatalf("polls %d, failed %q; want success on the fifth poll", polls, o.Failed)
	}

	o = outcome.Run(t, func(tb testing.TB) {
		omnitest.Eventually(tb, time.Millisecond, func() bool { return false }, "%d events stored", 3)
	})
	if !strings.Contains(o.Failed, "timed out waiting for 3 events stored") {
		t.Fatalf("failure %q does not name what it waited for", o.Failed)
	}
}
