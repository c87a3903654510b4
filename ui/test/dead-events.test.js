// Dead events on the System page: an event the server cannot store (its
// customer's stored traits were damaged on disk) shows as a warning for
// owners, a retry that fails again shows the new attempt, and once the row
// is mended "Retry all" stores it and the warning goes. Agents never see it.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { apiAs, batch, buildDBExec, buildOmni, dbExec, eventually, launchBrowser, login, omniCLI, shot, startOmni, tmpDir } from './harness.js'

const OWNER = { name: 'Olga Owner', email: 'owner@shop.test', password: 'owner-pass-1' }
const AGENT = { name: 'Arno Agent', email: 'agent@shop.test', password: 'agent-pass-1' }
const CUSTOMER = 'dead@omni-shop.dev'
const BROKEN_TRAITS = `UPDATE profiles SET traits = '{"plan":"pro","vip":tru' WHERE email = '${CUSTOMER}'`
const MENDED_TRAITS = `UPDATE profiles SET traits = '{"plan":"pro"}' WHERE email = '${CUSTOMER}'`

let tmp, dataDir, dbexec, server, browser, page, writeKey, ownerToken, agentToken
let parked // the dead event as the API lists it

before(async () => {
  tmp = tmpDir()
  const bin = buildOmni(tmp)
  dbexec = buildDBExec(tmp)
  dataDir = path.join(tmp, 'data')
  writeKey = omniCLI(bin, dataDir, 'source', 'create', 'shop').match(/write key: (\S+)/)[1]
  server = await startOmni(bin, dataDir, { logName: 'omni-dead-events.log' })
  const owner = await apiAs(server.url, '', '/api/v1/setup/owner', { method: 'POST', body: JSON.stringify({ ...OWNER, passwordConfirm: OWNER.password }) })
  assert.equal(owner.status, 200, JSON.stringify(owner.body))
  ownerToken = await login(server.url, OWNER.email, OWNER.password)
  const agent = await apiAs(server.url, ownerToken, '/api/collections/staff/records', {
    method: 'POST',
    body: JSON.stringify({ ...AGENT, passwordConfirm: AGENT.password, role: 'agent', emailVisibility: true }),
  })
  assert.equal(agent.status, 200, JSON.stringify(agent.body))
  agentToken = await login(server.url, AGENT.email, AGENT.password)

  // A known customer, then their stored traits damaged while the server is down.
  await batch(server.url, writeKey, [{ type: 'identify', userId: 'u-dead', traits: { email: CUSTOMER, plan: 'pro' } }])
  await eventually(async () => (await apiAs(server.url, ownerToken, '/api/v1/profiles?q=' + encodeURIComponent(CUSTOMER))).body.items?.length === 1, { what: 'the customer profile' })
  await server.stop()
  assert.deepEqual(dbExec(dbexec, dataDir, BROKEN_TRAITS), [1])
  server = await startOmni(bin, dataDir, { logName: 'omni-dead-events.log' })

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
  await page.getByRole('heading', { name: 'Dashboard' }).waitFor()
  if (who !== OWNER) return
  // Owners watch dead events on the System page.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'System' }).click()
  await page.getByTestId('cards').waitFor()
}

async function signOut() {
  await page.getByRole('button', { name: 'Sign out' }).click()
  await page.getByRole('heading', { name: 'Sign in' }).waitFor()
}

const deadList = () => apiAs(server.url, ownerToken, '/api/v1/events/dead')

// retrySeen clicks a retry button and checks "Retrying…" while the server
// works: the first re-read of the list after the retry request is held
// until the progress has been seen, so the check does not race the server.
async function retrySeen(button, progress) {
  let posted = false
  let release
  const held = new Promise((r) => (release = r))
  await page.route('**/api/v1/events/dead/retry', (route) => {
    posted = true
    return route.continue()
  })
  await page.route('**/api/v1/events/dead', async (route) => {
    if (posted) await held
    return route.continue()
  })
  try {
    await button.click()
    await page.getByTestId('dead-retrying').filter({ hasText: progress }).waitFor()
  } finally {
    release()
    await page.unrouteAll({ behavior: 'wait' })
  }
}

describe('dead events on the System page', () => {
  it('owner: nothing while none are dead; the warning appears without a reload when one is', async () => {
    const asked = []
    page.on('response', (r) => r.url().endsWith('/api/v1/events/dead') && asked.push(r.status()))
    await signIn(OWNER)
    await eventually(() => asked.includes(200), { what: 'the System page to ask for dead events' })
    assert.equal(await page.getByTestId('dead-events').count(), 0)
    await page.evaluate(() => (window.sameDocument = true))

    await batch(server.url, writeKey, [{ type: 'track', userId: 'u-dead', event: 'Poisoned', messageId: 'm-poisoned' }])
    await eventually(async () => (await deadList()).body.count === 1, { what: 'the event to be parked' })
    parked = (await deadList()).body.items[0]
    assert.match(parked.event_id, /m-poisoned$/)
    const banner = page.getByTestId('dead-events')
    await banner.waitFor({ timeout: 30000 })
    assert.equal(await page.evaluate(() => window.sameDocument), true, 'the page was reloaded')
    assert.equal((await banner.getByTestId('dead-count').textContent()).trim(), '1')
    await banner.getByRole('heading', { name: '1 event could not be stored' }).waitFor()
    assert.match(await banner.getByTestId('dead-newest-error').textContent(), /traits are not valid JSON/)

    await banner.getByRole('button', { name: 'Details' }).click()
    const row = banner.getByTestId('dead-list').locator('tbody tr')
    assert.equal(await row.count(), 1)
    assert.match(await row.textContent(), /m-poisoned/)
    assert.equal((await row.getByTestId('dead-attempts').textContent()).trim(), String(parked.attempts))
    await shot(page, 'dead-events-banner')
  })

  it('a retry that fails again shows the new attempt and error', async () => {
    const banner = page.getByTestId('dead-events')
    await retrySeen(banner.getByRole('button', { name: `Retry ${parked.event_id}` }), /Retrying 1 event/)
    await banner.getByTestId('dead-outcome').filter({ hasText: '1 failed again' }).waitFor({ timeout: 30000 })
    const row = banner.getByTestId('dead-list').locator('tbody tr')
    assert.equal((await row.getByTestId('dead-attempts').textContent()).trim(), String(parked.attempts + 1))
    assert.match(await row.textContent(), /traits are not valid JSON/)
    const api = (await deadList()).body
    assert.equal(api.count, 1)
    assert.equal(api.items[0].attempts, parked.attempts + 1)
    assert.equal(api.items[0].retry_requested, false)
    await shot(page, 'dead-events-failed-again')
  })

  it('an agent sees no warning and the page never asks for dead events', async () => {
    await signOut()
    const asked = []
    page.on('request', (r) => r.url().includes('/api/v1/events/dead') && asked.push(r.url()))
    await signIn(AGENT)
    await page.getByRole('heading', { name: 'Dashboard' }).waitFor()
    assert.equal(await page.getByTestId('dead-events').count(), 0)
    // The System page is the owner's: an agent opening it is refused.
    await page.goto(server.url + '/system')
    await page.getByTestId('forbidden').waitFor()
    assert.equal(await page.getByTestId('dead-events').count(), 0)
    assert.deepEqual(asked, [])
    // Still one dead event, and the server refuses agents anyway.
    assert.equal((await deadList()).body.count, 1)
    assert.equal((await apiAs(server.url, agentToken, '/api/v1/events/dead')).status, 403)
    await signOut()
  })

  it('after the row is mended, Retry all stores the event and the warning goes', async () => {
    await signIn(OWNER)
    const banner = page.getByTestId('dead-events')
    await banner.waitFor()
    assert.deepEqual(dbExec(dbexec, dataDir, MENDED_TRAITS), [1])
    await retrySeen(banner.getByRole('button', { name: 'Retry all' }), /Retrying 1 event/)
    await banner.waitFor({ state: 'detached', timeout: 30000 })
    await page.getByTestId('dead-outcome').filter({ hasText: '1 event stored' }).waitFor()
    await shot(page, 'dead-events-retried')

    assert.equal((await deadList()).body.count, 0)
    const stored = await apiAs(server.url, ownerToken, '/api/collections/events/records?filter=' + encodeURIComponent(`event_id='${parked.event_id}'`))
    assert.equal(stored.body.totalItems, 1, JSON.stringify(stored.body))
    const health = await apiAs(server.url, '', '/api/v1/health')
    assert.equal(health.body.dead_events, 0)
    // Nothing is shown when there are none.
    await page.reload()
    await page.getByTestId('cards').waitFor()
    assert.equal(await page.getByTestId('dead-events').count(), 0)
  })
})
