// Inbox settings and the customer beside the chat: an owner creates a chat
// widget and copies its snippet, sets business hours, adds a bot rule, a
// canned response and an SLA target (each still there after a reload) and
// sees a wrong value named on its field; an agent cannot open the page;
// beside a WhatsApp conversation the customer's orders show with their
// lines, the checkout they left shows its recovery link, and the agent
// pauses marketing for them and starts a journey for them.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { apiAs, batch, buildOmni, eventually, launchBrowser, login, omniCLI, shot, startOmni, tmpDir } from './harness.js'

const OWNER = { name: 'Olga Owner', email: 'olga@omni-shop.dev', password: 'owner-pass-1' }
const AGENT = { name: 'Arno Agent', email: 'arno@omni-shop.dev', password: 'agent-pass-1' }
const CUSTOMER = { email: 'mia@omni-shop.dev', phone: '+447700900321', name: 'Mia Wallace' }
const RECOVER = 'https://shop.omni-shop.dev/checkouts/c0ffee/recover'

let tmp, server, browser, page, ownerToken, conversationID, profileID

before(async () => {
  tmp = tmpDir()
  const bin = buildOmni(tmp)
  const dataDir = path.join(tmp, 'data')
  const serverKey = omniCLI(bin, dataDir, 'source', 'create', 'backend', '--kind', 'server').match(/secret key: (\S+)/)[1]
  omniCLI(bin, dataDir, 'source', 'create', 'website')
  server = await startOmni(bin, dataDir, { logName: 'omni-inbox-settings.log' })
  const owner = await apiAs(server.url, '', '/api/v1/setup/owner', { method: 'POST', body: JSON.stringify({ ...OWNER, passwordConfirm: OWNER.password }) })
  assert.equal(owner.status, 200, JSON.stringify(owner.body))
  ownerToken = await login(server.url, OWNER.email, OWNER.password)
  const agent = await apiAs(server.url, ownerToken, '/api/collections/staff/records', {
    method: 'POST',
    body: JSON.stringify({ ...AGENT, passwordConfirm: AGENT.password, role: 'agent', emailVisibility: true }),
  })
  assert.equal(agent.status, 200, JSON.stringify(agent.body))

  // A customer with an order, a checkout they left, and a WhatsApp message.
  const t0 = Date.now() - 2 * 3600 * 1000
  const at = (min) => new Date(t0 + min * 60000).toISOString()
  const who = { email: CUSTOMER.email, phone: CUSTOMER.phone }
  await batch(server.url, serverKey, [
    { type: 'identify', userId: 'mia-1', traits: { ...who, name: CUSTOMER.name }, timestamp: at(0) },
    {
      type: 'track', userId: 'mia-1', event: 'Order Completed', timestamp: at(5), context: { channel: 'web' },
      properties: { order_id: 'W-1042', order_name: '#1042', total: 54, currency: 'EUR', financial_status: 'paid',
        products: [{ name: 'Linen shirt', variant: 'M', quantity: 2, price: 22 }, { name: 'Canvas tote', quantity: 1, price: 10 }] },
    },
    {
      type: 'track', userId: 'mia-1', event: 'Checkout Started', timestamp: at(60), context: { channel: 'web' },
      properties: { checkout_token: 'c0ffee', total: 89, currency: 'EUR', abandoned_checkout_url: RECOVER,
        line_items: [{ title: 'Wool coat', quantity: 1, price: 89 }] },
    },
    { type: 'track', userId: 'mia-1', event: 'message.received', timestamp: at(90), context: { channel: 'whatsapp', traits: who },
      properties: { text: 'Hi, did my coat order go through?' } },
  ])
  ;({ id: conversationID, profile: profileID } = await eventually(async () => {
    const r = await apiAs(server.url, ownerToken, '/api/collections/conversations/records?perPage=5')
    return r.body.items?.[0]
  }, { what: 'the conversation' }))

  browser = await launchBrowser(tmp)
  await browser.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url })
  page = browser.pages()[0] || (await browser.newPage())
  page.setDefaultTimeout(10000)
})

after(async () => {
  await browser?.close()
  await server?.stop()
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true })
})

// signIn signs out through the app (which also cancels the session refresh
// a page load starts: clearing storage under it let the refresh sign back in).
async function signIn(who) {
  await page.goto(server.url + '/')
  const signOut = page.getByRole('button', { name: 'Sign out' })
  await page.getByLabel('Email', { exact: true }).or(signOut).first().waitFor()
  if (await signOut.isVisible()) await signOut.click()
  await page.getByLabel('Email', { exact: true }).fill(who.email)
  await page.getByLabel('Password', { exact: true }).fill(who.password)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByTestId('cards').waitFor()
}

const tab = (name) => page.getByRole('tab', { name, exact: true }).click()
async function reloadOn(name) {
  await page.reload()
  await tab(name)
}

describe('inbox settings', () => {
  it('an owner reaches the page from Settings and creates a chat widget, then copies its snippet', async () => {
    await signIn(OWNER)
    await page.getByRole('link', { name: 'Settings', exact: true }).click()
    await page.getByRole('link', { name: 'Inbox settings' }).click()
    await page.getByRole('heading', { name: 'Inbox settings' }).waitFor()

    await tab('Chat widgets')
    await page.getByRole('button', { name: 'New widget' }).click()
    const form = page.getByRole('form', { name: 'Chat widget' })
    await form.getByLabel('Widget name').fill('Shop site')
    await form.getByLabel('Website source').selectOption({ label: 'website' })
    await form.getByLabel('Allowed origins').fill('https://shop.omni-shop.dev')
    await form.getByLabel('Greeting').fill('Hi! Ask us anything.')
    await form.getByRole('button', { name: 'Save widget' }).click()
    const widget = page.getByTestId('widget').filter({ hasText: 'Shop site' })
    await widget.getByTestId('snippet').waitFor()
    const snippet = await widget.getByTestId('snippet').inputValue()
    assert.match(snippet, /<script[^>]+omni-chat\.js/)
    assert.match(snippet, /data-omni-widget="[^"]+"/)
    await widget.getByRole('button', { name: 'Copy snippet' }).click()
    await widget.getByRole('button', { name: 'Copied' }).waitFor()
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), snippet)

    await reloadOn('Chat widgets')
    await page.getByTestId('widget').filter({ hasText: 'https://shop.omni-shop.dev' }).waitFor()
    await shot(page, 'inbox-settings-widgets')
  })

  it('sets business hours and the away message', async () => {
    await tab('Business hours')
    const form = page.getByRole('form', { name: 'Business hours' })
    await form.getByLabel('Time zone').fill('Europe/London')
    await form.getByRole('button', { name: 'Add hours on Monday' }).click()
    await form.getByLabel('Monday opens at').fill('08:30')
    await form.getByLabel('Monday closes at').fill('17:30')
    await form.getByRole('button', { name: 'Copy Monday to Tuesday–Friday' }).click()
    await form.getByLabel('Away message').fill('We are closed; we answer from 8:30.')
    await form.getByRole('button', { name: 'Save' }).click()
    await form.getByText('Saved.').waitFor()

    await reloadOn('Business hours')
    const again = page.getByRole('form', { name: 'Business hours' })
    assert.equal(await again.getByLabel('Time zone').inputValue(), 'Europe/London')
    assert.equal(await again.getByLabel('Friday opens at').inputValue(), '08:30')
    assert.equal(await again.getByLabel('Monday closes at').inputValue(), '17:30')
    await again.getByTestId('hours-sat').getByText('Closed').waitFor()
    assert.equal(await again.getByLabel('Away message').inputValue(), 'We are closed; we answer from 8:30.')
  })

  it('adds a bot rule', async () => {
    await tab('Bot')
    await page.getByRole('button', { name: 'Add a rule' }).click()
    const form = page.getByRole('form', { name: 'Bot rule' })
    await form.getByLabel('Rule name').fill('Where is my order')
    await form.getByLabel('Keywords').fill('where is my order, tracking')
    await form.getByLabel('Action').selectOption('order_status')
    await form.getByRole('button', { name: 'Save rule' }).click()
    await page.getByTestId('bot-rule').filter({ hasText: 'Where is my order' }).waitFor()

    await reloadOn('Bot')
    const row = page.getByTestId('bot-rule').filter({ hasText: 'Where is my order' })
    await row.getByText('where is my order, tracking').waitFor()
    await row.getByText("Reply with the latest order's status").waitFor()
  })

  it('adds a canned response with a live preview', async () => {
    await tab('Canned responses')
    await page.getByRole('button', { name: 'New canned response' }).click()
    const form = page.getByRole('form', { name: 'Canned response' })
    await form.getByLabel('Shortcut').fill('shipping')
    await form.getByLabel('Title').fill('Shipping times')
    await form.getByLabel('Text', { exact: true }).fill('Hi {{ customer.first_name | default: "there" }}, orders ship within 2 days.')
    await form.getByTestId('canned-preview').getByText('Hi there, orders ship within 2 days.').waitFor()
    await form.getByRole('button', { name: 'Save' }).click()
    await page.getByTestId('canned').filter({ hasText: '/shipping' }).waitFor()

    await reloadOn('Canned responses')
    await page.getByTestId('canned').filter({ hasText: 'Shipping times' }).getByText('orders ship within 2 days').waitFor()
  })

  it('adds an SLA target; a wrong duration is named on its field', async () => {
    await tab('SLA targets')
    const form = page.getByRole('form', { name: 'SLA targets' })
    await form.getByRole('button', { name: 'Add a target' }).click()
    await form.getByLabel('Channel of target 1').selectOption('whatsapp')
    await form.getByLabel('First reply within, target 1').fill('soon')
    await form.getByRole('button', { name: 'Save' }).click()
    await form.getByRole('row').filter({ has: page.getByLabel('First reply within, target 1') }).getByRole('alert').waitFor()
    await form.getByLabel('First reply within, target 1').fill('30m')
    await form.getByLabel('Next reply within, target 1').fill('2h')
    await form.getByRole('button', { name: 'Save' }).click()
    await form.getByText('Saved.').waitFor()

    await reloadOn('SLA targets')
    const again = page.getByRole('form', { name: 'SLA targets' })
    assert.equal(await again.getByLabel('Channel of target 1').inputValue(), 'whatsapp')
    assert.equal(await again.getByLabel('First reply within, target 1').inputValue(), '30m')
    assert.equal(await again.getByLabel('Next reply within, target 1').inputValue(), '2h')
  })

  it('names a wrong reopen window on its field', async () => {
    await tab('General')
    const form = page.getByRole('form', { name: 'General' })
    await form.getByLabel('Reopen window').fill('a while')
    await form.getByRole('button', { name: 'Save' }).click()
    await form.locator('.field .error').filter({ hasText: 'not a duration' }).waitFor()
    await form.getByLabel('Reopen window').fill('3d')
    await form.getByRole('button', { name: 'Save' }).click()
    await form.getByText('Saved.').waitFor()
    await reloadOn('General')
    assert.equal(await page.getByRole('form', { name: 'General' }).getByLabel('Reopen window').inputValue(), '3d')
  })

  it('the inbox links the owner to its settings', async () => {
    await page.goto(server.url + '/inbox')
    await page.getByRole('link', { name: 'Inbox settings' }).click()
    await page.getByRole('tab', { name: 'Chat widgets' }).waitFor()
  })

  it('an agent cannot open the settings page', async () => {
    await signIn(AGENT)
    await page.goto(server.url + '/inbox')
    await page.getByRole('heading', { name: 'Inbox' }).waitFor()
    assert.equal(await page.getByRole('link', { name: 'Inbox settings' }).count(), 0)
    await page.goto(server.url + '/settings/inbox')
    await page.getByTestId('forbidden').waitFor()
    assert.equal(await page.getByRole('tab', { name: 'Chat widgets' }).count(), 0)
  })
})

describe('the customer beside the chat', () => {
  it('shows orders with lines and the open checkout, and pauses marketing', async () => {
    // Signed in as the agent (previous test).
    await page.goto(server.url + '/inbox/' + conversationID)
    const panel = page.getByTestId('customer-panel')
    await panel.getByTestId('customer-name').getByText(CUSTOMER.name).waitFor()
    const order = panel.getByTestId('order').filter({ hasText: '#1042' })
    await order.getByTestId('order-status').getByText('Paid').waitFor()
    await order.getByText('2 × Linen shirt – M').waitFor()
    await order.getByText('Canvas tote').waitFor()
    const checkout = panel.getByTestId('open-checkout')
    assert.equal(await checkout.getByTestId('recovery-link').getAttribute('href'), RECOVER)
    await checkout.getByText('Wool coat').waitFor()
    await checkout.getByRole('button', { name: 'Copy link' }).click()
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), RECOVER)

    await panel.getByLabel('Pause marketing for').selectOption('14')
    await panel.getByRole('button', { name: 'Pause marketing for this customer' }).click()
    await panel.getByTestId('marketing-pause').getByText('Marketing paused').waitFor()
    const until = await eventually(async () => {
      const r = await apiAs(server.url, ownerToken, '/api/v1/inbox/customers/' + profileID)
      return r.body.marketing_paused_until
    }, { what: 'the pause' })
    const days = (Date.parse(until) - Date.now()) / 86400000
    assert.ok(days > 13 && days <= 14.01, `paused for ${days} days`)
    await shot(page, 'inbox-customer-panel')

    await panel.getByRole('button', { name: 'Resume marketing' }).click()
    await panel.getByRole('button', { name: 'Pause marketing for this customer' }).waitFor()
  })

  it('starts a live journey for the customer (an agent enrols one customer)', async () => {
    const graph = { trigger: { manual: true }, start: 'w', nodes: { w: { type: 'wait', duration: '30d', next: 'end' }, end: { type: 'exit' } } }
    const j = await apiAs(server.url, ownerToken, '/api/v1/journeys', { method: 'POST', body: JSON.stringify({ name: 'VIP care', graph }) })
    assert.equal(j.status < 300, true, JSON.stringify(j.body))
    const pub = await apiAs(server.url, ownerToken, `/api/v1/journeys/${j.body.id}/publish`, { method: 'POST', body: '{}' })
    assert.equal(pub.status, 200, JSON.stringify(pub.body))

    await page.reload()
    const panel = page.getByTestId('customer-panel')
    await panel.getByLabel('Start a journey').selectOption({ label: 'VIP care' })
    await panel.getByRole('button', { name: 'Start', exact: true }).click()
    await panel.getByText('Started VIP care.').waitFor()
    await panel.getByTestId('journey-run').filter({ hasText: 'VIP care' }).waitFor()
  })
})
