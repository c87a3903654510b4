package render_test

import (
	"strings"
	"testing"

	"github.com/omni/omni/core/messaging/render"
)

func TestTrackHTMLRewritesLinksAndAddsThePixel(t *testing.T) {
	doc := `<html><body><p>Hi <b>Ann</b> &amp; co</p>` +
		`<a href="https://shop.omni-shop.dev/sale?utm_source=email&amp;x=1" class="btn">Shop</a> ` +
		`<a href='mailto:help@omni-shop.dev'>Mail us</a> <a href="#top">top</a> ` +
		`<a href="https://shop.omni-shop.dev/p/u/tok">Unsubscribe</a></body></html>`
	var seen []string
	got := render.TrackHTML(doc, func(target string) string {
		seen = append(seen, target)
		if strings.Contains(target, "/p/u/") {
			return ""
		}
		return "https://shop.omni-shop.dev/p/c/T" + string(rune('0'+len(seen)))
	}, "https://shop.omni-shop.dev/p/o/P")

	want := `<html><body><p>Hi <b>Ann</b> &amp; co</p>` +
		`<a href="https://shop.omni-shop.dev/p/c/T1" class="btn">Shop</a> ` +
		`<a href='mailto:help@omni-shop.dev'>Mail us</a> <a href="#top">top</a> ` +
		`<a href="https://shop.omni-shop.dev/p/u/tok">Unsubscribe</a>` +
		`<img src="https://shop.omni-shop.dev/p/o/P" width="1" height="1" alt="" style="display:block;border:0;width:1px;height:1px"></body></html>`
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	// The tracked address is the one the customer would have reached
	// (entities decoded), and only http(s) links are offered.
	if len(seen) != 2 || seen[0] != "https://shop.omni-shop.dev/sale?utm_source=email&x=1" || seen[1] != "https://shop.omni-shop.dev/p/u/tok" {
		t.Fatalf("links offered: %q", seen)
	}
}

func TestTrackHTMLFragmentGetsThePixelAtTheEnd(t *testing.T) {
	got := render.TrackHTML(`<p>Hello</p>`, func(string) string { return "" }, "https://s.omni-shop.dev/p/o/P?a=1&b=2")
	if got != `<p>Hello</p><img src="https://s.omni-shop.dev/p/o/P?a=1&amp;b=2" width="1" height="1" alt="" style="display:block;border:0;width:1px;height:1px">` {
		t.Fatalf("got %s", got)
	}
}
