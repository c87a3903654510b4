// The report pages' pure helpers (funnel builder drafts and bars,
// attribution shares per model, distributions). No server needed.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { blankFunnel, editable, funnelBars, moveStep, payload, stepLabel, validate } from '../src/lib/funnels.js'
import { channelShares, modelInfo } from '../src/lib/attribution.js'
import { distribution, tableObjects } from '../src/lib/reportRows.js'

const num = (key, label = key) => ({ key, label, type: 'number' })
const text = (key, label = key) => ({ key, label, type: 'text' })

describe('funnel builder drafts', () => {
  it('checks a draft and names the fields as the API does', () => {
    const d = blankFunnel()
    assert.deepEqual(validate(d), { name: 'Give the funnel a name.' })
    d.name = 'Browse to buy'
    d.window_days = 0
    d.steps = [{ event: 'track', name: ' ', path: '', label: '' }]
    const errs = validate(d)
    assert.match(errs.window_days, /1 to 90/)
    assert.match(errs.steps, /at least 2/)
    assert.match(errs['steps.0.name'], /Name the event/)
  })

  it('sends only the fields a step type uses', () => {
    const d = blankFunnel()
    d.name = ' Browse to buy '
    d.window_days = '3'
    d.steps = [
      { event: 'page.viewed', name: 'ignored', path: ' /products/ ', label: '' },
      { event: 'track', name: 'Added to cart', path: '/ignored', label: 'Cart' },
      { event: 'order.placed', name: '', path: '/ignored', label: '' },
    ]
    assert.deepEqual(payload(d), {
      name: 'Browse to buy',
      window_days: 3,
      steps: [
        { event: 'page.viewed', path: '/products/', label: 'Viewed a page /products/' },
        { event: 'track', name: 'Added to cart', label: 'Cart' },
        { event: 'order.placed', label: 'Placed an order' },
      ],
    })
    assert.deepEqual(validate(d), {})
    assert.equal(stepLabel({ event: 'track', name: 'Added to cart' }), 'Added to cart')
    assert.equal(stepLabel({ event: 'page.viewed', path: '/p', label: 'Product page' }), 'Product page')
  })

  it('reorders steps and copies a stored funnel for editing', () => {
    const s = ['a', 'b', 'c']
    assert.deepEqual(moveStep(s, 2, -1), ['a', 'c', 'b'])
    assert.deepEqual(moveStep(s, 0, -1), s)
    // Generated labels (ours or the server's) come back blank, an owner's stays.
    const e = editable({ id: 'f1', name: 'N', window_days: 5, steps: [{ event: 'order.placed', label: 'Placed an order' }, { event: 'page.viewed', path: '/p', label: 'page.viewed /p' }, { event: 'track', name: 'Signed up', label: 'Joined' }] })
    assert.deepEqual(e, {
      id: 'f1', name: 'N', window_days: 5,
      steps: [{ event: 'order.placed', name: '', path: '', label: '' }, { event: 'page.viewed', name: '', path: '/p', label: '' }, { event: 'track', name: 'Signed up', path: '', label: 'Joined' }],
    })
  })

  it('draws bars from the steps table with conversion and drop-off', () => {
    // 10 entered, 4 reached checkout (40% of step 1, 6 dropped), 3 ordered
    // (75% of step 2, 30% of step 1, 1 dropped).
    const report = { tables: [{ name: 'steps', columns: [num('step'), text('label'), num('customers')], rows: [[1, 'Viewed', 10], [2, 'Checkout', 4], [3, 'Order', 3]] }] }
    const bars = funnelBars(report)
    assert.deepEqual(bars.map((b) => [b.label, b.customers, b.dropOff]), [['Viewed', 10, 0], ['Checkout', 4, 6], ['Order', 3, 1]])
    assert.equal(bars[1].fromFirst, 0.4)
    assert.equal(bars[2].fromPrevious, 0.75)
    assert.equal(bars[2].fromFirst, 0.3)
  })
})

describe('attribution shares', () => {
  it('reads a wide models table (a column per model)', () => {
    const report = { tables: [{ name: 'models', columns: [text('channel'), { key: 'first', type: 'money' }, { key: 'last', type: 'money' }], rows: [['email', 100, 0], ['web', 0, 100]] }] }
    assert.deepEqual(channelShares(report, 'first'), [{ channel: 'email', credit: 100, share: 1 }, { channel: 'web', credit: 0, share: 0 }])
    assert.deepEqual(channelShares(report, 'last').map((r) => r.share), [0, 1])
    assert.deepEqual(channelShares(report, 'linear'), [])
  })

  it('reads a long models table (a row per model and channel)', () => {
    const report = { tables: [{ name: 'models', columns: [text('model'), text('channel'), { key: 'credit', type: 'money' }], rows: [['linear', 'email', 25], ['linear', 'web', 75], ['first', 'email', 100]] }] }
    assert.deepEqual(channelShares(report, 'linear').map((r) => [r.channel, r.share]), [['email', 0.25], ['web', 0.75]])
    assert.equal(modelInfo('nonsense').id, 'linear')
  })
})

describe('report tables', () => {
  it('turns rows into objects and a count table into a distribution', () => {
    const report = { tables: [{ name: 'csat_distribution', columns: [text('score'), num('answers')], rows: [['5', 3], ['4', 1], ['1', 0]] }] }
    assert.deepEqual(tableObjects(report, 'csat_distribution')[0], { score: '5', answers: 3 })
    assert.deepEqual(distribution(report, 'csat_distribution').map((b) => [b.label, b.value, b.share]), [['5', 3, 0.75], ['4', 1, 0.25], ['1', 0, 0]])
    assert.deepEqual(distribution(report, 'missing'), [])
    // The NPS table: score, group, responses, share; 2 promoters of 4 = 50%.
    const nps = { tables: [{ name: 'nps_distribution', columns: [num('score'), text('group'), num('responses'), { key: 'share', type: 'percent' }], rows: [[10, 'promoter', 2, 0.5], [7, 'passive', 1, 0.25], [3, 'detractor', 1, 0.25]] }] }
    assert.deepEqual(distribution(nps, 'nps_distribution').map((b) => [b.label, b.value, b.share]), [['10', 2, 0.5], ['7', 1, 0.25], ['3', 1, 0.25]])
  })
})
