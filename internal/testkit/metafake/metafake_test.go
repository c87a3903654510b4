package metafake

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func post(t *testing.T, f *Server, token, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", f.URL+"/v23.0/"+f.PhoneNumberID+"/messages", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

// A send is answered as Meta documents it and kept; a wrong token gets
// Meta's error object and is not kept.
func TestFakeAnswersAndKeepsSends(t *testing.T) {
	f := Start(t, "1234567890", "tok")
	code, out := post(t, f, "wrong", `{"messaging_product":"whatsapp","to":"447700900100","type":"text","text":{"body":"hi"}}`)
	if e, _ := out["error"].(map[string]any); code != 401 || e["code"] != 190.0 || len(f.Sent()) != 0 {
		t.Fatalf("wrong token: %d %v, %d kept", code, out, len(f.Sent()))
	}
	code, out = post(t, f, "tok", `{"messaging_product":"whatsapp","to":"447700900100","type":"template","template":{"name":"cart_reminder"}}`)
	msgs, _ := out["messages"].([]any)
	if code != 200 || len(msgs) != 1 {
		t.Fatalf("send: %d %v", code, out)
	}
	sent := f.SentTo("447700900100")
	if len(sent) != 1 || sent[0].Template != "cart_reminder" || sent[0].WAMID != msgs[0].(map[string]any)["id"] {
		t.Fatalf("kept: %+v, answered %v", sent, out)
	}
}
