// The customers list a shop owner works in: search by last name, partial
// name and order number; known customers by default with a tab for
// anonymous visitors; sortable columns; the current view exported as CSV
// (streamed, with progress); staff tags and notes on the customer page,
// found again by search.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { apiAs, batch, buildOmni, eventually, launchBrowser, login, omniCLI, shot, startOmni, tmpDir } from './harness.js'

const OWNER = { name: 'Olga Owner', email: 'owner@shop.test', password: 'owner-pass-1' }
const AGENT = { name: 'Arno Agent', email: 'agent@shop.test', password: 'agent-pass-1' }

let tmp, server, browser, page, ownerToken, janeID

before(async () => {
  tmp = tmpDir()
  const bin = buildOmni(tmp)
  const dataDir = path.join(tmp, 'data')
  const writeKey = omniCLI(bin, dataDir, 'source', 'create', 'shop').match(/write key: (\S+)/)[1]
  server = await startOmni(bin, dataDir, { logName: 'omni-customers-list.log' })
  const owner = await apiAs(server.url, '', '/api/v1/setup/owner', { method: 'POST', body: JSON.stringify({ ...OWNER, passwordConfirm: OWNER.password }) })
  assert.equal(owner.status, 200, JSON.stringify(owner.body))
  ownerToken = await login(server.url, OWNER.email, OWNER.password)
  const agent = await apiAs(server.url, ownerToken, '/api/collections/staff/records', {
    method: 'POST',
    body: JSON.stringify({ ...AGENT, passwordConfirm: AGENT.password, role: 'agent', emailVisibility: true }),
  })
  assert.equal(agent.status, 200, JSON.stringify(agent.body))

  const t0 = Date.now() - 5 * 3600 * 1000
  const at = (min) => new Date(t0 + min * 60000).toISOString()
  const order = (email, id, total, min) => ({ type: 'track', anonymousId: 'a-' + id, event: 'Order Completed', timestamp: at(min), properties: { order_id: id, total, currency: 'GBP' }, context: { channel: 'web', traits: { email } } })
  await batch(server.url, writeKey, [
    { type: 'identify', anonymousId: 'a-jane', timestamp: at(0), traits: { email: 'jane@omni-shop.dev', first_name: 'Jane', last_name: 'Doherty' } },
    order('jane@omni-shop.dev', '1086', 30, 10),
    { type: 'identify', anonymousId: 'a-janet', timestamp: at(20), traits: { email: 'janet@omni-shop.dev', name: 'Janet Jones' } },
    order('janet@omni-shop.dev', '2001', 20, 30),
    order('janet@omni-shop.dev', '2002', 30, 40),
    { type: 'identify', anonymousId: 'a-sam', timestamp: at(50), traits: { email: 'sam@omni-shop.dev', name: 'Sam Adams' } },
    order('sam@omni-shop.dev', '3001', 10, 60),
    { type: 'page', anonymousId: 'a-visitor', name: 'Home', timestamp: at(70) },
  ])
  janeID = await eventually(async () => {
    const r = await apiAs(server.url, ownerToken, '/api/v1/profiles?who=all')
    if (r.body.totalItems !== 4) return null
    const jane = await apiAs(server.url, ownerToken, '/api/v1/profiles?q=jane%40omni-shop.dev')
    return jane.body.items?.[0]?.orders_count === 1 ? jane.body.items[0].id : null
  }, { what: 'the seeded customers' })

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
  const signOut = page.getByRole('button', { name: 'Sign out' })
  await page.getByLabel('Email', { exact: true }).or(signOut).first().waitFor()
  if (await signOut.isVisible()) await signOut.click()
  await page.getByLabel('Email', { exact: true }).fill(who.email)
  await page.getByLabel('Password', { exact: true }).fill(who.password)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByRole('navigation', { name: 'Main' }).waitFor()
}

const rows = () => page.getByTestId('customers-table').locator('tbody tr')
async function names() {
  return (await rows().locator('td:first-child').allTextContents()).map((s) => s.trim())
}
async function waitNames(want) {
  await eventually(async () => JSON.stringify(await names()) === JSON.stringify(want), { timeout: 10000, what: 'rows ' + want.join(', ') })
}

describe('customers list', () => {
  it('shows known customers by default, visitors on their own tab', async () => {
    await signIn(OWNER)
    await page.goto(server.url + '/customers')
    await page.getByTestId('customers-total').filter({ hasText: '3 customers' }).waitFor()
    assert.deepEqual((await names()).sort(), ['Janet Jones', 'Jane Doherty', 'Sam Adams'].sort())
    await page.getByRole('button', { name: 'Visitors' }).click()
    await page.getByTestId('customers-total').filter({ hasText: '1 visitors' }).waitFor()
    assert.match((await names())[0], /^Visitor /)
    await page.getByRole('button', { name: 'Customers', exact: true }).click()
    await page.getByTestId('customers-total').filter({ hasText: '3 customers' }).waitFor()
  })

  it('finds people by last name, partial name and order number', async () => {
    const box = page.getByLabel('Search')
    for (const [q, want] of [['doherty', ['Jane Doherty']], ['ada', ['Sam Adams']], ['#1086', ['Jane Doherty']], ['2002', ['Janet Jones']]]) {
      await box.fill(q)
      await waitNames(want)
    }
    await shot(page, 'customers-search-order-number')
    await box.fill('')
    await page.getByTestId('customers-total').filter({ hasText: '3 customers' }).waitFor()
  })

  it('sorts by clicking the column headers', async () => {
    await page.getByRole('button', { name: /^Spend/ }).click()
    await waitNames(['Janet Jones', 'Jane Doherty', 'Sam Adams'])
    assert.equal(await page.getByRole('columnheader', { name: /Spend/ }).getAttribute('aria-sort'), 'descending')
    await page.getByRole('button', { name: /^Spend/ }).click()
    await waitNames(['Sam Adams', 'Jane Doherty', 'Janet Jones'])
    await page.getByRole('button', { name: /^Name/ }).click()
    await waitNames(['Jane Doherty', 'Janet Jones', 'Sam Adams'])
    await page.getByRole('button', { name: /^Orders/ }).click()
    await page.getByRole('columnheader', { name: /Orders/ }).and(page.locator('[aria-sort="descending"]')).waitFor()
    await eventually(async () => (await names())[0] === 'Janet Jones', { timeout: 10000, what: 'most orders first' }) // Jane and Sam tie
    await page.getByRole('button', { name: /^Last seen/ }).click()
    await waitNames(['Sam Adams', 'Janet Jones', 'Jane Doherty'])
    const spend = await rows().first().getByTestId('spend').textContent()
    assert.match(spend, /10/)
    await shot(page, 'customers-sorted')
  })

  it('exports the current view as CSV, streamed with progress', async () => {
    await page.getByLabel('Search').fill('jan')
    await waitNames(['Janet Jones', 'Jane Doherty'])
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('export-csv').click()])
    const file = await download.path()
    const lines = fs.readFileSync(file, 'utf8').trim().split('\n')
    assert.equal(lines[0].split(',')[0], 'id')
    assert.equal(lines.length, 3, lines.join('\n'))
    assert.ok(lines[1].includes('Janet Jones') && lines[2].includes('Jane Doherty'), lines.join('\n'))
    assert.match(download.suggestedFilename(), /^customers-.*\.csv$/)
    await page.getByTestId('export-done').filter({ hasText: 'Exported 2 rows' }).waitFor()
  })

  it('agents see no export (personal data in bulk is for owners)', async () => {
    await signIn(AGENT)
    await page.goto(server.url + '/customers')
    await page.getByTestId('customers-total').waitFor()
    assert.equal(await page.getByTestId('export-csv').count(), 0)
    const agentToken = await login(server.url, AGENT.email, AGENT.password)
    const r = await apiAs(server.url, agentToken, '/api/v1/profiles/export.csv')
    assert.equal(r.status, 403)
  })

  it('tags and notes on the customer page are found by search', async () => {
    await page.goto(`${server.url}/customers/${janeID}`)
    const tags = page.getByTestId('tags')
    await tags.getByLabel('New tag').fill('VIP')
    await tags.getByRole('button', { name: 'Add tag' }).click()
    await tags.getByTestId('tag').filter({ hasText: 'vip' }).waitFor()
    await tags.getByLabel('New tag').fill('wholesale')
    await tags.getByRole('button', { name: 'Add tag' }).click()
    await tags.getByTestId('tag').filter({ hasText: 'wholesale' }).waitFor()
    await tags.getByRole('button', { name: 'Remove tag wholesale' }).click()
    await eventually(async () => (await tags.getByTestId('tag').count()) === 1, { what: 'one tag left' })

    const notes = page.getByTestId('notes')
    await notes.getByLabel('New note').fill('Prefers morning delivery')
    await notes.getByRole('button', { name: 'Add note' }).click()
    const note = notes.getByTestId('note').first()
    await note.filter({ hasText: 'Prefers morning delivery' }).waitFor()
    assert.match(await note.getByTestId('note-by').textContent(), /Arno Agent/)
    await shot(page, 'customer-tags-notes')

    // On the timeline, as a note entry.
    const tl = await apiAs(server.url, ownerToken, `/api/v1/profiles/${janeID}/timeline`)
    assert.equal(tl.body.items[0].type, 'note')
    assert.equal(tl.body.items[0].author, 'Arno Agent')

    await page.goto(server.url + '/customers')
    for (const q of ['vip', 'morning']) {
      await page.getByLabel('Search').fill(q)
      await waitNames(['Jane Doherty'])
    }
  })
})
