// The System page's "Events by channel" chart on Today: its time axis spans
// the hours around now, not years. In the first hour of the day Today has a
// single hourly bucket, which uPlot used to pad into a range of years.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { apiAs, batch, buildOmni, eventually, launchBrowser, omniCLI, shot, startOmni, tmpDir } from './harness.js'

const OWNER = { name: 'Olga Owner', email: 'owner@shop.test', password: 'owner-pass-1' }

let tmp, server, browser, page, writeKey

before(async () => {
  tmp = tmpDir()
  const bin = buildOmni(tmp)
  const dataDir = path.join(tmp, 'data')
  writeKey = omniCLI(bin, dataDir, 'source', 'create', 'shop').match(/write key: (\S+)/)[1]
  server = await startOmni(bin, dataDir, { logName: 'omni-dashboard-today.log' })
  const owner = await apiAs(server.url, '', '/api/v1/setup/owner', { method: 'POST', body: JSON.stringify({ ...OWNER, passwordConfirm: OWNER.password }) })
  assert.equal(owner.status, 200, JSON.stringify(owner.body))
  browser = await launchBrowser(tmp)
  page = browser.pages()[0] || (await browser.newPage())
  page.setDefaultTimeout(10000)
})

after(async () => {
  await browser?.close()
  await server?.stop()
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true })
})

describe('System page on Today', () => {
  it('draws one event on an axis of hours around now', async () => {
    await batch(server.url, writeKey, [{ type: 'track', userId: 'one-event', event: 'Product Viewed', context: { channel: 'web' } }])
    await page.goto(server.url + '/')
    await page.getByLabel('Email', { exact: true }).fill(OWNER.email)
    await page.getByLabel('Password', { exact: true }).fill(OWNER.password)
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.getByRole('heading', { name: 'Dashboard' }).waitFor()
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'System' }).click()
    await page.getByTestId('cards').waitFor()
    const chart = page.locator('.chart').first()
    await eventually(async () => (await chart.getAttribute('data-x-min')) !== null, { what: 'the events chart to be drawn', timeout: 30000 })
    const min = Number(await chart.getAttribute('data-x-min'))
    const max = Number(await chart.getAttribute('data-x-max'))
    const now = Date.now() / 1000
    assert.ok(max > min, `an x range, got ${min}..${max}`)
    assert.ok(max - min <= 2 * 86400, `at most two days wide, got ${(max - min) / 86400} days`)
    assert.ok(Math.abs(now - min) < 2 * 86400 && Math.abs(max - now) < 2 * 86400, `around now (${now}), got ${min}..${max}`)
    // Events are counted: the y axis reads 0, 1, 2 …, never 0.2 of an event.
    const yLabels = (await chart.getAttribute('data-y-labels')).split('|')
    assert.ok(yLabels.length >= 2, `y axis labels ${yLabels}`)
    for (const l of yLabels) assert.match(l, /^\d[\d,]*$/, `y axis labels ${yLabels.join(', ')}`)
    await shot(page, 'system-today')
  })

  // Today has one bucket only between 00:00 and 01:00 UTC. To meet that case
  // at any hour, the server's real answer is cut to its first bucket on its way
  // to the page.
  it('draws a single bucket (the first hour of the day) an hour either side of it', async () => {
    let first = null // the one bucket the page got, in unix seconds
    await page.route('**/api/v1/dashboard**', async (route) => {
      const res = await route.fetch()
      const body = await res.json()
      body.series.buckets = body.series.buckets.slice(0, 1)
      first = Date.parse(body.series.buckets[0]) / 1000
      for (const ch of Object.keys(body.series.channels || {})) body.series.channels[ch] = body.series.channels[ch].slice(0, 1)
      await route.fulfill({ response: res, json: body })
    })
    try {
      await page.reload()
      const chart = page.locator('.chart').first()
      await eventually(async () => (await chart.getAttribute('data-x-min')) !== null, { what: 'the one-bucket chart to be drawn', timeout: 30000 })
      const min = Number(await chart.getAttribute('data-x-min'))
      const max = Number(await chart.getAttribute('data-x-max'))
      assert.equal(max - min, 2 * 3600, `two hours wide, got ${(max - min) / 3600} hours`)
      assert.equal(min + 3600, first, `centred on the one bucket (${first}), got ${min}..${max}`)
    } finally {
      await page.unroute('**/api/v1/dashboard**')
    }
  })
})
