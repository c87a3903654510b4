package main

import (
	"log"
	"runtime"
	"syscall"
	"unsafe"

	"github.com/omni/omni/core/bus"
)

// msgArena holds the bench's encoded events in one byte slice, and where
// each subject, payload and id ends in another: two objects without
// pointers, which the collector of the Omni under test (the same process)
// never scans. Held as 200k bus.Msg values they were 600k small objects
// it marked in every cycle, a load a serving Omni does not carry: its
// events come over the network from another process.
type msgArena struct {
	buf  []byte
	ends []msgEnds
}

type msgEnds struct{ subject, data, id int }

func (a *msgArena) add(m bus.Msg) {
	a.buf = append(a.buf, m.Subject...)
	s := len(a.buf)
	a.buf = append(a.buf, m.Data...)
	d := len(a.buf)
	a.buf = append(a.buf, m.ID...)
	a.ends = append(a.ends, msgEnds{subject: s, data: d, id: len(a.buf)})
}

// seal moves the encoded events out of the Go heap, into memory mapped
// for them alone: the Omni under test runs in this process, and its heap
// soft limit (memtune's default) and the caches sized from it should see
// a serving Omni's heap, not that plus the bench's input.
func (a *msgArena) seal() {
	if len(a.buf) == 0 {
		return
	}
	mem, err := syscall.Mmap(-1, 0, len(a.buf), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		log.Fatalf("map the events: %v", err)
	}
	copy(mem, a.buf)
	a.buf = mem
	runtime.GC()
}

func (a *msgArena) len() int { return len(a.ends) }

// msg is the i-th message; its fields point into the arena (publishing
// copies them).
func (a *msgArena) msg(i int) bus.Msg {
	from := 0
	if i > 0 {
		from = a.ends[i-1].id
	}
	e := a.ends[i]
	return bus.Msg{Subject: a.str(from, e.subject), Data: a.buf[e.subject:e.data:e.data], ID: a.str(e.data, e.id)}
}

func (a *msgArena) str(from, to int) string {
	if from == to {
		return ""
	}
	return unsafe.String(&a.buf[from], to-from)
}

// msgs are messages from to to (exclusive).
func (a *msgArena) msgs(from, to int) []bus.Msg {
	out := make([]bus.Msg, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, a.msg(i))
	}
	return out
}

// requests are the messages from to to (exclusive) as ingest publishes a
// tracking request's events: per events joined (bus.JoinEvents; one
// message per event when per is 1).
func (a *msgArena) requests(b *bus.Bus, from, to, per int) []bus.Msg {
	if per <= 1 {
		return a.msgs(from, to)
	}
	var out []bus.Msg
	for i := from; i < to; i += per {
		msgs, _ := b.JoinEvents(a.msgs(i, min(i+per, to)))
		out = append(out, msgs...)
	}
	return out
}
