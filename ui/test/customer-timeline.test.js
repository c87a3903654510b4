// The customer page tells what happened in a shop owner's words and
// updates live: an order shows Shopify's name (#1086, not the long id),
// its lines and total; a new order posted over HTTP appears without a
// reload, while an expanded entry stays expanded.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { apiAs, batch, buildOmni, eventually, launchBrowser, login, omniCLI, shot, startOmni, tmpDir } from './harness.js'

const OWNER = { name: 'Olga Owner', email: 'owner@omni-shop.dev', password: 'owner-pass-1' }
const EMAIL = 'tess@omni-shop.dev'

let tmp, server, browser, page, token, writeKey, profileID

const order = (id, name, at, products, total) => ({
  type: 'track', userId: 'tess', event: 'Order Completed', messageId: 'o-' + id, timestamp: at,
  properties: { order_id: id, order_name: name, total, currency: 'EUR', products },
  context: { channel: 'web', traits: { email: EMAIL } },
})

before(async () => {
  tmp = tmpDir()
  const bin = buildOmni(tmp)
  const dataDir = path.join(tmp, 'data')
  writeKey = omniCLI(bin, dataDir, 'source', 'create', 'shop', '--kind', 'server').match(/(?:write|secret) key: (\S+)/)[1]
  server = await startOmni(bin, dataDir, { logName: 'omni-customer-timeline.log' })
  const owner = await apiAs(server.url, '', '/api/v1/setup/owner', { method: 'POST', body: JSON.stringify({ ...OWNER, passwordConfirm: OWNER.password }) })
  assert.equal(owner.status, 200, JSON.stringify(owner.body))
  token = await login(server.url, OWNER.email, OWNER.password)

  const t0 = Date.now() - 3 * 3600 * 1000
  const at = (min) => new Date(t0 + min * 60000).toISOString()
  const pages = ['Home', 'Spring collection', 'Linen shirt', 'Linen shirt – sizes', 'Cart'].map((name, i) => ({
    type: 'page', userId: 'tess', name, messageId: 'p' + i, timestamp: at(1 + i),
    context: { page: { title: name, url: 'https://shop.omni-shop.dev/' + i }, campaign: { source: 'google', medium: 'cpc', name: 'spring_sale' } },
  }))
  await batch(server.url, writeKey, [
    { type: 'identify', userId: 'tess', messageId: 'i1', timestamp: at(0), traits: { email: EMAIL, name: 'Tess Moreau' } },
    ...pages,
    order('5600001086', '#1086', at(10), [{ name: 'Linen shirt', variant: 'M', quantity: 2, price: 39.5 }, { name: 'Canvas tote', quantity: 1, price: 12 }], 91),
  ])
  profileID = await eventually(async () => {
    const r = await apiAs(server.url, token, '/api/v1/profiles?q=' + encodeURIComponent(EMAIL))
    const p = r.body.items?.[0]
    if (!p) return null
    const tl = await apiAs(server.url, token, `/api/v1/profiles/${p.id}/timeline`)
    return tl.body.items?.some((e) => e.type === 'order.placed') && tl.body.items.length >= 7 ? p.id : null
  }, { what: 'the seeded timeline' })

  browser = await launchBrowser(tmp)
  page = browser.pages()[0] || (await browser.newPage())
  page.setDefaultTimeout(15000)
  await page.goto(server.url + '/')
  await page.getByLabel('Email', { exact: true }).fill(OWNER.email)
  await page.getByLabel('Password', { exact: true }).fill(OWNER.password)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByRole('navigation', { name: 'Main' }).waitFor()
})

after(async () => {
  await browser?.close()
  await server?.stop()
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true })
})

describe('customer page: timeline in words, live', () => {
  it("shows the order by Shopify's name with its lines and total; a browsing session folds into one row", async () => {
    await page.goto(`${server.url}/customers/${profileID}`)
    const entry = page.getByTestId('entry').filter({ hasText: 'Order #1086' })
    await entry.waitFor()
    const text = await entry.textContent()
    assert.ok(!text.includes('5600001086'), 'the long order id is shown: ' + text)
    const lines = entry.getByTestId('lines').locator('tr')
    assert.equal(await lines.count(), 2)
    assert.match(await lines.nth(0).textContent(), /Linen shirt – M\s*× 2\s*€39\.50|Linen shirt – M\s*× 2\s*39\.50\s*€/)
    assert.match(await lines.nth(1).textContent(), /Canvas tote/)
    assert.match(text, /91\.00/)

    const group = page.getByTestId('timeline-group').filter({ hasText: 'Viewed 5 pages' })
    await group.waitFor()
    assert.match(await group.textContent(), /via spring_sale \(google \/ cpc\)/)
    await group.getByRole('button', { name: 'Viewed 5 pages' }).click()
    await group.getByText('Viewed Spring collection').waitFor()
    await shot(page, 'customer-timeline')
  })

  it('a new order posted over HTTP appears without a reload; expanded details stay open', async () => {
    const first = page.getByTestId('entry').filter({ hasText: 'Order #1086' })
    await first.getByRole('button', { name: 'Details' }).click()
    await first.getByTestId('raw').waitFor()
    // The page must not reload: a marker on window would be lost.
    await page.evaluate(() => (window.__sameTimelinePage = true))

    await batch(server.url, writeKey, [
      order('5600001087', '#1087', new Date().toISOString(), [{ name: 'Straw hat', quantity: 1, price: 25 }], 25),
    ])
    const fresh = page.getByTestId('entry').filter({ hasText: 'Order #1087' })
    await fresh.waitFor({ timeout: 20000 })
    assert.match(await fresh.getByTestId('lines').textContent(), /Straw hat/)
    assert.equal(await page.evaluate(() => window.__sameTimelinePage), true, 'the page reloaded')
    assert.equal(await first.getByTestId('raw').isVisible(), true, 'the expanded entry closed')
    // The key facts follow too.
    await page.getByTestId('buying-stage').filter({ hasText: 'Repeat' }).waitFor()
    await shot(page, 'customer-timeline-live')
  })
})
