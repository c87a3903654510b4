package metrics

import (
	"strings"
	"testing"
	"time"
)

// Before the first count after a start, the stage cells are empty (null,
// not 0) and a note says why; old counts say when they were counted.
func TestStageCountsNotYetCounted(t *testing.T) {
	none := &stageCounts{buying: map[string]float64{}, lifecycle: map[string]float64{}}
	for _, row := range stageTable(none, map[string]float64{"first_purchase": 2}).Rows {
		if row[1] != nil {
			t.Errorf("stage %v shows %v before any count", row[0], row[1])
		}
	}
	if n := none.note(time.UTC); !strings.Contains(n, "still being counted") {
		t.Errorf("note %q", n)
	}
	old := &stageCounts{at: time.Now().Add(-time.Hour), buying: map[string]float64{"loyal": 3}, lifecycle: map[string]float64{}}
	if got := stageTable(old, nil).Rows[4]; got[0] != "loyal" || got[1] != 3.0 {
		t.Errorf("loyal row %v", got)
	}
	if n := old.note(time.UTC); !strings.Contains(n, "as of "+old.at.UTC().Format("2006-01-02 15:04")) {
		t.Errorf("note %q", n)
	}
	fresh := &stageCounts{at: time.Now(), buying: map[string]float64{}, lifecycle: map[string]float64{}}
	if n := fresh.note(time.UTC); n != "" {
		t.Errorf("fresh counts have a note %q", n)
	}
}
