//go:build !unix

package datalock

import "os"

// Other platforms: no OS lock yet; a second server is not detected.
func tryLock(*os.File) (bool, error) { return false, nil }

func unlock(*os.File) error { return nil }
