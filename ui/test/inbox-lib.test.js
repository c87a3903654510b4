// The inbox page's pure helpers (ui/src/lib/inbox.js): which view a live
// push belongs to, the list's order, SLA and waiting words, snooze times
// and @mention parsing. No server needed.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { listQuery, matchesView, mentionName, mentionQuery, mergeMessages, slaOf, slaText, snoozeTimes, sortItems, waitingSeconds } from '../src/lib/inbox.js'

const at = (iso) => iso.replace('T', ' ') // PocketBase's stored form
const NOW = Date.parse('2026-03-04T10:00:00Z') // a Wednesday

describe('inbox helpers', () => {
  it('maps views to the list query and checks a pushed conversation against them', () => {
    assert.deepEqual(listQuery('mine', { channel: 'sms' }), { status: 'open', assignee: 'me', channel: 'sms' })
    assert.deepEqual(listQuery('resolved'), { status: 'resolved', sort: 'recent' })
    const c = { status: 'open', assignee: 'u1', channel: 'sms', labels: ['vip'] }
    assert.equal(matchesView(c, 'mine', 'u1'), true)
    assert.equal(matchesView(c, 'mine', 'u2'), false)
    assert.equal(matchesView(c, 'unassigned', 'u1'), false)
    assert.equal(matchesView(c, 'all', 'u2', { label: 'vip' }), true)
    assert.equal(matchesView(c, 'all', 'u2', { channel: 'email' }), false)
    assert.equal(matchesView({ ...c, status: 'resolved' }, 'all', 'u1'), false)
  })

  it('sorts the longest waiting first, then the most recent', () => {
    const items = [
      { id: 'answered', waiting_since: '', last_message_at: at('2026-03-04T09:59:00Z') },
      { id: 'recent', waiting_since: at('2026-03-04T09:50:00Z'), last_message_at: at('2026-03-04T09:50:00Z') },
      { id: 'oldest', waiting_since: at('2026-03-04T08:00:00Z'), last_message_at: at('2026-03-04T09:00:00Z') },
    ]
    assert.deepEqual(sortItems(items, 'waiting').map((c) => c.id), ['oldest', 'recent', 'answered'])
    assert.deepEqual(sortItems(items, 'recent').map((c) => c.id), ['answered', 'recent', 'oldest'])
    assert.equal(waitingSeconds(items[2], NOW), 7200)
    assert.equal(waitingSeconds(items[0], NOW), 0)
  })

  it('gives the first-response due time until answered, then the next one while waiting', () => {
    const first = { status: 'open', first_response_due: at('2026-03-04T10:12:00Z'), first_response_at: '', waiting_since: at('2026-03-04T09:55:00Z') }
    assert.deepEqual(slaOf(first, NOW), { due: '2026-03-04T10:12:00.000Z', kind: 'first', breached: false })
    assert.equal(slaText(slaOf(first, NOW), NOW), 'First reply due in 12 min')
    const late = { ...first, first_response_at: at('2026-03-04T09:56:00Z'), next_response_due: at('2026-03-04T09:57:00Z') }
    assert.equal(slaText(slaOf(late, NOW), NOW), 'Reply overdue by 3 min')
    assert.equal(slaOf({ ...late, next_response_due: '' }, NOW), null)
    assert.equal(slaOf({ ...first, status: 'resolved' }, NOW), null)
  })

  it('offers snooze times from now: an hour, tomorrow 9:00, next Monday 9:00, until a reply', () => {
    const now = new Date(2026, 2, 4, 15, 30) // local Wednesday afternoon
    const [hour, tomorrow, week, reply] = snoozeTimes(now)
    assert.equal(Date.parse(hour.value) - now.getTime(), 3600e3)
    assert.equal(new Date(tomorrow.value).getTime(), new Date(2026, 2, 5, 9, 0).getTime())
    assert.equal(new Date(week.value).getTime(), new Date(2026, 2, 9, 9, 0).getTime())
    assert.equal(reply.value, 'reply')
  })

  it('finds the @word at the caret and merges messages by id in time order', () => {
    assert.deepEqual(mentionQuery('Ask @Be', 7), { start: 4, q: 'be' })
    assert.equal(mentionQuery('mail a@b', 8), null) // an email address is not a mention
    assert.equal(mentionName({ name: 'Bea Backup', email: 'x@omni-shop.dev' }), 'bea')
    assert.equal(mentionName({ name: '', email: 'sam.s@omni-shop.dev' }), 'sam.s')
    const merged = mergeMessages(
      [{ id: 'a', created: at('2026-03-04T09:00:00.000Z'), status: 'sending' }],
      [{ id: 'b', created: at('2026-03-04T08:00:00.000Z') }, { id: 'a', status: 'delivered' }],
    )
    assert.deepEqual(merged.map((m) => [m.id, m.status]), [['b', undefined], ['a', 'delivered']])
  })
})
