// Un-merge from the customer page: Ann (by email) and Bob (by phone) were
// joined by an order carrying both. The owner opens the merge history,
// clicks Un-merge, reads in the confirm dialog what will happen (names,
// not ids), keeps them apart, and gets both customers back: Ann's page
// says who un-merged it and links to Bob. Agents see no Un-merge button.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { apiAs, batch, buildOmni, eventually, launchBrowser, login, omniCLI, shot, startOmni, tmpDir } from './harness.js'

const OWNER = { name: 'Olga Owner', email: 'owner@shop.test', password: 'owner-pass-1' }
const AGENT = { name: 'Arno Agent', email: 'agent@shop.test', password: 'agent-pass-1' }
const EMAIL = 'ann.lee@omni-shop.dev'
const PHONE = '+447700900666'

let tmp, server, browser, page, writeKey, ownerToken, annID, bobID
const pageProblems = []

before(async () => {
  tmp = tmpDir()
  const bin = buildOmni(tmp)
  const dataDir = path.join(tmp, 'data')
  writeKey = omniCLI(bin, dataDir, 'source', 'create', 'shop').match(/write key: (\S+)/)[1]
  server = await startOmni(bin, dataDir, { logName: 'omni-unmerge.log' })
  const owner = await apiAs(server.url, '', '/api/v1/setup/owner', { method: 'POST', body: JSON.stringify({ ...OWNER, passwordConfirm: OWNER.password }) })
  assert.equal(owner.status, 200, JSON.stringify(owner.body))
  ownerToken = await login(server.url, OWNER.email, OWNER.password)
  const agent = await apiAs(server.url, ownerToken, '/api/collections/staff/records', {
    method: 'POST',
    body: JSON.stringify({ ...AGENT, passwordConfirm: AGENT.password, role: 'agent', emailVisibility: true }),
  })
  assert.equal(agent.status, 200, JSON.stringify(agent.body))

  const t0 = Date.now() - 3 * 3600 * 1000
  const at = (min) => new Date(t0 + min * 60000).toISOString()
  const find = async (q) => (await apiAs(server.url, ownerToken, '/api/v1/profiles?q=' + encodeURIComponent(q))).body.items?.[0]?.id
  await batch(server.url, writeKey, [{ type: 'identify', anonymousId: 'a-ann', timestamp: at(0), traits: { email: EMAIL, name: 'Ann Lee' } }])
  annID = await eventually(() => find(EMAIL), { what: 'Ann' })
  await batch(server.url, writeKey, [
    { type: 'identify', anonymousId: 'a-bob', timestamp: at(10), traits: { phone: PHONE, name: 'Bob Stone' } },
    { type: 'track', anonymousId: 'a-bob', event: 'Order Completed', timestamp: at(20), properties: { order_id: '3001', total: 45, currency: 'GBP' }, context: { channel: 'web' } },
  ])
  bobID = await eventually(() => find(PHONE), { what: 'Bob' })
  assert.notEqual(annID, bobID)
  await batch(server.url, writeKey, [
    { type: 'track', anonymousId: 'a-order', event: 'Order Completed', timestamp: at(60), properties: { order_id: '3002', total: 20, currency: 'GBP' }, context: { channel: 'web', traits: { email: EMAIL, phone: PHONE } } },
  ])
  await eventually(async () => (await apiAs(server.url, ownerToken, `/api/v1/profiles/${annID}/merges`)).body.items?.length === 1, { what: 'the merge' })

  browser = await launchBrowser(tmp)
  page = browser.pages()[0] || (await browser.newPage())
  page.setDefaultTimeout(10000)
  // Kept for the report of a failed wait below: what the page threw or
  // logged as an error, and API calls that failed.
  page.on('pageerror', (err) => pageProblems.push('error: ' + err.message))
  page.on('console', (msg) => msg.type() === 'error' && pageProblems.push('console: ' + msg.text()))
  page.on('response', (r) => r.url().includes('/api/') && r.status() >= 400 && pageProblems.push(`${r.status()} ${r.request().method()} ${r.url()}`))
  page.on('requestfailed', (r) => pageProblems.push(`failed ${r.method()} ${r.url()}: ${r.failure()?.errorText}`))
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
  await page.getByRole('navigation', { name: 'Main' }).waitFor()
}

describe('customer page: un-merge', () => {
  it('agents see the merge but no Un-merge button', async () => {
    await signIn(AGENT)
    await page.goto(`${server.url}/customers/${annID}`)
    await page.getByTestId('merges').getByTestId('merge').first().waitFor()
    assert.equal(await page.getByRole('button', { name: /^Un-merge/ }).count(), 0)
    await page.context().clearCookies()
    await page.evaluate(() => localStorage.clear())
  })

  it('the owner un-merges Bob from Ann and both customers are back', async () => {
    await signIn(OWNER)
    await page.goto(`${server.url}/customers/${annID}`)
    await page.getByRole('button', { name: 'Un-merge Bob Stone from Ann Lee' }).click()
    const dialog = page.getByRole('dialog', { name: 'Un-merge Bob Stone from Ann Lee?' })
    await dialog.waitFor()
    const text = await dialog.textContent()
    assert.ok(text.includes('Bob Stone becomes a separate customer again'), text)
    assert.ok(text.includes('phone ' + PHONE), text)
    assert.ok(!text.includes(bobID) && !text.includes(annID), 'ids in the dialog: ' + text)
    const keep = dialog.getByRole('checkbox', { name: /Keep them apart/ })
    assert.equal(await keep.isChecked(), true, 'keeping them apart is the default')
    await shot(page, 'unmerge-confirm')
    await dialog.getByRole('button', { name: 'Un-merge', exact: true }).click()
    await dialog.waitFor({ state: 'hidden' })

    const notice = page.getByTestId('unmerged')
    await notice.filter({ hasText: 'is a separate customer again' }).waitFor()
    await page.getByTestId('undone').filter({ hasText: 'Un-merged by Olga Owner on' }).waitFor()
    assert.match(await page.getByTestId('undone').textContent(), /kept apart/)
    await shot(page, 'unmerge-done')

    // Server side: two customers with their own lifetime values.
    const ann = (await apiAs(server.url, ownerToken, `/api/v1/profiles/${annID}`)).body
    const bob = (await apiAs(server.url, ownerToken, `/api/v1/profiles/${bobID}`)).body
    assert.equal(ann.id, annID)
    assert.equal(bob.id, bobID)
    assert.equal(ann.computed.lifetime_value.GBP, 20)
    assert.equal(bob.computed.lifetime_value.GBP, 45)

    await notice.getByRole('link', { name: 'Bob Stone' }).click()
    await page.waitForURL(`${server.url}/customers/${bobID}`)
    // A fresh page load (profile, timeline, merges): slow on a loaded machine.
    // On a timeout, say where the page is, what the API holds for both
    // customers and what the page reported (this wait once caught a late
    // answer for Ann's page taking the user back there: the next test).
    try {
      await page.getByRole('heading', { name: 'Bob Stone' }).first().waitFor({ timeout: 30000 })
      await page.getByTestId('undone').filter({ hasText: 'Un-merged by Olga Owner' }).waitFor({ timeout: 30000 })
    } catch (err) {
      await shot(page, 'unmerge-bob-timeout').catch(() => {})
      const headings = await page.getByRole('heading').allTextContents().catch(() => [])
      const now = async (id) => {
        const r = await apiAs(server.url, ownerToken, `/api/v1/profiles/${id}`)
        return { status: r.status, id: r.body?.id, name: r.body?.name, merged_into: r.body?.merged_into }
      }
      err.message += `\npage ${page.url()} (Bob ${bobID}, Ann ${annID}), headings ${JSON.stringify(headings)}` +
        `\nBob now ${JSON.stringify(await now(bobID))}, Ann now ${JSON.stringify(await now(annID))}` +
        `\nthe page's errors and failed calls: ${JSON.stringify(pageProblems.slice(-20))}`
      throw err
    }
  })

  // A customer page's profile answer that arrives after the user moved on
  // to another customer's page must not take them back: the old page's
  // props already read the new route.
  it("a late answer for the page left behind does not pull the user back", async () => {
    const annURL = `${server.url}/api/v1/profiles/${annID}`
    let release
    const held = new Promise((r) => (release = r))
    const isAnn = (u) => u.href === annURL
    await page.route(isAnn, async (route) => {
      await held
      await route.continue()
    })
    try {
      await page.goto(`${server.url}/customers/${annID}`)
      await page.getByRole('status').filter({ hasText: 'Loading' }).first().waitFor()
      // Moved on in the app (as a link or the back button does) while Ann's profile is still on its way.
      await page.evaluate((id) => {
        history.pushState({}, '', '/customers/' + id)
        dispatchEvent(new PopStateEvent('popstate'))
      }, bobID)
      await page.getByRole('heading', { name: 'Bob Stone' }).first().waitFor()
      const answered = page.waitForEvent('requestfinished', (r) => r.url() === annURL)
      release()
      await answered
      // Let the old page's code after that answer run (a few tasks), then look.
      await page.evaluate(() => new Promise((r) => setTimeout(r, 300)))
      assert.equal(page.url(), `${server.url}/customers/${bobID}`)
      assert.equal(await page.getByRole('heading', { level: 1 }).first().textContent(), 'Bob Stone')
    } finally {
      release()
      await page.unroute(isAnn).catch(() => {})
    }
  })
})
