package profiles

import (
	"time"

	"github.com/omni/omni/core/segmentrule"
)

// The rule language lives in core/segmentrule, shared with journeys.
type (
	Rule      = segmentrule.Rule
	RuleError = segmentrule.RuleError
	compiler  = segmentrule.Compiler
)

// ParseRule decodes and checks the shape of a rule tree.
func ParseRule(raw []byte) (*Rule, error) { return segmentrule.ParseRule(raw) }

func newCompiler(now time.Time, lookup func(string) (*Rule, bool)) *compiler {
	return segmentrule.NewCompiler(now, lookup)
}

func normalizeTag(s string) string { return segmentrule.NormalizeTag(s) }
