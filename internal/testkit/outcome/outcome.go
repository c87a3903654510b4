// Package outcome runs a test helper against a stand-in testing.TB and
// reports how it ended (failed, skipped or neither), so the tests of test
// helpers can check that a helper fails or skips when it should without
// failing themselves.
package outcome

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// Outcome is what a helper reported: failure and skip messages, joined.
type Outcome struct {
	Failed, Skipped string
}

// Run calls f with a testing.TB that records failures and skips instead
// of reporting them to t. Like a real test, Fatal and Skip end f.
func Run(t testing.TB, f func(testing.TB)) Outcome {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	r.mu.Lock()
	defer r.mu.Unlock()
	return Outcome{Failed: strings.Join(r.failed, "\n"), Skipped: r.skipped}
}

type recorder struct {
	testing.TB
	mu      sync.Mutex
	failed  []string
	skipped string
}

func (r *recorder) fail(msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = append(r.failed, msg)
}

func (r *recorder) Error(args ...any)                 { r.fail(fmt.Sprint(args...)) }
func (r *recorder) Errorf(format string, args ...any) { r.fail(fmt.Sprintf(format, args...)) }
func (r *recorder) Fatal(args ...any)                 { r.fail(fmt.Sprint(args...)); runtime.Goexit() }
func (r *recorder) Fatalf(format string, args ...any) {
	r.fail(fmt.Sprintf(format, args...))
	runtime.Goexit()
}
func (r *recorder) Skip(args ...any) { r.skip(fmt.Sprint(args...)) }
func (r *recorder) Skipf(format string, args ...any) {
	r.skip(fmt.Sprintf(format, args...))
}

func (r *recorder) skip(msg string) {
	r.mu.Lock()
	r.skipped = msg
	r.mu.Unlock()
	runtime.Goexit()
}
