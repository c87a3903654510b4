// The Connectors page asks for public_url while links in messages would
// point at a loopback address, and says nothing once it is set.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { apiAs, buildOmni, launchBrowser, startOmni, tmpDir } from './harness.js'

const OWNER = { name: 'Olga Owner', email: 'owner@omni-shop.dev', password: 'owner-pass-1' }

let tmp, bin, dataDir, server, browser, page

before(async () => {
  tmp = tmpDir()
  bin = buildOmni(tmp)
  dataDir = path.join(tmp, 'data')
  server = await startOmni(bin, dataDir, { logName: 'omni-public-url.log' })
  const owner = await apiAs(server.url, '', '/api/v1/setup/owner', { method: 'POST', body: JSON.stringify({ ...OWNER, passwordConfirm: OWNER.password }) })
  assert.equal(owner.status, 200, JSON.stringify(owner.body))
  browser = await launchBrowser(tmp)
  page = browser.pages()[0] || (await browser.newPage())
  page.setDefaultTimeout(10000)
})

after(async () => {
  delete process.env.OMNI_PUBLIC_URL
  await browser?.close()
  await server?.stop()
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true })
})

async function signIn() {
  await page.goto(server.url + '/')
  await page.getByLabel('Email', { exact: true }).fill(OWNER.email)
  await page.getByLabel('Password', { exact: true }).fill(OWNER.password)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByTestId('cards').waitFor()
}

describe('public URL notice', () => {
  it('shows on the Connectors page while public_url is loopback, and not once set', async () => {
    await signIn()
    await page.goto(server.url + '/connectors')
    const notice = page.getByTestId('public-url-notice')
    await notice.waitFor()
    assert.match(await notice.innerText(), /http:\/\/127\.0\.0\.1:\d+.*public_url/s)

    await server.stop()
    process.env.OMNI_PUBLIC_URL = 'https://shop.omni-shop.dev'
    server = await startOmni(bin, dataDir, { logName: 'omni-public-url-2.log' })
    await signIn()
    await page.goto(server.url + '/connectors')
    await page.getByRole('heading', { name: 'Connectors', level: 1 }).waitFor()
    // The settings call has answered before the page shows its list.
    await page.waitForLoadState('networkidle')
    assert.equal(await page.getByTestId('public-url-notice').count(), 0)
  })
})
