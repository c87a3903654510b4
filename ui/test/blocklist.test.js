// Junk identifiers in Settings: an owner blocks the shop's front-desk
// address; two buyers given it stay two customers; a bad pattern is
// refused beside the field; the check box says what blocks a value; and
// unblocking removes the row. Built-in entries show but cannot be removed.
// Blocking a phone that already merged two customers previews the split
// and, with re-check, splits them.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { apiAs, batch, buildOmni, eventually, launchBrowser, login, omniCLI, shot, startOmni, tmpDir } from './harness.js'

const OWNER = { name: 'Olga Owner', email: 'owner@shop.test', password: 'owner-pass-1' }
const FRONT_DESK = 'front-desk@omni-shop.dev'

let tmp, server, browser, page, writeKey, ownerToken

before(async () => {
  tmp = tmpDir()
  const bin = buildOmni(tmp)
  const dataDir = path.join(tmp, 'data')
  writeKey = omniCLI(bin, dataDir, 'source', 'create', 'shop').match(/write key: (\S+)/)[1]
  server = await startOmni(bin, dataDir, { logName: 'omni-blocklist.log' })
  const owner = await apiAs(server.url, '', '/api/v1/setup/owner', { method: 'POST', body: JSON.stringify({ ...OWNER, passwordConfirm: OWNER.password }) })
  assert.equal(owner.status, 200, JSON.stringify(owner.body))
  ownerToken = await login(server.url, OWNER.email, OWNER.password)
  browser = await launchBrowser(tmp)
  page = browser.pages()[0] || (await browser.newPage())
  page.setDefaultTimeout(10000)
})

after(async () => {
  await browser?.close()
  await server?.stop()
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true })
})

const profileOf = async (q) => (await apiAs(server.url, ownerToken, '/api/v1/profiles?q=' + encodeURIComponent(q))).body.items || []

describe('junk identifiers', () => {
  it('an owner blocks an address in Settings and it joins nobody', async () => {
    await page.goto(server.url + '/')
    await page.getByLabel('Email', { exact: true }).fill(OWNER.email)
    await page.getByLabel('Password', { exact: true }).fill(OWNER.password)
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.getByTestId('cards').waitFor()
    await page.goto(server.url + '/settings')
    const section = page.getByRole('region', { name: 'Junk identifiers' })
    const table = section.getByRole('table', { name: 'Blocked identifiers' })
    await table.getByText('None added here yet.').waitFor()
    // The built-in list waits behind its count, without a way to remove it.
    const builtIn = section.getByRole('table', { name: 'Blocked by Omni, omni.yaml or a connector' })
    assert.equal(await builtIn.isVisible(), false, 'the built-in list starts folded')
    await section.getByText(/more are blocked by Omni itself/).click()
    await builtIn.getByRole('row').filter({ hasText: 'test@test.com' }).getByText('Built in').waitFor()
    assert.equal(await builtIn.getByRole('button').count(), 0)

    // A pattern that cannot match is refused beside the field.
    await section.getByLabel('Identifier to block').fill('/front-(/')
    await section.getByRole('button', { name: 'Block…', exact: true }).click()
    await section.getByRole('alert').filter({ hasText: 'regular expression' }).waitFor()

    await section.getByLabel('Identifier to block').fill(FRONT_DESK)
    await section.getByLabel('Note').fill('the till prints it on receipts')
    await section.getByRole('button', { name: 'Block…', exact: true }).click()
    // Before it applies, a preview says what it would do.
    const preview = section.getByRole('region', { name: 'Before blocking' })
    await preview.getByText('No customer holds it yet.').waitFor()
    assert.equal(await preview.getByRole('button', { name: 'Block and re-check existing' }).count(), 0, 'nothing to re-check')
    await preview.getByRole('button', { name: 'Block for new events only' }).click()
    const row = table.getByRole('row').filter({ hasText: FRONT_DESK })
    await row.getByText('Added here').waitFor()
    await row.getByText('the till prints it on receipts').waitFor()
    await shot(page, 'blocklist-settings')

    await section.getByLabel('Check a value').fill(FRONT_DESK.toUpperCase())
    await section.getByRole('button', { name: 'Check' }).click()
    await section.getByRole('status').filter({ hasText: 'Blocked by ' + FRONT_DESK }).waitFor()

    // Two walk-in buyers given the front-desk address stay two customers.
    await batch(server.url, writeKey, [
      { type: 'identify', userId: 'walkin-1', traits: { email: FRONT_DESK, name: 'Walk-in One' } },
      { type: 'identify', userId: 'walkin-2', traits: { email: FRONT_DESK, name: 'Walk-in Two' } },
    ])
    await eventually(async () => (await profileOf('Walk-in')).length === 2, { what: 'two walk-in customers' })
    assert.equal((await profileOf(FRONT_DESK)).length, 0, 'the blocked address is nobody\'s email')

    await row.getByRole('button', { name: 'Unblock ' + FRONT_DESK }).click()
    await row.waitFor({ state: 'detached' })
    await section.getByLabel('Check a value').fill(FRONT_DESK)
    await section.getByRole('button', { name: 'Check' }).click()
    await section.getByRole('status').filter({ hasText: 'Not blocked' }).waitFor()
  })

  it('blocking a phone that merged two customers previews the split and re-checking splits them', async () => {
    const PHONE = '+447700900142'
    const t0 = Date.now() - 3600 * 1000
    const at = (min) => new Date(t0 + min * 60000).toISOString()
    await batch(server.url, writeKey, [{ type: 'identify', anonymousId: 'pp-1', timestamp: at(0), traits: { email: 'pia@omni-shop.dev', name: 'Pia Park' } }])
    await eventually(async () => (await profileOf('pia@omni-shop.dev')).length === 1, { what: 'Pia' })
    await batch(server.url, writeKey, [{ type: 'identify', anonymousId: 'qr-1', timestamp: at(1), traits: { email: 'quin@omni-shop.dev', name: 'Quin Rowe' } }])
    await eventually(async () => (await profileOf('quin@omni-shop.dev')).length === 1, { what: 'Quin' })
    // The till typed the front-desk phone on both their orders.
    await batch(server.url, writeKey, [{ type: 'track', anonymousId: 'pp-2', event: 'Order Completed', timestamp: at(2), properties: { order_id: '4001', total: 10 }, context: { traits: { email: 'pia@omni-shop.dev', phone: PHONE } } }])
    await eventually(async () => (await profileOf(PHONE)).length === 1, { what: 'the phone on Pia' })
    await batch(server.url, writeKey, [{ type: 'track', anonymousId: 'qr-2', event: 'Order Completed', timestamp: at(3), properties: { order_id: '4002', total: 12 }, context: { traits: { email: 'quin@omni-shop.dev', phone: PHONE } } }])
    const idOf = async (email) => (await profileOf(email))[0]?.id
    await eventually(async () => (await idOf('pia@omni-shop.dev')) === (await idOf('quin@omni-shop.dev')), { what: 'the merge' })

    const section = page.getByRole('region', { name: 'Junk identifiers' })
    await section.getByLabel('Identifier to block').fill(PHONE)
    await section.getByRole('button', { name: 'Block…', exact: true }).click()
    const preview = section.getByRole('region', { name: 'Before blocking' })
    await preview.getByText('1 customer holds it (Pia Park)').waitFor()
    await preview.getByTestId('block-preview-splits').filter({ hasText: 'Blocking this would split 1 customer it merged (Quin Rowe from Pia Park)' }).waitFor()
    await shot(page, 'blocklist-preview')
    await preview.getByRole('button', { name: 'Block and re-check existing' }).click()
    await section.getByTestId('block-applied').filter({ hasText: 'Split 1 merge (Quin Rowe from Pia Park)' }).waitFor()
    await eventually(async () => (await idOf('pia@omni-shop.dev')) !== (await idOf('quin@omni-shop.dev')), { what: 'Pia and Quin apart' })
  })

  it('previews a lower identity cap naming the customer over it', async () => {
    // Rae gave two emails to the shop: one customer with two emails.
    await batch(server.url, writeKey, [
      { type: 'identify', userId: 'rae-1', traits: { email: 'rae@omni-shop.dev', name: 'Rae Sato' } },
      { type: 'identify', userId: 'rae-1', traits: { email: 'rae.work@omni-shop.dev' } },
    ])
    await eventually(async () => (await profileOf('rae.work@omni-shop.dev'))[0]?.id === (await profileOf('rae@omni-shop.dev'))[0]?.id && (await profileOf('rae.work@omni-shop.dev')).length === 1, { what: 'Rae with two emails' })
    const section = page.getByRole('region', { name: 'Identity cap' })
    await section.getByText('holds at most 5').waitFor()
    await section.getByLabel('Cap to preview').fill('1')
    await section.getByRole('button', { name: 'Preview' }).click()
    const result = section.getByTestId('cap-preview')
    await result.getByText(/With a cap of 1, \d+ customers? hold/).waitFor()
    await result.getByText(/Over the cap: .*Rae Sato \(2 email\)/).waitFor()
    await section.getByLabel('Cap to preview').fill('0')
    await section.getByRole('button', { name: 'Preview' }).click()
    await section.getByRole('alert').filter({ hasText: 'between 1 and 1000' }).waitFor()
    await shot(page, 'identity-cap-preview')
  })
})
