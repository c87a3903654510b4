// Junk identifiers in Settings: an owner blocks the shop's front-desk
// address; two buyers given it stay two customers; a bad pattern is
// refused beside the field; the check box says what blocks a value; and
// unblocking removes the row. Built-in entries show but cannot be removed.
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
    // The built-in list is shown, without a way to remove it.
    await table.getByRole('row').filter({ hasText: 'test@test.com' }).getByText('Built in').waitFor()
    assert.equal(await table.getByRole('row').filter({ hasText: 'test@test.com' }).getByRole('button').count(), 0)

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
})
