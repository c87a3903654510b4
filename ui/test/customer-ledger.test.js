// The customer page explains merges and lets staff change consent: a
// customer known by email and a WhatsApp chatter become one when an order
// carries the chatter's phone, and the merge history says so in a
// sentence; an agent edits SMS consent with a required reason, and who,
// when and why show in the consent history.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { apiAs, batch, buildOmni, eventually, launchBrowser, login, omniCLI, shot, startOmni, tmpDir } from './harness.js'

const OWNER = { name: 'Olga Owner', email: 'owner@shop.test', password: 'owner-pass-1' }
const AGENT = { name: 'Arno Agent', email: 'agent@shop.test', password: 'agent-pass-1' }
const EMAIL = 'cleo@omni-shop.dev'
const PHONE = '+447700900555'
const MERGED = `Merged because phone ${PHONE} was on shop order #1086 and a shop chat.`

let tmp, server, browser, page, ownerToken, agentToken, profileID

before(async () => {
  tmp = tmpDir()
  const bin = buildOmni(tmp)
  const dataDir = path.join(tmp, 'data')
  // A server source: channel messages may not come from a browser key.
  const writeKey = omniCLI(bin, dataDir, 'source', 'create', 'shop', '--kind', 'server').match(/secret key: (\S+)/)[1]
  server = await startOmni(bin, dataDir, { logName: 'omni-customer-ledger.log' })
  const owner = await apiAs(server.url, '', '/api/v1/setup/owner', { method: 'POST', body: JSON.stringify({ ...OWNER, passwordConfirm: OWNER.password }) })
  assert.equal(owner.status, 200, JSON.stringify(owner.body))
  ownerToken = await login(server.url, OWNER.email, OWNER.password)
  const agent = await apiAs(server.url, ownerToken, '/api/collections/staff/records', {
    method: 'POST',
    body: JSON.stringify({ ...AGENT, passwordConfirm: AGENT.password, role: 'agent', emailVisibility: true }),
  })
  assert.equal(agent.status, 200, JSON.stringify(agent.body))
  agentToken = await login(server.url, AGENT.email, AGENT.password)

  // Two people as far as Omni knows, until order #1086 carries both the email and the phone.
  const t0 = Date.now() - 3 * 3600 * 1000
  const at = (min) => new Date(t0 + min * 60000).toISOString()
  await batch(server.url, writeKey, [
    { type: 'track', anonymousId: 'a-order', event: 'Order Completed', timestamp: at(0), properties: { order_id: '1085', total: 20, currency: 'GBP' }, context: { channel: 'web', traits: { email: EMAIL } } },
    { type: 'track', anonymousId: 'a-chat', event: 'message.received', timestamp: at(30), properties: { text: 'Is it in stock?' }, context: { channel: 'whatsapp', traits: { phone: PHONE } } },
  ])
  await batch(server.url, writeKey, [
    { type: 'track', anonymousId: 'a-order2', event: 'Order Completed', timestamp: at(60), properties: { order_id: '1086', total: 35, currency: 'GBP' }, context: { channel: 'web', traits: { email: EMAIL, phone: PHONE } } },
  ])
  profileID = await eventually(async () => {
    const r = await apiAs(server.url, ownerToken, '/api/v1/profiles?q=' + encodeURIComponent(EMAIL))
    const p = r.body.items?.[0]
    if (!p) return null
    const merges = await apiAs(server.url, ownerToken, `/api/v1/profiles/${p.id}/merges`)
    return merges.body.items?.length === 1 ? p.id : null
  }, { what: 'the merge' })

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
  await page.getByRole('navigation', { name: 'Main' }).waitFor()
}

describe('customer page: merge ledger and consent edits', () => {
  it('the merge history says which identifier on which events joined the two customers', async () => {
    const api = await apiAs(server.url, ownerToken, `/api/v1/profiles/${profileID}/merges`)
    assert.equal(api.body.items[0].explanation, MERGED)
    await signIn(AGENT)
    await page.goto(`${server.url}/customers/${profileID}`)
    const merge = page.getByTestId('merges').getByTestId('merge')
    await merge.first().waitFor()
    assert.equal(await merge.count(), 1)
    const text = await merge.textContent()
    assert.ok(text.includes(MERGED), text)
    assert.ok(text.includes(`${PHONE} joined ${EMAIL}`), text)
    assert.ok(!text.includes(api.body.items[0].loser), 'the raw profile id is shown: ' + text)
    await shot(page, 'customer-merge-history')
  })

  it('an agent changes SMS consent; the reason is required; who, when and why show in the history', async () => {
    // The server refuses a change without a reason, naming the field.
    const refused = await apiAs(server.url, agentToken, `/api/v1/profiles/${profileID}/consent`, { method: 'POST', body: JSON.stringify({ channel: 'sms', status: 'unsubscribed' }) })
    assert.equal(refused.status, 400)
    assert.ok(refused.body.data.reason, JSON.stringify(refused.body))

    const dialog = page.getByRole('dialog', { name: 'Change SMS consent' })
    await page.getByRole('button', { name: 'Edit SMS consent' }).click()
    await dialog.waitFor()
    await dialog.getByLabel('Unsubscribed').check()
    await dialog.getByRole('button', { name: 'Save' }).click()
    await dialog.getByRole('alert').filter({ hasText: 'Say why consent changes' }).waitFor()
    assert.equal(await dialog.isVisible(), true)

    await dialog.getByLabel('Reason').fill('Customer asked by phone')
    await dialog.getByRole('button', { name: 'Save' }).click()
    await dialog.waitFor({ state: 'hidden' })

    const who = page.getByTestId('consent-who-sms')
    await who.filter({ hasText: 'Customer asked by phone' }).waitFor()
    assert.match(await who.textContent(), /Arno Agent \(staff\)/)
    const history = page.getByTestId('consent-history').locator('li')
    await history.first().filter({ hasText: 'Customer asked by phone' }).waitFor()
    assert.equal(await history.count(), 1)
    const line = await history.first().textContent()
    assert.match(line, /SMS: Unsubscribed/)
    assert.match(line, /Arno Agent \(staff\)/)
    await shot(page, 'customer-consent-edited')

    // The ledger holds it, as the messaging gate and segments read it.
    const p = await apiAs(server.url, ownerToken, `/api/v1/profiles/${profileID}`)
    const sms = p.body.consent.sms
    assert.equal(sms.status, 'unsubscribed')
    assert.equal(sms.source, 'staff')
    assert.equal(sms.reason, 'Customer asked by phone')
    assert.equal(sms.by.name, 'Arno Agent')
  })
})
