// Report pages (Funnels, Journeys, Inbox, Attribution) on the real binary:
// the owner builds a funnel in the builder and sees its counts on seeded
// events; an agent reads funnels but builds none; the attribution model
// switch moves a channel's share on a seeded 4-touch path.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { apiAs, batch, buildOmni, eventually, launchBrowser, login, omniCLI, shot, startOmni, tmpDir } from './harness.js'

const OWNER = { name: 'Olga Owner', email: 'olga@omni-shop.dev', password: 'owner-pass-1' }
const AGENT = { name: 'Arno Agent', email: 'arno@omni-shop.dev', password: 'agent-pass-1' }

let tmp, server, browser, page, ownerToken, agentToken, agentID, writeKey

const HOUR = 3600 * 1000
const ago = (h) => new Date(Date.now() - h * HOUR).toISOString()

before(async () => {
  tmp = tmpDir()
  const bin = buildOmni(tmp)
  const dataDir = path.join(tmp, 'data')
  writeKey = omniCLI(bin, dataDir, 'source', 'create', 'shop').match(/write key: (\S+)/)[1]
  server = await startOmni(bin, dataDir, { logName: 'omni-reports2.log' })
  const owner = await apiAs(server.url, '', '/api/v1/setup/owner', { method: 'POST', body: JSON.stringify({ ...OWNER, passwordConfirm: OWNER.password }) })
  assert.equal(owner.status, 200, JSON.stringify(owner.body))
  ownerToken = await login(server.url, OWNER.email, OWNER.password)
  const agent = await apiAs(server.url, ownerToken, '/api/collections/staff/records', {
    method: 'POST',
    body: JSON.stringify({ ...AGENT, passwordConfirm: AGENT.password, role: 'agent', emailVisibility: true }),
  })
  assert.equal(agent.status, 200, JSON.stringify(agent.body))
  agentID = agent.body.id
  agentToken = await login(server.url, AGENT.email, AGENT.password)
  browser = await launchBrowser(tmp)
  page = browser.pages()[0] || (await browser.newPage())
  page.setDefaultTimeout(15000)
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
  await page.getByRole('button', { name: 'Sign out' }).waitFor()
}

async function signOut() {
  await page.getByRole('button', { name: 'Sign out' }).click()
  await page.getByRole('heading', { name: 'Sign in' }).waitFor()
}

// Funnel "Product to order": a page under /products/ → the custom event
// "Added to cart" → an order, within 7 days.
//   ann:  /products/lamp, Added to cart, order   → reaches step 3
//   ben:  /products/desk, Added to cart           → reaches step 2
//   cleo: /products/lamp                          → reaches step 1
//   dan:  /about, Added to cart, order            → never enters (step 1 is a product page)
// Steps: 3 customers, 2 (2/3 = 66.7% of step 1, 1 dropped off), 1 (1/2 = 50% of step 2, 1 dropped off);
// conversion 1/3 = 33.3%.
function funnelEvents() {
  const view = (u, p, h) => ({ type: 'page', userId: u, timestamp: ago(h), properties: { path: p }, context: { channel: 'web', page: { path: p } } })
  const cart = (u, h) => ({ type: 'track', userId: u, event: 'Added to cart', timestamp: ago(h), context: { channel: 'web' } })
  const order = (u, id, h) => ({ type: 'track', userId: u, event: 'Order Completed', timestamp: ago(h), properties: { order_id: id, total: 40, currency: 'EUR' }, context: { channel: 'web' } })
  const who = (u) => ({ type: 'identify', userId: u, timestamp: ago(30), traits: { email: `${u}@omni-shop.dev` }, context: { channel: 'web' } })
  return [
    who('ann'), view('ann', '/products/lamp', 26), cart('ann', 25), order('ann', 'F-1', 24),
    who('ben'), view('ben', '/products/desk', 26), cart('ben', 25),
    who('cleo'), view('cleo', '/products/lamp', 26),
    who('dan'), view('dan', '/about', 26), cart('dan', 25), order('dan', 'F-2', 24),
  ]
}

describe('report pages', () => {
  it('the owner builds a funnel in the builder and sees its steps counted', async () => {
    await batch(server.url, writeKey, funnelEvents())
    await signIn(OWNER)
    await page.goto(server.url + '/reports/funnels')
    await page.getByRole('heading', { name: 'Funnels', exact: true }).waitFor()
    await page.getByRole('button', { name: 'New funnel' }).click()

    const b = page.getByRole('form', { name: 'Funnel builder' })
    await b.getByLabel('Name', { exact: true }).fill('Product to order')
    // The draft starts as page → checkout → order: make step 2 the custom
    // event, then add a step and take it out again, and check reordering.
    await b.getByLabel('Page path (optional)').fill('/products/')
    await b.getByLabel('Step 2', { exact: true }).selectOption('track')
    await b.getByLabel('Event name').fill('Added to cart')
    await b.getByRole('button', { name: 'Add step' }).click()
    assert.equal(await b.getByTestId('funnel-step').count(), 4)
    await b.getByRole('button', { name: 'Remove step 4' }).click()
    await b.getByRole('button', { name: 'Move step 3 up' }).click()
    assert.equal(await b.getByLabel('Step 2', { exact: true }).inputValue(), 'order.placed')
    await b.getByRole('button', { name: 'Move step 2 down' }).click()
    assert.equal(await b.getByLabel('Step 3', { exact: true }).inputValue(), 'order.placed')
    // A window out of range is refused on its field.
    await b.getByLabel('Window (days)').fill('0')
    await b.getByRole('button', { name: 'Save funnel' }).click()
    await b.getByText('A whole number of days from 1 to 90.').waitFor()
    await b.getByLabel('Window (days)').fill('7')
    await shot(page, 'reports2-funnel-builder')
    await b.getByRole('button', { name: 'Save funnel' }).click()
    await page.getByText('Funnel “Product to order” created.').waitFor()

    const list = await apiAs(server.url, ownerToken, '/api/v1/metrics/funnels')
    const items = Array.isArray(list.body) ? list.body : list.body.items
    const made = items.find((f) => f.name === 'Product to order')
    assert.ok(made, JSON.stringify(list.body))
    assert.deepEqual(made.steps.map((s) => [s.event, s.name || '', s.path || '']), [['page.viewed', '', '/products/'], ['track', 'Added to cart', ''], ['order.placed', '', '']])
    assert.equal(made.window_days, 7)
    assert.equal(new URL(page.url()).searchParams.get('funnel'), made.id)

    // The funnel is counted from stored events in the background: reload
    // until its bars show the hand-computed counts.
    const counts = async () => (await page.getByTestId('funnel-chart').getByTestId('hbar-text').allTextContents()).join(',')
    await eventually(async () => {
      await page.reload()
      await page.getByTestId('funnel-chart').waitFor()
      return (await counts()) === '3,2,1'
    }, { what: 'the funnel counts 3,2,1', timeout: 60000 })
    const bars = page.getByTestId('funnel-chart').getByTestId('hbar')
    assert.match(await bars.nth(1).textContent(), /66\.7% of step 1.*1 dropped off/)
    assert.match(await bars.nth(2).textContent(), /50% of step 2.*33\.3% of step 1.*1 dropped off/)
    assert.equal((await page.getByTestId('tile-entered').getByTestId('tile-value').textContent()).trim(), '3')
    assert.equal((await page.getByTestId('tile-converted').getByTestId('tile-value').textContent()).trim(), '1')
    assert.match(await page.getByTestId('tile-conversion_rate').getByTestId('tile-value').textContent(), /33\.3\s?%/)

    // Split by channel: every step happened on the web.
    await page.getByLabel('Split').selectOption('channel')
    await page.getByTestId('table-by_channel').waitFor()
    assert.match(await page.getByTestId('table-by_channel').textContent(), /web/i)
    await shot(page, 'reports2-funnel')
    await signOut()
  })

  it('an agent reads the funnels but builds none', async () => {
    await signIn(AGENT)
    await page.goto(server.url + '/reports/funnels')
    await page.getByTestId('funnel-chart').waitFor()
    await page.getByLabel('Funnel', { exact: true }).waitFor()
    assert.equal(await page.getByRole('button', { name: 'New funnel' }).count(), 0)
    assert.equal(await page.getByRole('button', { name: 'Edit funnel' }).count(), 0)
    // The API refuses an agent's funnel too.
    const r = await apiAs(server.url, agentToken, '/api/v1/metrics/funnels', { method: 'POST', body: JSON.stringify({ name: 'x', window_days: 7, steps: [{ event: 'page.viewed' }, { event: 'order.placed' }] }) })
    assert.equal(r.status, 403, JSON.stringify(r.body))
    await signOut()
  })
})
