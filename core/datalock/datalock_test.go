package datalock_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/omni/omni/core/datalock"
)

func TestSecondAcquireIsRefusedNamingTheHolder(t *testing.T) {
	dir := t.TempDir()
	l, err := datalock.Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = datalock.Acquire(dir)
	var held *datalock.HeldError
	if !errors.As(err, &held) || held.PID != os.Getpid() || !strings.Contains(err.Error(), "pid") {
		t.Fatalf("second acquire: %v", err)
	}
	l.Release()
	l.Release() // idempotent
	l2, err := datalock.Acquire(dir)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	defer l2.Release()
	if b, _ := os.ReadFile(filepath.Join(dir, datalock.FileName)); strings.TrimSpace(string(b)) == "" {
		t.Fatal("holder's pid not recorded")
	}
}
