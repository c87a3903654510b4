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

let tmp, server, browser, page, ownerToken, agentToken, writeKey, serverKey

const HOUR = 3600 * 1000
const ago = (h) => new Date(Date.now() - h * HOUR).toISOString()

before(async () => {
  tmp = tmpDir()
  const bin = buildOmni(tmp)
  const dataDir = path.join(tmp, 'data')
  writeKey = omniCLI(bin, dataDir, 'source', 'create', 'shop').match(/write key: (\S+)/)[1]
  // Channel messages and their outcomes come from a server source.
  serverKey = omniCLI(bin, dataDir, 'source', 'create', 'shop-server', '--kind', 'server').match(/secret key: (\S+)/)[1]
  // Attributed revenue is in the base currency: the shop's is EUR.
  process.env.OMNI_PROFILES_BASE_CURRENCY = 'EUR'
  server = await startOmni(bin, dataDir, { logName: 'omni-reports2.log' })
  const owner = await apiAs(server.url, '', '/api/v1/setup/owner', { method: 'POST', body: JSON.stringify({ ...OWNER, passwordConfirm: OWNER.password }) })
  assert.equal(owner.status, 200, JSON.stringify(owner.body))
  ownerToken = await login(server.url, OWNER.email, OWNER.password)
  const agent = await apiAs(server.url, ownerToken, '/api/collections/staff/records', {
    method: 'POST',
    body: JSON.stringify({ ...AGENT, passwordConfirm: AGENT.password, role: 'agent', emailVisibility: true }),
  })
  assert.equal(agent.status, 200, JSON.stringify(agent.body))
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
// Four days ago, so the attribution test's day has Lena's order alone.
// Steps: 3 customers, 2 (2/3 = 66.7% of step 1, 1 dropped off), 1 (1/2 = 50% of step 2, 1 dropped off);
// conversion 1/3 = 33.3%.
function funnelEvents() {
  const view = (u, p, h) => ({ type: 'page', userId: u, timestamp: ago(h), properties: { path: p }, context: { channel: 'web', page: { path: p } } })
  const cart = (u, h) => ({ type: 'track', userId: u, event: 'Added to cart', timestamp: ago(h), context: { channel: 'web' } })
  const order = (u, id, h) => ({ type: 'track', userId: u, event: 'Order Completed', timestamp: ago(h), properties: { order_id: id, total: 40, currency: 'EUR' }, context: { channel: 'web' } })
  const who = (u) => ({ type: 'identify', userId: u, timestamp: ago(110), traits: { email: `${u}@omni-shop.dev` }, context: { channel: 'web' } })
  return [
    who('ann'), view('ann', '/products/lamp', 100), cart('ann', 99), order('ann', 'F-1', 98),
    who('ben'), view('ben', '/products/desk', 100), cart('ben', 99),
    who('cleo'), view('cleo', '/products/lamp', 100),
    who('dan'), view('dan', '/about', 100), cart('dan', 99), order('dan', 'F-2', 98),
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

  it('the attribution model switch moves the channels\' shares on a 4-touch path', async () => {
    // Lena's path before her 100 EUR order at t0 (an hour ago): an email
    // opened at t0−72 h, Arno's WhatsApp reply in the inbox at t0−48 h, a
    // visit from the "scarf-restock" Instagram campaign at t0−24 h.
    const t0 = Date.now() - HOUR
    const at = (h) => new Date(t0 - h * HOUR).toISOString()
    const lena = { userId: 'lena', context: { traits: { email: 'lena@omni-shop.dev', phone: '+447700900555' } } }
    await batch(server.url, serverKey, [
      { type: 'identify', userId: 'lena', timestamp: at(100), traits: { email: 'lena@omni-shop.dev', phone: '+447700900555', name: 'Lena Berg' }, context: { channel: 'web' } },
      { type: 'track', ...lena, event: 'Email Opened', timestamp: at(72), properties: { campaign_name: 'Autumn sale', message_id: 'km-autumn' }, context: { ...lena.context, channel: 'email' } },
      // Her question, written just now so the WhatsApp window is open for a reply.
      { type: 'track', ...lena, event: 'message.received', properties: { text: 'Is the blue scarf back?' }, context: { ...lena.context, channel: 'whatsapp' } },
    ])
    const conv = await eventually(async () => (await apiAs(server.url, agentToken, '/api/v1/conversations')).body.items?.[0]?.id, { what: "Lena's conversation" })
    const reply = await apiAs(server.url, agentToken, `/api/v1/conversations/${conv}/messages`, { method: 'POST', body: JSON.stringify({ text: 'Yes! Back in stock today.' }) })
    assert.equal(reply.status, 201, JSON.stringify(reply.body))
    // The gate records the reply in the send ledger; the WhatsApp connector
    // would then report it sent. This server has none, so its outcome is
    // posted the way a connector's is, dated t0−48 h.
    await eventually(async () => (await apiAs(server.url, ownerToken, '/api/collections/messages/records/' + reply.body.id)).status === 200, { what: 'the reply in the send ledger' })
    await batch(server.url, serverKey, [
      { type: 'track', ...lena, event: 'message.sent', timestamp: at(48), properties: { message_id: reply.body.id }, context: { ...lena.context, channel: 'whatsapp' } },
      { type: 'page', ...lena, timestamp: at(24), properties: { path: '/scarves' }, context: { ...lena.context, channel: 'web', page: { path: '/scarves' }, campaign: { source: 'instagram', medium: 'social', name: 'scarf-restock' } } },
      { type: 'track', ...lena, event: 'Order Completed', timestamp: at(0), properties: { order_id: 'A-1', total: 100, currency: 'EUR' }, context: { ...lena.context, channel: 'web' } },
    ])

    await signIn(OWNER)
    // The day of Lena's order only (the funnel test's orders are days older).
    const day = new Date(t0).toISOString().slice(0, 10) // the shop's zone is UTC here
    await page.goto(server.url + `/reports/attribution?from=${day}&to=${day}`)
    const share = (channel) => page.getByTestId('channel-shares').locator(`[data-key="${channel}"]`).getByTestId('hbar-text').textContent()
    // Linear (the default): 100 / 3 each → 33.3%.
    await eventually(async () => {
      await page.reload()
      await page.getByTestId('channel-shares').waitFor()
      return (await page.getByTestId('channel-shares').getByTestId('hbar').count()) === 3
    }, { what: 'three channels credited', timeout: 60000 })
    assert.equal(await page.getByRole('button', { name: 'Linear' }).getAttribute('aria-pressed'), 'true')
    assert.deepEqual([await share('email'), await share('whatsapp'), await share('web')], ['33.3%', '33.3%', '33.3%'])
    assert.match(await page.getByTestId('tile-agent_assisted_revenue').getByTestId('tile-value').textContent(), /33\.33/)
    assert.match(await page.getByTestId('table-by_agent').textContent(), /Arno Agent/)

    // Each model, its hand-computed share for the agent's WhatsApp reply
    // (and the email's): first touch → email 100%, WhatsApp 0%; last touch
    // → web 100%; position-based 40/20/40 → WhatsApp 20%; time decay,
    // half-life 7 days = 168 h: weights 2^(−72/168) = 0.742997,
    // 2^(−48/168) = 0.820335, 2^(−24/168) = 0.905724, sum 2.469056 →
    // email 30.1%, WhatsApp 33.2%, web 36.7%.
    const expect = [
      ['First touch', { email: '100%', whatsapp: '0%', web: '0%' }, /first touch/],
      ['Last touch', { email: '0%', whatsapp: '0%', web: '100%' }, /last touch/],
      ['Position-based', { email: '40%', whatsapp: '20%', web: '40%' }, /40% to the first/],
      ['Time decay', { email: '30.1%', whatsapp: '33.2%', web: '36.7%' }, /half-life/],
    ]
    for (const [label, want, explain] of expect) {
      await page.getByRole('button', { name: label, exact: true }).click()
      await eventually(async () => (await share('whatsapp')) === want.whatsapp && (await share('email')) === want.email, { what: `${label}: WhatsApp ${want.whatsapp}`, timeout: 10000 })
      assert.deepEqual({ email: await share('email'), whatsapp: await share('whatsapp'), web: await share('web') }, want, label)
      assert.match(await page.getByTestId('model-explain').textContent(), explain)
      assert.equal(new URL(page.url()).searchParams.get('model'), { 'First touch': 'first', 'Last touch': 'last', 'Position-based': 'position', 'Time decay': 'time_decay' }[label])
      if (label === 'Position-based') {
        // The tables follow the model: the agent's reply earned 20 EUR.
        await eventually(async () => /20\.00/.test(await page.getByTestId('tile-agent_assisted_revenue').getByTestId('tile-value').textContent()), { what: 'agent-assisted revenue 20.00', timeout: 10000 })
        await shot(page, 'reports2-attribution')
        // Each channel's line over time is drawn in its bar's colour, and the
        // tables name a channel as its badge does.
        const barColor = (ch) => page.getByTestId('channel-shares').locator(`[data-key="${ch}"] .fill`).evaluate((e) => getComputedStyle(e).backgroundColor)
        const lineColor = (name) => page.locator('.u-legend .u-series', { hasText: name }).first().locator('.u-marker').evaluate((e) => getComputedStyle(e).borderTopColor)
        for (const [ch, name] of [['web', 'Web'], ['email', 'Email'], ['whatsapp', 'WhatsApp']]) {
          assert.equal(await lineColor(name), await barColor(ch), `${name}'s line and bar`)
        }
        const byChannel = await page.getByTestId('table-by_channel').locator('tbody').textContent()
        assert.match(byChannel, /WhatsApp/)
        assert.doesNotMatch(byChannel, /whatsapp/)
      }
    }
    // The chosen model survives a reload.
    await page.reload()
    assert.equal(await page.getByRole('button', { name: 'Time decay', exact: true }).getAttribute('aria-pressed'), 'true')
    await signOut()
  })
})
