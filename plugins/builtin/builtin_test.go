package builtin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/pocketbase/pocketbase/core"

	"github.com/omni/omni/config"
	"github.com/omni/omni/core/app"
	"github.com/omni/omni/core/app/omnitest"
	"github.com/omni/omni/core/connectors"
	"github.com/omni/omni/core/profiles"
	"github.com/omni/omni/internal/testkit/vendorfixtures"
	"github.com/omni/omni/plugins/sdk"
	"github.com/omni/omni/plugins/shopify"
	"github.com/omni/omni/plugins/shopify/shopifyfake"
	"github.com/omni/omni/plugins/square"
	"github.com/omni/omni/plugins/square/squarefake"
	"github.com/omni/omni/plugins/twilio"
	"github.com/omni/omni/plugins/whatsapp"
)

// pluginEnv makes the test binary serve the named built-in, the way
// `omni plugin run NAME` does.
const pluginEnv = "OMNI_BUILTIN_TEST_PLUGIN"

func TestMain(m *testing.M) {
	if name := os.Getenv(pluginEnv); name != "" {
		newC, ok := connectors.Builtin(name)
		if !ok {
			fmt.Fprintln(os.Stderr, "no built-in", name)
			os.Exit(2)
		}
		sdk.Serve(newC())
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestBuiltinsRegistered(t *testing.T) {
	for _, name := range []string{shopify.Name, square.Name, twilio.Name} {
		if _, ok := connectors.Builtin(name); !ok {
			t.Errorf("%s is not a built-in", name)
		}
	}
}

// TestOnlineAndInStorePurchasesJoinOneProfile runs Shopify, WhatsApp and
// Square as real plugin processes under one Omni: a Shopify customer and
// web order (the vendor's sample payloads), a WhatsApp message from the same
// phone, and a Square in-store payment by a Square customer with the same
// phone written differently. Every stored event
// carries the same E.164 phone, the key the profile graph merges on, and
// the profiles module puts the Shopify customer, the phone and the Square
// customer on one profile.
func TestOnlineAndInStorePurchasesJoinOneProfile(t *testing.T) {
	if testing.Short() {
		t.Skip("boots Omni and two plugin subprocesses")
	}
	shop := shopifyfake.New(t)
	shop.Seed(t, 0, 0)
	sq := squarefake.New(t)
	sq.SeedOrder(t, "03O3USaPaAaFnI6kkwB1JxGgBsUZY", "QPTXM8PQNX3Q726ZYHPMNP46XC")
	sq.SeedCustomer(t, "QPTXM8PQNX3Q726ZYHPMNP46XC", "bob@example.net", "(613) 612-0707")

	mod := connectors.New(connectors.Options{
		Command: func(name string) (*exec.Cmd, error) {
			cmd := exec.Command(os.Args[0])
			cmd.Env = []string{pluginEnv + "=" + name}
			return cmd, nil
		},
		MinBackoff: 100 * time.Millisecond, SyncInterval: 200 * time.Millisecond,
	})
	s := omnitest.Start(t, omnitest.Options{
		Configure: func(c *config.Config) {
			c.Connectors = map[string]map[string]any{
				shopify.Name: {shopify.KeyTestBaseURL: shop.URL},
				square.Name:  {square.KeyTestBaseURL: sq.URL},
			}
		},
		Modules: func(*app.Omni) []app.Module {
			return []app.Module{profiles.New(profiles.Options{Interval: -1}), mod}
		},
	})
	auth := http.Header{"Authorization": {superuserToken(t, s)}}

	const shopSecret, squareKey = "shpss_0123456789abcdef_test_only", "sq-signature-key"
	enable := func(name string, cfg map[string]string) {
		delete(cfg, "test_base_url") // a file setting, not part of the schema
		if st, b := s.Do(t, "PATCH", "/api/v1/connectors/"+name, map[string]any{"enabled": true, "config": cfg}, auth); st != 200 {
			t.Fatalf("enable %s: %d %s", name, st, b)
		}
		omnitest.Eventually(t, 20*time.Second, func() bool {
			_, b := s.Do(t, "GET", "/api/v1/connectors/"+name, nil, auth)
			var v struct{ State string }
			json.Unmarshal(b, &v)
			return v.State == "running"
		}, "%s running", name)
	}
	enable(shopify.Name, shop.Config(shopSecret))
	enable(square.Name, sq.Config(squareKey))
	const waSecret = "meta-app-secret"
	enable("whatsapp", map[string]string{"phone_number_id": "106540352242922", "access_token": "EAAG-test",
		"app_secret": waSecret, "verify_token": "verify-me"})

	for _, d := range []struct{ topic, file string }{{"customers/update", "customer.json"}, {"orders/create", "order.json"}} {
		body := vendorfixtures.Read(t, "shopify", d.file)
		st, b := s.Do(t, "POST", "/webhooks/shopify", body, http.Header{
			"X-Shopify-Topic": {d.topic}, "X-Shopify-Hmac-Sha256": {shopify.Sign(body, shopSecret)},
			"X-Shopify-Event-Id": {"evt-" + d.topic}, "X-Shopify-Shop-Domain": {"jsmith.myshopify.com"}})
		if st != 200 {
			t.Fatalf("shopify %s: %d %s", d.topic, st, b)
		}
	}
	// The same person writes on WhatsApp from that phone.
	wa := bytes.ReplaceAll(vendorfixtures.Read(t, "whatsapp", "inbound_text_message.json"), []byte("16505551234"), []byte("16136120707"))
	if st, b := s.Do(t, "POST", "/webhooks/whatsapp", wa, http.Header{"X-Hub-Signature-256": {whatsapp.Sign(waSecret, wa)}}); st != 200 {
		t.Fatalf("whatsapp inbound: %d %s", st, b)
	}

	body := vendorfixtures.Read(t, "square", "payment_updated.json")
	var pay map[string]any
	json.Unmarshal(body, &pay)
	pay["data"].(map[string]any)["object"].(map[string]any)["payment"].(map[string]any)["customer_id"] = "QPTXM8PQNX3Q726ZYHPMNP46XC"
	body, _ = json.Marshal(pay)
	if st, b := s.Do(t, "POST", "/webhooks/square", body, http.Header{
		"X-Square-Hmacsha256-Signature": {square.Sign(body, s.URL+"/webhooks/square", squareKey)}}); st != 200 {
		t.Fatalf("square payment: %d %s", st, b)
	}

	want := []string{
		"source = 'shopify' AND type = 'customer.updated'",
		"source = 'shopify' AND type = 'order.placed' AND channel = 'web'",
		"source = 'square' AND type = 'order.placed' AND channel = 'pos'",
		"source = 'whatsapp' AND type = 'message.received' AND channel = 'whatsapp'",
	}
	for _, where := range want {
		omnitest.Eventually(t, 10*time.Second, func() bool {
			var n int
			s.PB.DB().NewQuery("SELECT COUNT(*) FROM events WHERE " + where + " AND json_extract(identities, '$.phone') = '+16136120707'").Row(&n)
			return n == 1
		}, "stored with phone +16136120707: %s", where)
	}

	// One person: the Shopify customer id, the phone and the Square
	// customer id resolve to the same (surviving) profile.
	profileOf := func(kind, value string) string {
		var id string
		s.PB.DB().NewQuery("SELECT profile FROM identities WHERE kind = {:k} AND value = {:v}").
			Bind(map[string]any{"k": kind, "v": value}).Row(&id)
		for i := 0; id != "" && i < 10; i++ {
			var next string
			s.PB.DB().NewQuery("SELECT merged_into FROM profiles WHERE id = {:id}").Bind(map[string]any{"id": id}).Row(&next)
			if next == "" {
				break
			}
			id = next
		}
		return id
	}
	omnitest.Eventually(t, 10*time.Second, func() bool {
		a := profileOf("shopify_customer_id", "207119551")
		return a != "" && a == profileOf("phone", "+16136120707") && a == profileOf("square_customer_id", "QPTXM8PQNX3Q726ZYHPMNP46XC") &&
			a == profileOf("wa_id", "16136120707")
	}, "one profile for the Shopify customer, the phone, the WhatsApp sender and the Square customer")
}

func superuserToken(t *testing.T, s *omnitest.Server) string {
	t.Helper()
	coll, err := s.PB.FindCollectionByNameOrId(core.CollectionNameSuperusers)
	if err != nil {
		t.Fatal(err)
	}
	su := core.NewRecord(coll)
	su.SetEmail("root@example.com")
	su.SetPassword("password-123456")
	if err := s.PB.Save(su); err != nil {
		t.Fatal(err)
	}
	tok, err := su.NewAuthToken()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
