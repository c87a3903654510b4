package graph

import (
	"crypto/sha256"
	"encoding/binary"
)

// Bucket places a run at a node in [0, 100): the same run and node always
// get the same number, so an A/B split or a holdout decides the same way
// after a crash, and the backtest decides as the engine would.
func Bucket(runID, node string) float64 {
	sum := sha256.Sum256([]byte(runID + "\x00" + node))
	return float64(binary.BigEndian.Uint64(sum[:8])>>11) / float64(uint64(1)<<53) * 100
}

// PickArm chooses a split's arm by weight for a bucket in [0, 100).
func PickArm(arms []Arm, bucket float64) string {
	total := 0.0
	for _, a := range arms {
		total += a.Weight
	}
	if total <= 0 || len(arms) == 0 {
		return ""
	}
	x := bucket / 100 * total
	for _, a := range arms {
		if x < a.Weight {
			return a.Name
		}
		x -= a.Weight
	}
	return arms[len(arms)-1].Name
}
