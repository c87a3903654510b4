// Journeys: the owner builds the abandoned-checkout journey from its recipe
// in the gallery, publishes it, a customer starts a checkout through the
// tracking API, and the run shows on the customer's page (with its steps,
// and an End button that ends it) and in the list's entered count; the
// results page shows the figures; an agent reads but creates nothing.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { apiAs, batch, buildOmni, eventually, launchBrowser, login, omniCLI, phoneFit, shot, startOmni, tmpDir } from './harness.js'

const OWNER = { name: 'Olga Owner', email: 'olga@omni-shop.dev', password: 'owner-pass-1' }
const AGENT = { name: 'Arno Agent', email: 'agent@shop.test', password: 'agent-pass-1' }
const CUSTOMER = { userId: 'sam-1', email: 'sam@omni-shop.dev', first_name: 'Sam', last_name: 'Carter' }

let tmp, server, browser, page, ownerToken, writeKey, profileID, journeyID, journeyName, created

before(async () => {
  tmp = tmpDir()
  const bin = buildOmni(tmp)
  const dataDir = path.join(tmp, 'data')
  writeKey = omniCLI(bin, dataDir, 'source', 'create', 'shop').match(/write key: (\S+)/)[1]
  // The shop's currency, as omni.yaml would set it: a journey with no
  // conversion yet shows its revenue in it.
  server = await startOmni(bin, dataDir, { logName: 'omni-journeys.log', env: { OMNI_PROFILES_BASE_CURRENCY: 'EUR' } })
  const owner = await apiAs(server.url, '', '/api/v1/setup/owner', { method: 'POST', body: JSON.stringify({ ...OWNER, passwordConfirm: OWNER.password }) })
  assert.equal(owner.status, 200, JSON.stringify(owner.body))
  ownerToken = await login(server.url, OWNER.email, OWNER.password)
  const agent = await apiAs(server.url, ownerToken, '/api/collections/staff/records', {
    method: 'POST',
    body: JSON.stringify({ ...AGENT, passwordConfirm: AGENT.password, role: 'agent', emailVisibility: true }),
  })
  assert.equal(agent.status, 200, JSON.stringify(agent.body))
  await batch(server.url, writeKey, [
    { type: 'identify', userId: CUSTOMER.userId, traits: { email: CUSTOMER.email, first_name: CUSTOMER.first_name, last_name: CUSTOMER.last_name } },
  ])
  profileID = await eventually(async () => (await apiAs(server.url, ownerToken, '/api/v1/profiles?q=' + encodeURIComponent(CUSTOMER.email))).body.items?.[0]?.id, {
    what: 'the customer',
  })
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
  await page.getByTestId('cards').waitFor()
}

async function signOut() {
  await page.getByRole('button', { name: 'Sign out' }).click()
  await page.getByRole('heading', { name: 'Sign in' }).waitFor()
}

const journeyRow = () => page.getByTestId('journey-row').filter({ has: page.locator(`a[href="/journeys/${journeyID}"]`) })

describe('journeys', () => {
  it('the owner builds the abandoned-checkout journey from its recipe and publishes it', async (t) => {
    await signIn(OWNER)
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Journeys' }).click()
    await page.getByRole('heading', { name: 'Journeys' }).waitFor()
    await page.getByText('No journeys yet.').waitFor()

    await page.getByRole('button', { name: 'New journey' }).click()
    const gallery = page.getByTestId('recipe-gallery')
    await gallery.getByRole('button', { name: 'Start from scratch' }).waitFor()
    const recipe = gallery.getByRole('button', { name: /Use recipe .*abandoned checkout/i })
    await recipe.waitFor()
    await shot(page, 'journeys-gallery')
    await recipe.click()

    const form = gallery.getByRole('form', { name: 'Create journey' })
    journeyName = 'Abandoned cart'
    await form.getByLabel('Name').fill(journeyName)
    await form.getByRole('button', { name: 'Create journey' }).click()
    await page.waitForURL(/\/journeys\/[a-z0-9]+$/)
    journeyID = new URL(page.url()).pathname.split('/').pop()

    const got = await apiAs(server.url, ownerToken, '/api/v1/journeys/' + journeyID)
    assert.equal(got.status, 200, JSON.stringify(got.body))
    assert.equal(got.body.name, journeyName)
    assert.equal(got.body.status, 'draft')
    assert.ok(got.body.recipe, 'the journey remembers its recipe')
    assert.equal(got.body.graph?.trigger?.event, 'checkout.started')
    created = got.body.graph

    // Through the builder's Publish button when the builder is in this build,
    // else through the API.
    const publish = page.getByRole('button', { name: 'Publish', exact: true })
    const viaBuilder = await publish.waitFor({ timeout: 8000 }).then(() => true, () => false)
    if (viaBuilder) {
      await publish.click()
      const dialog = page.getByRole('dialog', { name: 'Publish version 1' })
      await dialog.getByLabel('Version note').fill('first version')
      await dialog.getByRole('button', { name: 'Publish' }).click()
      await page.getByText('Published version 1.').waitFor()
    } else {
      const r = await apiAs(server.url, ownerToken, `/api/v1/journeys/${journeyID}/publish`, { method: 'POST', body: JSON.stringify({ note: 'first version' }) })
      assert.equal(r.status, 200, JSON.stringify(r.body))
    }
    t.diagnostic(`published through ${viaBuilder ? "the builder's Publish button" : 'the API (no builder in this build)'}`)
    await eventually(async () => (await apiAs(server.url, ownerToken, '/api/v1/journeys/' + journeyID)).body.status === 'live', { what: 'the journey to be live' })

    await page.goto(server.url + '/journeys')
    await journeyRow().getByTestId('journey-status').getByText('Live').waitFor()
    assert.equal((await journeyRow().getByTestId('runs-total').textContent()).trim(), '0')
    await page.getByRole('button', { name: 'Draft', exact: true }).click()
    await page.getByText('No draft journeys.').waitFor()
    await page.getByRole('button', { name: 'Live', exact: true }).click()
    await journeyRow().waitFor()
  })

  it('a checkout started through the tracking API puts the customer in the journey, on their page and in the list', async () => {
    assert.ok(journeyID, 'the journey from the first test')
    await batch(server.url, writeKey, [
      { type: 'track', userId: CUSTOMER.userId, event: 'Checkout Started', properties: { checkout_id: 'co-1001', total: 80, currency: 'EUR' } },
    ])

    // The customer's page lists the run with its state in words.
    await page.goto(`${server.url}/customers/${profileID}`)
    const card = page.getByTestId('customer-journeys')
    const run = card.getByTestId('journey-run').filter({ hasText: journeyName })
    await eventually(
      async () => {
        if (await run.count()) return true
        await page.reload()
        await card.waitFor()
        return false
      },
      { what: 'the run on the customer page' },
    )
    await run.getByText(`In ${journeyName},`).waitFor()
    // The engine moves it into the recipe's first step, waiting for the
    // order: the state in words, its time in the browser's locale.
    const state = await eventually(
      async () => {
        const text = await run.getByTestId('run-state').textContent()
        if (/^waiting for order\.placed until /.test(text)) return text
        await page.reload()
        await run.waitFor()
        return false
      },
      { what: 'the run waiting for the order' },
    )
    assert.doesNotMatch(state, /\d{4}-\d{2}-\d{2}T/, 'times are shown in the shop\'s way, not as RFC 3339')
    await run.getByRole('button', { name: `Show steps of ${journeyName}` }).click()
    await run.getByRole('button', { name: `Hide steps of ${journeyName}` }).waitFor()
    await shot(page, 'journeys-customer')

    // The list counts the entry.
    await page.goto(server.url + '/journeys')
    await eventually(
      async () => {
        await journeyRow().getByTestId('runs-total').waitFor()
        if ((await journeyRow().getByTestId('runs-total').textContent()).trim() === '1') return true
        await page.reload()
        return false
      },
      { what: 'entered = 1 on the list' },
    )
    assert.equal((await journeyRow().getByTestId('runs-active').textContent()).trim(), '1')
    await shot(page, 'journeys-list')
    // On a phone the list's wide table scrolls inside its box; the page
    // itself (its hidden "Results" header included) keeps the phone's width.
    await page.setViewportSize({ width: 390, height: 844 })
    const fit = await phoneFit(page)
    await page.setViewportSize({ width: 1280, height: 860 })
    assert.ok(fit.sideways <= 0, `the journeys list scrolls ${fit.sideways}px sideways on a phone`)
  })

  it('the results page shows the figures', async () => {
    await journeyRow().getByRole('link', { name: /^Results of / }).click()
    await page.getByRole('heading', { name: new RegExp(journeyName) }).waitFor()
    const stats = await apiAs(server.url, ownerToken, `/api/v1/journeys/${journeyID}/stats`)
    assert.equal(stats.status, 200, JSON.stringify(stats.body))
    await page.getByTestId('entered').getByText('1', { exact: true }).waitFor()
    // When the figures were read (slow results are served again for a while).
    assert.ok(stats.body.computed_at, JSON.stringify(stats.body))
    assert.match((await page.getByTestId('computed-at').textContent()).trim(), /^Figures as of \S.*\d/)
    // The customer waits at the first step: entered 1, active now 1.
    const first = page.getByTestId('node-stats').locator(`tr[data-node="${created.start}"]`)
    assert.deepEqual(await first.locator('td.n').evaluateAll((tds) => tds.slice(0, 2).map((td) => td.textContent.trim())), ['1', '1'])
    await page.getByTestId('verdict').getByText('This journey has no holdout.').waitFor()
    // No conversion yet: revenue is nothing in the shop's currency, not a bare 0.
    await page.getByTestId('revenue').getByText('€0.00', { exact: true }).waitFor()
    await shot(page, 'journeys-results')
  })

  it('an agent reads journeys and runs but has no create or end buttons', async () => {
    await signOut()
    await signIn(AGENT)
    await page.goto(server.url + '/journeys')
    await journeyRow().waitFor()
    assert.equal(await page.getByRole('button', { name: 'New journey' }).count(), 0)
    await page.goto(`${server.url}/customers/${profileID}`)
    const run = page.getByTestId('customer-journeys').getByTestId('journey-run').filter({ hasText: journeyName })
    await run.getByText(`In ${journeyName},`).waitFor()
    assert.equal(await run.getByRole('button', { name: /^End / }).count(), 0)
    const agentToken = await login(server.url, AGENT.email, AGENT.password)
    const r = await apiAs(server.url, agentToken, '/api/v1/journeys', { method: 'POST', body: JSON.stringify({ name: 'Nope' }) })
    assert.equal(r.status, 403)
    await signOut()
  })

  it('the owner ends the run by hand from the customer page', async () => {
    await signIn(OWNER)
    await page.goto(`${server.url}/customers/${profileID}`)
    const run = page.getByTestId('customer-journeys').getByTestId('journey-run').filter({ hasText: journeyName })
    await run.getByRole('button', { name: `End ${journeyName} for this customer` }).click()
    const dialog = page.getByRole('dialog')
    await dialog.getByText(`End ${journeyName} for this customer?`).waitFor()
    await dialog.getByRole('button', { name: 'End run' }).click()
    await run.getByText(`Was in ${journeyName},`).waitFor()
    assert.equal(await run.getByRole('button', { name: /^End / }).count(), 0)
    // Its history says where it ended and why.
    await run.getByRole('button', { name: `Show steps of ${journeyName}` }).click()
    await run.getByTestId('run-steps').getByText('ended here: ended by hand').waitFor()
    const runs = await apiAs(server.url, ownerToken, '/api/v1/journeys/runs?profile=' + profileID)
    assert.equal(runs.body.items[0].status, 'exited')
    assert.equal(runs.body.items[0].exit_reason, 'manual')
  })
})
