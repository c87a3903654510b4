// The dashboard and reports against the real binary: orders and a refund
// posted by a server source show as hand-computed net revenue; the range and
// the comparison live in the URL and carry across report tabs; the cohort
// grid shows a retention share; a table downloads as CSV.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { apiAs, batch, buildOmni, eventually, launchBrowser, login, omniCLI, shot, startOmni, tmpDir } from './harness.js'

const OWNER = { name: 'Olga Owner', email: 'owner@omni-shop.dev', password: 'owner-pass-1' }

// The seeded shop (EUR, the base currency). Dates are relative to now;
// month M is the current one.
//   Ann  M-3 day 10: order A1 100      M-2 day 10: order A2 70
//   Ben  M-3 day 10: order B1 60
//   Dan  yesterday:  order D1 40
//   Cara today:      order C1 50, then refund R1 of 20 on it
//   Eve  today:      order E1 80
// Today:       net = 50 + 80 − 20 = 110, orders 2
// Yesterday:   net = 40 (the previous period of Today)   change (110 − 40) / 40 = +175 %
// Last 7 days: net = 110 + 40 = 150, orders 3
// Cohort M-3 (Ann, Ben): 2 customers; month 1 (M-2): Ann ordered again → 1/2 = 50 %.
const now = new Date()
const monthsAgo = (k) => new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - k, 10, 12))
const iso = (d) => d.toISOString()
const cohortMonth = monthsAgo(3).toISOString().slice(0, 7) // YYYY-MM
const justNow = new Date(now.getTime() - 60 * 1000)
const yesterday = new Date(now.getTime() - 24 * 3600 * 1000)

function order(user, email, id, total, at, channel = 'web') {
  return [
    { type: 'identify', userId: user, traits: { email }, timestamp: iso(at), context: { channel } },
    { type: 'track', userId: user, event: 'Order Completed', timestamp: iso(at), properties: { order_id: id, total, currency: 'EUR' }, context: { channel } },
  ]
}

let tmp, server, browser, page, key, token

before(async () => {
  tmp = tmpDir()
  const bin = buildOmni(tmp)
  const dataDir = path.join(tmp, 'data')
  key = omniCLI(bin, dataDir, 'source', 'create', 'shop-server', '--kind', 'server').match(/secret key: (\S+)/)[1]
  server = await startOmni(bin, dataDir, { logName: 'omni-reports.log' })
  const owner = await apiAs(server.url, '', '/api/v1/setup/owner', { method: 'POST', body: JSON.stringify({ ...OWNER, passwordConfirm: OWNER.password }) })
  assert.equal(owner.status, 200, JSON.stringify(owner.body))
  token = await login(server.url, OWNER.email, OWNER.password)
  const cur = await apiAs(server.url, token, '/api/v1/metrics/settings/currency', { method: 'PUT', body: JSON.stringify({ base: 'EUR', rates: {} }) })
  assert.equal(cur.status, 200, JSON.stringify(cur.body))

  await batch(server.url, key, [
    ...order('ann', 'ann@omni-shop.dev', 'A1', 100, monthsAgo(3)),
    ...order('ben', 'ben@omni-shop.dev', 'B1', 60, monthsAgo(3), 'pos'),
    ...order('ann', 'ann@omni-shop.dev', 'A2', 70, monthsAgo(2)),
    ...order('dan', 'dan@omni-shop.dev', 'D1', 40, yesterday),
    ...order('cara', 'cara@omni-shop.dev', 'C1', 50, justNow),
    ...order('eve', 'eve@omni-shop.dev', 'E1', 80, justNow, 'pos'),
  ])
  await batch(server.url, key, [
    { type: 'track', userId: 'cara', event: 'Order Refunded', timestamp: iso(now), properties: { order_id: 'C1', refund_id: 'R1', total: 20, currency: 'EUR' }, context: { channel: 'web' } },
  ])
  // The rollups are kept by the metrics consumer: wait until they have it all.
  let last
  await eventually(
    async () => {
      last = await apiAs(server.url, token, '/api/v1/metrics/sales?range=7d')
      return last.status === 200 && last.body.totals.net_revenue === 150 && last.body.totals.orders === 3
    },
    { what: 'the sales report to count the seeded orders and refund', timeout: 60000 },
  ).catch((err) => {
    throw new Error(`${err.message}; last answer ${last?.status} ${JSON.stringify(last?.body?.totals ?? last?.body)}`)
  })

  browser = await launchBrowser(tmp)
  page = browser.pages()[0] || (await browser.newPage())
  page.setDefaultTimeout(15000)
})

after(async () => {
  await browser?.close()
  await server?.stop()
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true })
})

const amount = async (loc) => Number((await loc.textContent()).replace(/[^\d.]/g, ''))

describe('reports', () => {
  it('dashboard: net revenue of today with the refund taken off, then yesterday beside it', async () => {
    await page.goto(server.url + '/?range=today')
    await page.getByLabel('Email', { exact: true }).fill(OWNER.email)
    await page.getByLabel('Password', { exact: true }).fill(OWNER.password)
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.getByRole('heading', { name: 'Dashboard' }).waitFor()
    const net = page.getByTestId('tile-net_revenue')
    await eventually(async () => (await amount(net.getByTestId('tile-value'))) === 110, { what: 'net revenue 110 today' })
    assert.equal(await amount(page.getByTestId('tile-orders').getByTestId('tile-value')), 2)
    assert.equal(await page.getByRole('button', { name: 'Today' }).getAttribute('aria-pressed'), 'true')

    await page.getByLabel('Compare with the previous period').check()
    await eventually(async () => /previous/.test(page.url()) && (await net.getByTestId('tile-change').count()) === 1, { what: 'the comparison' })
    assert.match(await net.getByTestId('tile-change').textContent(), /up\s*175\s*%/)
    assert.match(await net.textContent(), /vs\s*€40\.00/)
    // The chart has its figures beside it, the previous period too.
    await page.getByText('Show the figures').click()
    await page.locator('details table').getByRole('columnheader', { name: 'Net revenue (previous)' }).waitFor()
    await shot(page, 'reports-dashboard-today')

    await page.getByRole('button', { name: '7 days' }).click()
    await eventually(async () => (await amount(net.getByTestId('tile-value'))) === 150, { what: 'net revenue 150 over 7 days' })
    assert.equal(new URL(page.url()).searchParams.get('range'), '7d')
    assert.equal(new URL(page.url()).searchParams.get('compare'), 'previous')
    // A reload keeps the range and the comparison.
    await page.reload()
    await eventually(async () => (await amount(page.getByTestId('tile-net_revenue').getByTestId('tile-value'))) === 150, { what: '7 days after a reload' })
    assert.equal(await page.getByRole('button', { name: '7 days' }).getAttribute('aria-pressed'), 'true')
    assert.equal(await page.getByLabel('Compare with the previous period').isChecked(), true)
  })

  it('the tile opens Sales with the same range; the tabs carry it to Customers and its cohort grid', async () => {
    await page.getByTestId('tile-net_revenue').click()
    await page.getByRole('heading', { name: 'Sales', level: 1 }).waitFor()
    assert.equal(new URL(page.url()).pathname, '/reports/sales')
    assert.equal(new URL(page.url()).searchParams.get('range'), '7d')
    await eventually(async () => (await amount(page.getByTestId('tile-net_revenue').getByTestId('tile-value'))) === 150, { what: 'Sales net revenue 150' })
    await page.getByTestId('table-by_channel').waitFor()
    await shot(page, 'reports-sales')

    await page.getByRole('navigation', { name: 'Reports' }).getByRole('link', { name: 'Customers' }).click()
    await page.getByRole('heading', { name: 'Customers', level: 1 }).waitFor()
    assert.equal(new URL(page.url()).searchParams.get('range'), '7d')
    assert.equal(new URL(page.url()).searchParams.get('compare'), 'previous')
    const grid = page.getByTestId('table-cohorts')
    const label = new Date(Number(cohortMonth.slice(0, 4)), Number(cohortMonth.slice(5)) - 1, 1).toLocaleDateString('en-US', { month: 'short', year: 'numeric' })
    const row = grid.locator('tbody tr').filter({ has: page.getByRole('rowheader', { name: label }) })
    await row.waitFor()
    assert.equal((await row.locator('td[data-col=customers]').textContent()).trim(), '2')
    assert.equal((await row.locator('td[data-col=m1]').textContent()).trim(), '50%')
    // Shaded by the share, the share in the text.
    assert.match(await row.locator('td[data-col=m1]').getAttribute('style'), /color-mix/)
    await shot(page, 'reports-customers-cohorts')
  })

  it('downloads the cohort grid as CSV', async () => {
    const grid = page.getByTestId('table-cohorts')
    const [download] = await Promise.all([page.waitForEvent('download'), grid.getByRole('button', { name: /Download .* CSV/ }).click()])
    assert.match(download.suggestedFilename(), /^omni-customers-cohorts-.*\.csv$/)
    const csv = fs.readFileSync(await download.path(), 'utf8')
    const lines = csv.trim().split(/\r?\n/)
    assert.match(lines[0], /^First order,Customers,Month 1,Month 2,/)
    const line = lines.find((l) => l.startsWith(cohortMonth + ','))
    assert.ok(line, `a row for ${cohortMonth} in:\n${csv}`)
    assert.match(line, new RegExp(`^${cohortMonth},2,0\\.5,`))
  })

  it('an agent reads the reports but not the System page', async () => {
    const agent = { email: 'agent@omni-shop.dev', password: 'agent-pass-1' }
    const r = await apiAs(server.url, token, '/api/collections/staff/records', {
      method: 'POST',
      body: JSON.stringify({ ...agent, name: 'Arno Agent', passwordConfirm: agent.password, role: 'agent', emailVisibility: true }),
    })
    assert.equal(r.status, 200, JSON.stringify(r.body))
    const agentToken = await login(server.url, agent.email, agent.password)
    const sales = await apiAs(server.url, agentToken, '/api/v1/metrics/sales?range=today')
    assert.equal(sales.status, 200)
    assert.equal(sales.body.totals.net_revenue, 110)
    await page.getByRole('button', { name: 'Sign out' }).click()
    await page.getByLabel('Email', { exact: true }).fill(agent.email)
    await page.getByLabel('Password', { exact: true }).fill(agent.password)
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.getByRole('heading', { name: 'Dashboard' }).waitFor()
    assert.equal(await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'System' }).count(), 0)
    await page.goto(server.url + '/system')
    await page.getByTestId('forbidden').waitFor()
  })

  it('works at phone width', async () => {
    await page.setViewportSize({ width: 390, height: 844 })
    await page.goto(server.url + '/reports/customers?range=7d')
    await page.getByTestId('table-cohorts').waitFor()
    // Nothing but the tables' own scroll areas is wider than the screen.
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
    assert.ok(overflow <= 1, `page wider than the phone by ${overflow}px`)
    await shot(page, 'reports-phone-customers')
    await page.setViewportSize({ width: 1280, height: 860 })
  })
})
