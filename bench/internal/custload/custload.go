// Package custload makes the synthetic customers' events that
// bench/profiles loads and bench/walframes stores: each customer has an
// email, a phone and an anonymous id, which its first event (an identify
// with a name) links; each later event carries one of the three at random,
// a random type, channel and time over the last 300 days; orders are
// numbered as a Shopify shop numbers them.
package custload

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/omni/omni/core/events"
)

// Load makes the events in a fixed sequence: the same calls in the same
// order give the same events (times are relative to Base).
type Load struct {
	// Rand is the sequence the events are drawn from; a bench that draws
	// its own choices from it too gets the same ones on every run.
	Rand *rand.Rand
	// Base is 300 days ago, when the events' times begin.
	Base time.Time
}

// New starts the sequence.
func New() *Load {
	return &Load{Base: time.Now().Add(-300 * 24 * time.Hour), Rand: rand.New(rand.NewPCG(1, 2))}
}

var (
	types    = []string{events.PageViewed, events.PageViewed, events.PageViewed, events.EmailOpened, events.MessageReceived, events.CheckoutStarted, events.OrderPlaced}
	channels = []string{"web", "email", "whatsapp", "pos"}
)

// Event is customer p's event j ("b-p-j"): j == 0 is the identify that
// links the customer's three identities.
func (l *Load) Event(p, j int) *events.Event {
	rng := l.Rand
	ids := events.Identities{}
	email, phone, anon := fmt.Sprintf("c%d@omni-shop.dev", p), fmt.Sprintf("+1415%07d", p), fmt.Sprintf("anon-%d", p)
	switch {
	case j == 0: // first contact links all three
		ids[events.Email], ids[events.Phone], ids[events.AnonymousID] = email, phone, anon
	default:
		switch rng.IntN(3) {
		case 0:
			ids[events.Email] = email
		case 1:
			ids[events.Phone] = phone
		default:
			ids[events.AnonymousID] = anon
		}
	}
	typ := types[rng.IntN(len(types))]
	if j == 0 {
		typ = events.Identify
	}
	ev := &events.Event{ID: fmt.Sprintf("b-%d-%d", p, j), Type: typ, Source: "bench",
		OccurredAt: l.Base.Add(time.Duration(rng.IntN(300*24)) * time.Hour), ReceivedAt: time.Now(),
		Identities: ids, Context: events.Context{Channel: channels[rng.IntN(len(channels))]}}
	switch typ {
	case events.Identify:
		ev.Properties = map[string]any{"traits": map[string]any{"first_name": FirstName(p), "last_name": LastName(p)}}
	case events.OrderPlaced: // numbered as a Shopify shop numbers them
		n := OrderNumber(p, j)
		ev.Properties = map[string]any{"total": float64(rng.IntN(20000)) / 100, "currency": "USD",
			"order_id": strconv.Itoa(5600000000000 + n), "order_name": "#" + strconv.Itoa(n), "order_number": strconv.Itoa(n)}
	}
	return ev
}

// Synthetic names: 40 first names × 900 last names built from syllables,
// so a last name is shared by about 1 in 900 customers, as in a real shop.
var (
	firstNames = []string{"Ada", "Ben", "Cleo", "Dan", "Eva", "Finn", "Gia", "Hugo", "Ines", "Jon", "Kim", "Leo", "Mia", "Nils", "Olga", "Paul",
		"Quinn", "Rosa", "Sam", "Tara", "Uma", "Vic", "Wes", "Xena", "Yara", "Zoe", "Amir", "Bea", "Carl", "Dora", "Emil", "Fay", "Gus", "Hana",
		"Ivan", "Jade", "Kofi", "Lena", "Milo", "Nora"}
	syllables = []string{"ok", "af", "or", "ber", "lin", "gar", "son", "mur", "ray", "del", "kov", "ami", "tan", "wel", "dri", "han", "sel",
		"bor", "mon", "ric", "pet", "lau", "zen", "fal", "gro", "hut", "ner", "cas", "vid", "qui"}
)

// FirstName is customer p's first name.
func FirstName(p int) string { return firstNames[p%len(firstNames)] }

// LastName is customer p's last name.
func LastName(p int) string {
	n := (p / len(firstNames)) % (len(syllables) * len(syllables))
	s := syllables[n/len(syllables)] + syllables[n%len(syllables)]
	return strings.ToUpper(s[:1]) + s[1:]
}

// OrderNumber is the shop's number of customer p's event j when it is an order.
func OrderNumber(p, j int) int { return 1000 + p*16 + j }
