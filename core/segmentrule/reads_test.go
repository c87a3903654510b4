package segmentrule_test

import (
	"fmt"
	"testing"

	"github.com/omni/omni/core/segmentrule"
)

func TestReadsListsWhatARuleReadsThroughSegmentReferences(t *testing.T) {
	must := func(raw string) *segmentrule.Rule {
		r, err := segmentrule.ParseRule([]byte(raw))
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		return r
	}
	vip := must(`{"or":[{"trait":"tags","op":"contains","value":"vip"},{"trait":"lifetime_value.USD","op":"gte","value":1000}]}`)
	lookup := func(id string) (*segmentrule.Rule, bool) { return vip, id == "vip" }
	r := must(`{"and":[{"segment":"vip"},{"not":{"event":"order.placed","op":"eq","count":0,"within_days":90}},
		{"trait":"email","op":"exists"},{"trait":"traits.plan","op":"eq","value":"pro"},{"trait":"address.city","op":"eq","value":"Oslo"},
		{"consent":"email","status":"subscribed"},{"trait":"orders_count","op":"gte","value":2},{"trait":"orders_count","op":"lt","value":9}]}`)
	got := fmt.Sprint(segmentrule.Reads(r, lookup))
	want := "[{tags } {computed lifetime_value.USD} {event order.placed} {column email} {traits plan} {traits address.city} {consent email} {computed orders_count}]"
	if got != want {
		t.Fatalf("reads\n got %s\nwant %s", got, want)
	}
	// A reference that does not resolve reads nothing (the rule does not compile).
	if got := segmentrule.Reads(must(`{"segment":"gone"}`), lookup); len(got) != 0 {
		t.Fatalf("unresolved reference reads %v", got)
	}
}
