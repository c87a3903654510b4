package profiles_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/omni/omni/core/events"
	"github.com/omni/omni/core/profiles"
)

// Staff subscribed to omni/profiles hear which profiles changed.
func TestRealtimeProfileChanges(t *testing.T) {
	e := start(t, profiles.Options{})
	resp, err := http.Get(e.URL + "/api/realtime")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func(prefix string) string {
		timeout := time.After(20 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatal("realtime stream closed")
				}
				if strings.HasPrefix(l, prefix) {
					return strings.TrimPrefix(l, prefix)
				}
			case <-timeout:
				t.Fatalf("no %q line", prefix)
			}
		}
	}
	var connect struct {
		ClientID string `json:"clientId"`
	}
	if err := json.Unmarshal([]byte(next("data:")), &connect); err != nil || connect.ClientID == "" {
		t.Fatalf("connect: %v", err)
	}
	code, body := e.Do(t, "POST", "/api/realtime", map[string]any{"clientId": connect.ClientID, "subscriptions": []string{profiles.RealtimeTopic}}, auth(e.agent))
	if code != 204 {
		t.Fatalf("subscribe: %d %s", code, body)
	}
	e.publish(t, ev(events.Identify, "test", e.clock.Now(), events.Identities{events.Email: "rt@omni-shop.dev"}, nil, "web"))
	pid := e.profileOf(t, events.Email, "rt@omni-shop.dev")
	if got := next("event:"); got != profiles.RealtimeTopic {
		t.Fatalf("event name %q", got)
	}
	var msg struct {
		Action string   `json:"action"`
		IDs    []string `json:"ids"`
	}
	if err := json.Unmarshal([]byte(next("data:")), &msg); err != nil || msg.Action != "update" || len(msg.IDs) != 1 || msg.IDs[0] != pid {
		t.Fatalf("message %+v (%v), want ids [%s]", msg, err, pid)
	}
}
