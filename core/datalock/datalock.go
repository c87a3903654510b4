// Package datalock gives one `omni serve` exclusive use of a data dir. Two
// servers on one dir would run two embedded JetStreams on one store and
// two writers on one SQLite file; the second must refuse to start and say
// who holds the dir.
//
// The lock is an OS file lock (flock on Unix) on <data dir>/omni.lock, so
// it is released by the kernel when the holder dies, even by kill -9: a
// stale file never blocks a restart. The file holds the holder's PID only
// to name it in the error.
package datalock

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// FileName is the lock file inside the data dir.
const FileName = "omni.lock"

// HeldError says another process holds the data dir.
type HeldError struct {
	Dir string
	PID int // 0 when unknown
}

func (e *HeldError) Error() string {
	who := "another process"
	if e.PID > 0 {
		who = "another omni serve (pid " + strconv.Itoa(e.PID) + ")"
	}
	return fmt.Sprintf("data dir %s is in use by %s: stop it first, or pass another --data-dir", e.Dir, who)
}

// Lock is a held data dir lock.
type Lock struct {
	f *os.File
}

// Acquire locks dir for this process or returns a *HeldError naming the
// holder.
func Acquire(dir string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	path := filepath.Join(dir, FileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("data dir lock: %w", err)
	}
	held, err := tryLock(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("data dir lock %s: %w", path, err)
	}
	if held {
		f.Close()
		return nil, &HeldError{Dir: dir, PID: readPID(path)}
	}
	// Ours: record the PID for the next one to name.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{f: f}, nil
}

// Release unlocks (idempotent). The file stays: removing it would let a
// process that opened it before the removal lock a file nobody else sees.
func (l *Lock) Release() {
	if l == nil || l.f == nil {
		return
	}
	_ = l.f.Truncate(0)
	_ = unlock(l.f)
	_ = l.f.Close()
	l.f = nil
}

func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}
