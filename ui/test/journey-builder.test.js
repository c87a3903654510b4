// The journey builder: the owner opens a journey made through the API, adds
// a wait step from the palette, connects it on the canvas by dragging from
// exit handles, sets its duration in the side panel, saves and sees the
// problem named on the step, fixes it, publishes, and finds version 1 in
// the history (shown read-only). A send step dropped on the canvas gets its
// template, previewed for a chosen customer; a journey opens with all of
// its steps on the canvas. An agent sees it all read-only.
// A backtest over a seeded checkout puts its numbers on the canvas. The
// builder is a chunk of its own: the entry bundle stays in budget.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import zlib from 'node:zlib'
import { apiAs, batch, buildOmni, eventually, launchBrowser, login, omniCLI, shot, startOmni, tmpDir, uiDir } from './harness.js'

const OWNER = { name: 'Olga Owner', email: 'olga@omni-shop.dev', password: 'owner-pass-1' }
const AGENT = { name: 'Arno Agent', email: 'arno@omni-shop.dev', password: 'agent-pass-1' }

// The journey as a script would create it: wait for an order for an hour,
// then end. The test adds a wait after "happened".
const GRAPH = {
  trigger: { event: 'checkout.started' },
  goal: { event: 'order.placed', within: '7d', exit: true },
  start: 'w1',
  nodes: {
    w1: { type: 'wait_for_event', event: 'order.placed', timeout: '1h', next: { timed_out: 'end' } },
    end: { type: 'exit' },
  },
}

let tmp, server, browser, page, ownerToken, journeyID

before(async () => {
  tmp = tmpDir()
  const bin = buildOmni(tmp)
  const dataDir = path.join(tmp, 'data')
  const writeKey = omniCLI(bin, dataDir, 'source', 'create', 'shop').match(/write key: (\S+)/)[1]
  server = await startOmni(bin, dataDir, { logName: 'omni-journey-builder.log' })
  const owner = await apiAs(server.url, '', '/api/v1/setup/owner', { method: 'POST', body: JSON.stringify({ ...OWNER, passwordConfirm: OWNER.password }) })
  assert.equal(owner.status, 200, JSON.stringify(owner.body))
  ownerToken = await login(server.url, OWNER.email, OWNER.password)
  const agent = await apiAs(server.url, ownerToken, '/api/collections/staff/records', {
    method: 'POST',
    body: JSON.stringify({ ...AGENT, passwordConfirm: AGENT.password, role: 'agent' }),
  })
  assert.equal(agent.status, 200, JSON.stringify(agent.body))
  // History for the backtest: a checkout two days ago and no order since.
  await batch(server.url, writeKey, [
    { type: 'track', userId: 'bea-1', event: 'Checkout Started', timestamp: new Date(Date.now() - 2 * 86400e3).toISOString(), properties: { checkout_id: 'c-1', total: 80 }, context: { traits: { email: 'bea@omni-shop.dev' } } },
  ])
  await batch(server.url, writeKey, [{ type: 'identify', userId: 'bea-1', traits: { email: 'bea@omni-shop.dev', first_name: 'Bea', last_name: 'Arden' } }])
  await eventually(async () => (await apiAs(server.url, ownerToken, '/api/v1/profiles?q=bea%40omni-shop.dev')).body.items?.[0]?.name, { what: 'the seeded customer' })
  const tpl = await apiAs(server.url, ownerToken, '/api/collections/templates/records', {
    method: 'POST',
    body: JSON.stringify({ name: 'Cart reminder', channel: 'email', kind: 'marketing', subject: 'Your cart', body: 'Hi {{ customer.first_name | default: "there" }}, your cart is waiting.' }),
  })
  assert.equal(tpl.status, 200, JSON.stringify(tpl.body))
  const j = await apiAs(server.url, ownerToken, '/api/v1/journeys', { method: 'POST', body: JSON.stringify({ name: 'Cart follow-up', graph: GRAPH }) })
  assert.equal(j.status, 201, JSON.stringify(j.body))
  assert.equal(j.body.status, 'draft')
  journeyID = j.body.id
  browser = await launchBrowser(tmp)
  page = browser.pages()[0] || (await browser.newPage())
  page.setDefaultTimeout(10000)
})

after(async () => {
  await browser?.close()
  await server?.stop()
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true })
})

async function signIn(who) {
  await page.goto(server.url + '/')
  await page.getByLabel('Email', { exact: true }).fill(who.email)
  await page.getByLabel('Password', { exact: true }).fill(who.password)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByTestId('cards').waitFor()
}

// drag presses on one handle and lets go on another, as a person connecting
// two steps does.
async function drag(from, to) {
  await from.scrollIntoViewIfNeeded()
  const a = await from.boundingBox()
  const b = await to.boundingBox()
  assert.ok(a && b, 'both handles are on screen')
  await page.mouse.move(a.x + a.width / 2, a.y + a.height / 2)
  await page.mouse.down()
  await page.mouse.move((a.x + b.x) / 2, (a.y + b.y) / 2, { steps: 5 })
  await page.mouse.move(b.x + b.width / 2, b.y + b.height / 2, { steps: 5 })
  await page.mouse.up()
}
const exitHandle = (node, exit) => page.locator(`.svelte-flow__handle.source[data-nodeid="${node}"][data-handleid="${exit}"]`)
const entryHandle = (node) => page.locator(`.svelte-flow__handle.target[data-nodeid="${node}"]`)
const edge = (id) => page.locator(`.svelte-flow__edge[data-id="${id}"]`)

// allInView waits until the trigger and every step lie inside the canvas
// (names the first that does not): a journey opens fitted to its canvas.
async function allInView(canvas) {
  await eventually(async () => {
    const c = await canvas.boundingBox()
    const nodes = await canvas.locator('.svelte-flow__node').all()
    assert.ok(nodes.length > 1, 'the canvas draws the journey')
    for (const n of nodes) {
      const b = await n.boundingBox()
      const inside = b && b.x >= c.x && b.y >= c.y && b.x + b.width <= c.x + c.width && b.y + b.height <= c.y + c.height
      assert.ok(inside, `${await n.getAttribute('data-id')} at ${JSON.stringify(b)} lies outside the canvas ${JSON.stringify(c)}`)
    }
    return true
  }, { timeout: 5000, what: 'the whole journey on the canvas' })
}

describe('journey builder', () => {
  it('the owner adds and connects a step, sees its problem, fixes it, publishes and finds the version', async () => {
    await signIn(OWNER)
    await page.goto(server.url + '/journeys/' + journeyID)
    await page.getByRole('heading', { name: 'Cart follow-up' }).waitFor()
    const canvas = page.getByRole('region', { name: 'Journey canvas' })
    await canvas.getByTestId('step-w1').waitFor()
    await canvas.getByTestId('step-trigger').getByText('When checkout.started').waitFor()
    await edge('w1.timed_out').waitFor()
    assert.equal(await edge('w1.happened').count(), 0)

    // Add a wait from the palette: it is selected and its panel opens.
    await page.getByRole('region', { name: 'Add a step' }).getByRole('button', { name: 'Add Wait', exact: true }).click()
    const step = canvas.getByTestId('step-wait1')
    await step.waitFor()
    const panel = page.getByRole('region', { name: 'Step settings' })
    await panel.getByRole('heading', { name: /Wait\s+wait1/ }).waitFor()

    // Connect w1 "happened" → wait1 → end by dragging between handles.
    await drag(exitHandle('w1', 'happened'), entryHandle('wait1'))
    await edge('w1.happened').waitFor()
    await drag(exitHandle('wait1', 'next'), entryHandle('end'))
    await edge('wait1.next').waitFor()
    assert.equal(await panel.getByLabel('next', { exact: true }).inputValue(), 'end')

    // A duration publishing would refuse: saved anyway, named on the step.
    await panel.getByLabel('Duration').fill('soon')
    await page.getByRole('status').filter({ hasText: 'Unsaved changes' }).waitFor()
    await page.getByRole('button', { name: 'Save draft' }).click()
    await step.getByTestId('problem-badge').waitFor()
    await step.getByTestId('node-problems').getByText(/duration: .*soon/).waitFor()
    await panel.getByTestId('panel-problems').getByText(/soon/).waitFor()
    let j = await apiAs(server.url, ownerToken, '/api/v1/journeys/' + journeyID)
    assert.equal(j.body.graph.nodes.wait1.duration, 'soon')
    assert.equal(j.body.graph.nodes.w1.next.happened, 'wait1')
    assert.ok(j.body.problems.some((p) => p.node === 'wait1' && p.field === 'duration'), JSON.stringify(j.body.problems))
    assert.ok(j.body.graph.layout?.wait1, 'the step keeps where it was drawn')
    await shot(page, 'journey-builder-problem')

    // Publishing now is refused with the same problem.
    await page.getByRole('button', { name: 'Publish', exact: true }).click()
    const dialog = page.getByRole('dialog', { name: 'Publish version 1' })
    await dialog.getByRole('button', { name: 'Publish' }).click()
    await page.getByTestId('builder-error').getByText(/soon/).waitFor()
    assert.equal((await apiAs(server.url, ownerToken, '/api/v1/journeys/' + journeyID)).body.status, 'draft')

    // Fixed: the badge goes, publishing makes version 1 and the journey live.
    await panel.getByLabel('Duration').fill('2h')
    await page.getByRole('button', { name: 'Publish', exact: true }).click()
    await dialog.getByLabel('Version note').fill('with a reminder pause')
    await dialog.getByRole('button', { name: 'Publish' }).click()
    await page.getByText('Published version 1.').waitFor()
    await page.getByTestId('journey-status').getByText('Live').waitFor()
    assert.equal(await step.getByTestId('problem-badge').count(), 0)
    j = await apiAs(server.url, ownerToken, '/api/v1/journeys/' + journeyID)
    assert.equal(j.body.status, 'live')
    assert.equal(j.body.version, 1)
    assert.deepEqual(j.body.problems, [])
    await page.getByRole('button', { name: 'Pause' }).waitFor()

    // The history lists version 1; viewing it is read-only.
    await page.getByRole('tab', { name: 'Versions' }).click()
    const v1 = page.getByTestId('version-1')
    await v1.getByText('with a reminder pause').waitFor()
    await v1.getByRole('button', { name: 'View' }).click()
    await page.getByTestId('viewing-version').getByText('Viewing version 1, read-only.').waitFor()
    await canvas.getByTestId('step-wait1').getByText('for 2h').waitFor()
    assert.equal(await page.getByRole('region', { name: 'Add a step' }).count(), 0)
    const version = await apiAs(server.url, ownerToken, `/api/v1/journeys/${journeyID}/versions/1`)
    assert.equal(version.body.graph.nodes.wait1.duration, '2h')
    assert.equal(version.body.graph.nodes.wait1.next.next, 'end')
    await shot(page, 'journey-builder-version')
    await page.getByRole('button', { name: 'Back to the draft' }).click()
    await page.getByRole('region', { name: 'Add a step' }).waitFor()

    // The backtest replays the seeded checkout through the draft: one
    // customer enters the wait for an order, times out and reaches the exit.
    await page.getByRole('tab', { name: 'Backtest' }).click()
    await page.getByRole('button', { name: 'Run backtest' }).click()
    const summary = page.getByTestId('backtest-summary')
    await summary.waitFor()
    assert.match(await summary.textContent(), /Entered\s*1\b/)
    assert.equal(await page.getByLabel('Numbers on the canvas').inputValue(), 'backtest')
    await canvas.getByTestId('step-w1').getByTestId('node-counts').getByText('1 would enter').waitFor()
    await page.locator('.svelte-flow__edge-label', { hasText: 'timed out · 1' }).waitFor()
    await canvas.getByTestId('step-trigger').getByTestId('trigger-counts').getByText('1 would enter').waitFor()
    await shot(page, 'journey-builder-backtest')

    // Pause and resume by status.
    await page.getByRole('button', { name: 'Pause' }).click()
    await page.getByTestId('journey-status').getByText('Paused').waitFor()
    await page.getByRole('button', { name: 'Resume' }).click()
    await page.getByTestId('journey-status').getByText('Live').waitFor()
    await page.getByRole('button', { name: 'Sign out' }).click()
  })

  it('the owner drops a send step on the canvas, picks its template and previews it for a customer', async () => {
    await signIn(OWNER)
    await page.goto(server.url + '/journeys/' + journeyID)
    const canvas = page.getByRole('region', { name: 'Journey canvas' })
    await canvas.getByTestId('step-w1').waitFor()
    // The wait added beside the first steps is on screen too.
    await canvas.getByTestId('step-wait1').waitFor()
    await allInView(canvas)
    const box = await canvas.boundingBox()
    await page.getByRole('button', { name: 'Add Send', exact: true }).dragTo(canvas, { targetPosition: { x: box.width - 130, y: box.height - 120 } })
    await canvas.getByTestId('step-send1').waitFor()
    const panel = page.getByRole('region', { name: 'Step settings' })
    await panel.getByRole('heading', { name: /Send\s+send1/ }).waitFor()
    await panel.getByLabel('Template').selectOption({ label: 'Cart reminder (Email)' })
    const preview = panel.getByRole('region', { name: 'Template preview' })
    await preview.getByTestId('step-preview-text').getByText('Hi there, your cart is waiting.').waitFor()
    await preview.getByLabel('Preview for customer').fill('bea')
    await preview.getByRole('button', { name: /Bea Arden/ }).click()
    await preview.getByTestId('preview-for').getByText('Showing it for Bea Arden').waitFor()
    await preview.getByTestId('step-preview-text').getByText('Hi Bea, your cart is waiting.').waitFor()
    await canvas.getByTestId('step-send1').getByText('email: Cart reminder').waitFor()
    await shot(page, 'journey-builder-send')

    // Deleting it from the panel takes it off the canvas; the draft is as saved.
    await panel.getByRole('button', { name: 'Delete step' }).click()
    assert.equal(await canvas.getByTestId('step-send1').count(), 0)
    await page.getByRole('button', { name: 'Sign out' }).click()
  })

  it('on a phone the owner reaches the canvas on the first screen, the steps to add above it in a few rows', async () => {
    await signIn(OWNER)
    await page.setViewportSize({ width: 390, height: 844 })
    try {
      await page.goto(server.url + '/journeys/' + journeyID)
      const canvas = page.getByRole('region', { name: 'Journey canvas' })
      await canvas.getByTestId('step-w1').waitFor()
      const top = (await canvas.boundingBox()).y
      assert.ok(top < 844 * 0.6, `the canvas starts ${Math.round(top)} px down a 844 px screen`)
      await page.getByRole('button', { name: 'Add Wait', exact: true }).waitFor()
      await shot(page, 'journey-builder-phone')
    } finally {
      await page.setViewportSize({ width: 1280, height: 860 })
      await page.getByRole('button', { name: 'Sign out' }).click() // the next test signs in as the agent
    }
  })

  it('an agent sees the journey read-only', async () => {
    await signIn(AGENT)
    await page.goto(server.url + '/journeys/' + journeyID)
    await page.getByText('only the shop owner can change it').waitFor()
    const canvas = page.getByRole('region', { name: 'Journey canvas' })
    await canvas.getByTestId('step-wait1').click()
    const panel = page.getByRole('region', { name: 'Step settings' })
    assert.equal(await panel.getByLabel('Duration').isDisabled(), true)
    assert.equal(await page.getByRole('region', { name: 'Add a step' }).count(), 0)
    assert.equal(await page.getByRole('button', { name: 'Save draft' }).count(), 0)
    assert.equal(await page.getByRole('button', { name: 'Pause' }).count(), 0)
    await page.getByRole('button', { name: 'Sign out' }).click()
  })

  it('benchmark: the builder is its own chunk and the entry bundle stays within 300 KB gzip', (t) => {
    const html = fs.readFileSync(path.join(uiDir, 'dist/index.html'), 'utf8')
    const entry = html.match(/src="\/assets\/([^"]+\.js)"/)[1]
    const gz = zlib.gzipSync(fs.readFileSync(path.join(uiDir, 'dist/assets', entry)), { level: 9 }).length
    const builder = fs.readdirSync(path.join(uiDir, 'dist/assets')).find((f) => /^JourneyBuilder-.*\.js$/.test(f))
    assert.ok(builder, 'the builder is a chunk of its own')
    assert.ok(!html.includes(builder), 'the builder is not loaded up front')
    const builderGz = zlib.gzipSync(fs.readFileSync(path.join(uiDir, 'dist/assets', builder)), { level: 9 }).length
    t.diagnostic(`entry JS ${(gz / 1024).toFixed(1)} KB gzip (budget 300), builder chunk ${(builderGz / 1024).toFixed(1)} KB gzip, loaded on opening a journey`)
    assert.ok(gz < 300 * 1024, 'entry JS over 300 KB gzip')
  })
})
