// First run on an address other than loopback: the owner can only be created
// with the one-time setup token that `omni serve` prints in its log.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { apiAs, buildOmni, eventually, launchBrowser, shot, startOmni, tmpDir } from './harness.js'

const OWNER = { name: 'Olga Owner', email: 'owner@shop.test', password: 'owner-pass-1' }

let tmp, server, browser, page

before(async () => {
  tmp = tmpDir()
  const bin = buildOmni(tmp)
  server = await startOmni(bin, path.join(tmp, 'data'), { host: '0.0.0.0', logName: 'omni-setup-token.log' })
  browser = await launchBrowser(tmp)
  page = browser.pages()[0] || (await browser.newPage())
  page.setDefaultTimeout(10000)
})

after(async () => {
  await browser?.close()
  await server?.stop()
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true })
})

async function fillOwner() {
  await page.getByLabel('Your name').fill(OWNER.name)
  await page.getByLabel('Email', { exact: true }).fill(OWNER.email)
  await page.getByLabel('Password', { exact: true }).fill(OWNER.password)
  await page.getByLabel('Repeat password').fill(OWNER.password)
}

describe('setup token', () => {
  it('is required off loopback and comes from the link in the log', async () => {
    const setup = await apiAs(server.url, '', '/api/v1/setup')
    assert.deepEqual(setup.body, { needs_owner: true, token_required: true })
    const link = await eventually(() => server.log().match(/url="?(http:\/\/[^\s"]+\/\?setup=(\w+))/), { what: 'the setup link in the log' })
    const token = link[2]
    assert.equal(new URL(link[1]).port, new URL(server.url).port)

    // Without the link: the page asks for the token and refuses a wrong one.
    await page.goto(server.url + '/')
    await page.getByRole('heading', { name: /Create the owner account/ }).waitFor()
    await page.getByLabel('Setup token').fill('not-the-token')
    await fillOwner()
    await page.getByRole('button', { name: 'Create owner account' }).click()
    await page.getByText(/valid setup token is required/).waitFor()
    await shot(page, 'setup-token-wrong')
    assert.equal((await apiAs(server.url, '', '/api/v1/setup')).body.needs_owner, true)

    // The link from the log: no token field, the owner is created.
    await page.goto(server.url + '/?setup=' + token)
    await page.getByRole('heading', { name: /Create the owner account/ }).waitFor()
    assert.equal(await page.getByLabel('Setup token').count(), 0)
    await fillOwner()
    await shot(page, 'setup-token-link')
    await page.getByRole('button', { name: 'Create owner account' }).click()
    await page.getByRole('heading', { name: 'Dashboard' }).waitFor()
    assert.ok(!page.url().includes('setup='), `the token stays in the address bar: ${page.url()}`)
    assert.equal((await apiAs(server.url, '', '/api/v1/setup')).body.needs_owner, false)
  })
})
