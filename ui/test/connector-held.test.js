// Messages waiting for a disabled connector (held by the outbox so they
// do not stall other connectors' sends) are counted on its card. The rows
// are written while the server is down, as the outbox would have left them.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { apiAs, buildDBExec, buildOmni, dbExec, eventually, launchBrowser, login, shot, startOmni, tmpDir } from './harness.js'

const OWNER = { name: 'Olga Owner', email: 'owner@shop.test', password: 'owner-pass-1' }
const now = "strftime('%Y-%m-%d %H:%M:%fZ', 'now')"
const held = (i) =>
  `INSERT INTO outbox_held (id, connector, message_id, data, queued_at, holds, created) VALUES ('heldui00000000${i}', 'twilio', 'msg-${i}', ` +
  `'{"id":"msg-${i}","channel":"sms","to":{"phone":"+14155550100"},"text":"Your order shipped"}', ${now}, 1, ${now})`

let tmp, server, browser, page, ownerToken

before(async () => {
  tmp = tmpDir()
  const bin = buildOmni(tmp)
  const dbexec = buildDBExec(tmp)
  const dataDir = path.join(tmp, 'data')
  server = await startOmni(bin, dataDir, { logName: 'omni-connector-held.log' })
  const owner = await apiAs(server.url, '', '/api/v1/setup/owner', { method: 'POST', body: JSON.stringify({ ...OWNER, passwordConfirm: OWNER.password }) })
  assert.equal(owner.status, 200, JSON.stringify(owner.body))
  await server.stop()
  assert.deepEqual(dbExec(dbexec, dataDir, held(1), held(2), held(3)), [1, 1, 1])
  server = await startOmni(bin, dataDir, { logName: 'omni-connector-held.log' })
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

describe('held messages', () => {
  it('the disabled connector says how many messages wait for it', async () => {
    const api = await apiAs(server.url, ownerToken, '/api/v1/connectors/twilio')
    assert.equal(api.status, 200, JSON.stringify(api.body))
    assert.equal(api.body.held, 3)
    await page.goto(server.url + '/')
    await page.getByLabel('Email', { exact: true }).fill(OWNER.email)
    await page.getByLabel('Password', { exact: true }).fill(OWNER.password)
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.getByTestId('cards').waitFor()
    await page.goto(server.url + '/connectors')
    const card = page.locator('article[data-connector="twilio"]')
    await card.waitFor()
    await eventually(async () => /3 messages wait until .+ is enabled and running/.test((await card.getByTestId('connector-held').textContent().catch(() => '')) || ''), { what: 'the held count on the Twilio card', timeout: 20000 })
    assert.equal(await page.locator('article[data-connector="email"]').getByTestId('connector-held').count(), 0)
    await shot(page, 'connector-held')
  })
})
