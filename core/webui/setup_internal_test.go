package webui

import "testing"

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8090": true, "127.0.0.2:8090": true, "[::1]:8090": true, "localhost:8090": true, "LOCALHOST:1": true,
		"0.0.0.0:8090": false, ":8090": false, "[::]:8090": false, "192.168.1.5:8090": false, "shop.example.com:80": false, "garbage": false,
	} {
		if got := isLoopback(addr); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}
