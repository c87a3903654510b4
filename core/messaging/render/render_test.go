package render_test

import (
	"strings"
	"testing"

	"github.com/omni/omni/core/messaging/render"
)

func sample() map[string]any {
	return render.Vars(
		map[string]any{"first_name": "Ann", "email": "ann@omni-shop.dev", "orders_count": 3, "lifetime_value": 1234.5,
			"tags": []any{"vip", "newsletter"}},
		map[string]any{"type": "checkout.started", "name": "Checkout Started",
			"properties": map[string]any{"items": []any{"a", "b", "c"}, "checkout_url": "https://shop.omni-shop.dev/c/1", "total": 30.5, "currency": "EUR"}},
		render.Shop{Name: "Bean & Leaf", URL: "https://shop.omni-shop.dev"},
		"https://shop.omni-shop.dev/p/u/tok", "https://shop.omni-shop.dev/p/prefs/tok")
}

func TestRenderDocumentedExample(t *testing.T) {
	got, err := render.Render(`Hi {{ customer.first_name | default: "there" }}, you left {{ event.properties.items | size }} items in your cart: {{ event.properties.checkout_url }}`, sample())
	if err != nil {
		t.Fatal(err)
	}
	if want := "Hi Ann, you left 3 items in your cart: https://shop.omni-shop.dev/c/1"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	// A customer without a first name gets the default, not an error.
	noName := render.Vars(map[string]any{"email": "bo@omni-shop.dev"}, nil, render.Shop{}, "", "")
	got, err = render.Render(`Hi {{ customer.first_name | default: "there" }}`, noName)
	if err != nil || got != "Hi there" {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestFilters(t *testing.T) {
	cases := []struct{ src, want string }{
		{`{{ event.properties.total | money: event.properties.currency }}`, "€30.50"},
		{`{{ customer.lifetime_value | money: "USD" }}`, "$1,234.50"},
		{`{{ 1234567 | money: "JPY" }}`, "¥1,234,567"},
		{`{{ 12 | money: "SEK" }}`, "12.00 SEK"},
		{`{{ 12 | money }}`, "12.00"},
		{`{{ 12 | money_with_currency: "usd" }}`, "$12.00 USD"},
		{`{{ customer.orders_count | pluralize: "order", "orders" }}`, "orders"},
		{`{{ 1 | pluralize: "order", "orders" }}`, "order"},
		{`{{ shop.name | upcase }}`, "BEAN & LEAF"},
		{`{{ customer.tags | join: ", " }}`, "vip, newsletter"},
		{`{{ customer.last_name | default: "friend" }}`, "friend"},
	}
	for _, c := range cases {
		got, err := render.Render(c.src, sample())
		if err != nil || got != c.want {
			t.Errorf("%s: got %q, %v; want %q", c.src, got, err, c.want)
		}
	}
}

func TestHTMLEscapesVariables(t *testing.T) {
	vars := render.Vars(map[string]any{"first_name": `<script>alert("x")</script>`}, nil, render.Shop{Name: "A&B"}, "https://s.omni-shop.dev/p/u/x?a=1&b=2", "")
	src := "<p>Hi {{ customer.first_name }}</p>\n<p>{{ shop.name }}</p>{{- \"<b>bold</b>\" | raw -}}<a href=\"{{ unsubscribe_url }}\">Unsubscribe</a>{% raw %}{{ not.parsed }}{% endraw %}{{ 3 | plus: 4 }}"
	got, err := render.RenderHTML(src, vars)
	if err != nil {
		t.Fatal(err)
	}
	want := "<p>Hi &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;</p>\n<p>A&amp;B</p><b>bold</b><a href=\"https://s.omni-shop.dev/p/u/x?a=1&amp;b=2\">Unsubscribe</a>{{ not.parsed }}7"
	if got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	// The text body is not escaped.
	txt, err := render.Render("Hi {{ customer.first_name }}", vars)
	if err != nil || !strings.Contains(txt, `<script>`) {
		t.Fatalf("text body: %q, %v", txt, err)
	}
	// Already escaped outputs are not escaped twice.
	got, _ = render.RenderHTML(`{{ shop.name | escape }}`, vars)
	if got != "A&amp;B" {
		t.Fatalf("double escaped: %q", got)
	}
}

func TestCheckFindsUnknownVariablesInEveryBranch(t *testing.T) {
	src := "Hi {{ customer.frist_name }}\n{% if customer.vip %}\n{{ custmer.email }}{% endif %}\n{{ event.properties.anything.deep }} {{ shop.name }} {{ shop.url | append: unsubscribe_url }}\n{% for item in event.properties.items %}{{ item.title }} {{ forloop.index }}{% endfor %}{{ customer.tags[0].label }}{% for i in (1..customer.orders_count) %}{% endfor %}{% assign n = customer.orders_count | plus: 1 %}{{ n }}{{ customer[\"email\"] }} {{ customer.tags.size }}\n{{ \"customer.nope\" }} {{ preferences_url | default: oops }}"
	vars := render.CheckVars([]string{"vip", "tags"})
	got := render.Check(src, vars)
	want := []render.Problem{
		{Line: 1, Kind: render.KindUnknown, Path: "customer.frist_name", Message: "unknown variable customer.frist_name (did you mean customer.first_name?)"},
		{Line: 3, Kind: render.KindUnknown, Path: "custmer", Message: "unknown variable custmer (did you mean customer?)"},
		{Line: 6, Kind: render.KindUnknown, Path: "oops", Message: "unknown variable oops"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("problem %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	if p := render.Check(`Hi {{ customer.first_name | default: "there" }} {{ customer.vip }}`, vars); len(p) != 0 {
		t.Fatalf("a clean template has problems: %+v", p)
	}
}

func TestCheckSyntaxErrorsWithLine(t *testing.T) {
	cases := []struct {
		src  string
		line int
		msg  string
	}{
		{"Hello\n\n{% if customer.first_name %}\nHi", 3, "unterminated"},
		{"a\n{{ customer.first_name | nosuchfilter }}", 2, "nosuchfilter"},
		{"a\nb\n{% endfor %}", 3, "endfor"},
		{"{% include 'secret.txt' %}", 1, "not available"},
	}
	for _, c := range cases {
		ps := render.Check(c.src, render.CheckVars(nil))
		if len(ps) == 0 || ps[0].Kind != render.KindSyntax || ps[0].Line != c.line || !strings.Contains(ps[0].Message, c.msg) {
			t.Errorf("%q: got %+v, want a syntax problem on line %d mentioning %q", c.src, ps, c.line, c.msg)
		}
		if _, err := render.Render(c.src, sample()); err == nil {
			t.Errorf("%q rendered without error", c.src)
		}
	}
}
