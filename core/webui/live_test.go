package webui_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The dashboard's realtime topic tells signed-in staff that events were
// stored (they are written with batched SQL, which PocketBase does not
// broadcast by itself).
func TestLiveTopicTellsStaffAboutStoredEvents(t *testing.T) {
	s := start(t)
	_, body := s.Do(t, "POST", "/api/v1/setup/owner", map[string]string{"email": "owner@shop.test", "password": "s3cret-pass"}, nil)
	var auth struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(body, &auth); err != nil || auth.Token == "" {
		t.Fatalf("owner: %s", body)
	}

	resp, err := http.Get(s.URL + "/api/realtime")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	events := make(chan [2]string, 16) // (event name, data)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		var name string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event:"):
				name = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
			case strings.HasPrefix(line, "data:"):
				events <- [2]string{name, strings.TrimSpace(strings.TrimPrefix(line, "data:"))}
			}
		}
		close(events)
	}()
	next := func(want string) string {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					t.Fatalf("realtime stream closed before %s", want)
				}
				if ev[0] == want {
					return ev[1]
				}
			case <-deadline:
				t.Fatalf("no %s message within 30s", want)
			}
		}
	}
	var connect struct {
		ClientID string `json:"clientId"`
	}
	if err := json.Unmarshal([]byte(next("PB_CONNECT")), &connect); err != nil || connect.ClientID == "" {
		t.Fatalf("PB_CONNECT: %v", err)
	}
	code, b := s.Do(t, "POST", "/api/realtime", map[string]any{"clientId": connect.ClientID, "subscriptions": []string{"omni/dashboard"}},
		http.Header{"Authorization": {auth.Token}})
	if code != 204 {
		t.Fatalf("subscribe: %d %s", code, b)
	}
	if code, b := s.Track(t, "/v1/track", map[string]any{"userId": "u1", "event": "Order Completed", "properties": map[string]any{"total": 5}}); code != 200 {
		t.Fatalf("track: %d %s", code, b)
	}
	var msg struct {
		Events int `json:"events"`
	}
	if err := json.Unmarshal([]byte(next("omni/dashboard")), &msg); err != nil || msg.Events < 1 {
		t.Fatalf("live message: %+v %v", msg, err)
	}
}
