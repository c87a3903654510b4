// The agents' inbox: an agent (not the owner) has the inbox open when a
// customer's SMS arrives (a message.received from a server source, the
// path a connector's webhook takes): it appears in the list live, without
// a reload; she opens it, replies (the reply shows with its delivery
// state), adds a private note mentioning a colleague picked from the @
// list (Bea, in her own browser, is told at once and opens it), sends a
// canned response rendered for the customer, moves between conversations with j/k, resolves one with e, takes
// the other with a and snoozes it with s, then resolves it with the bulk
// action; each leaves the open view as it goes.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { apiAs, batch, buildOmni, eventually, launchBrowser, login, omniCLI, shot, startOmni, tmpDir } from './harness.js'

const OWNER = { name: 'Olga Owner', email: 'olga@omni-shop.dev', password: 'owner-pass-1' }
const AGENT = { name: 'Arno Agent', email: 'arno@omni-shop.dev', password: 'agent-pass-1' }
const BEA = { name: 'Bea Backup', email: 'bea@omni-shop.dev', password: 'agent-pass-2' }
const CLEO = { name: 'Cleo Customer', phone: '+447700900111', email: 'cleo@omni-shop.dev' }
const DAN = { name: 'Dan Doe', phone: '+447700900222', email: 'dan@omni-shop.dev' }

let tmp, server, browser, page, serverKey, agentToken, beaID

before(async () => {
  tmp = tmpDir()
  const bin = buildOmni(tmp)
  const dataDir = path.join(tmp, 'data')
  // Channel messages come from a server source (a browser key may not record them).
  serverKey = omniCLI(bin, dataDir, 'source', 'create', 'shop-server', '--kind', 'server').match(/secret key: (\S+)/)[1]
  server = await startOmni(bin, dataDir, { logName: 'omni-inbox.log' })
  const owner = await apiAs(server.url, '', '/api/v1/setup/owner', { method: 'POST', body: JSON.stringify({ ...OWNER, passwordConfirm: OWNER.password }) })
  assert.equal(owner.status, 200, JSON.stringify(owner.body))
  const ownerToken = await login(server.url, OWNER.email, OWNER.password)
  for (const a of [AGENT, BEA]) {
    const r = await apiAs(server.url, ownerToken, '/api/collections/staff/records', {
      method: 'POST',
      body: JSON.stringify({ ...a, passwordConfirm: a.password, role: 'agent', emailVisibility: true }),
    })
    assert.equal(r.status, 200, JSON.stringify(r.body))
    if (a === BEA) beaID = r.body.id
  }
  agentToken = await login(server.url, AGENT.email, AGENT.password)
  // Owners write canned responses (Liquid, with the customer's variables).
  const canned = await apiAs(server.url, ownerToken, '/api/collections/canned_responses/records', {
    method: 'POST',
    body: JSON.stringify({ shortcut: 'ship', title: 'Shipping times', body: 'Hi {{ customer.first_name | default: "there" }}, we ship within 2 working days.' }),
  })
  assert.equal(canned.status, 200, JSON.stringify(canned.body))
  // An approved WhatsApp template, the only thing that may go once the 24-hour window has closed.
  const tpl = await apiAs(server.url, ownerToken, '/api/collections/templates/records', {
    method: 'POST',
    body: JSON.stringify({ name: 'Order update', channel: 'whatsapp', kind: 'transactional', wa_template: 'order_update', wa_language: 'en' }),
  })
  assert.equal(tpl.status, 200, JSON.stringify(tpl.body))
  browser = await launchBrowser(tmp)
  page = browser.pages()[0] || (await browser.newPage())
  page.setDefaultTimeout(15000)
})

after(async () => {
  await browser?.close()
  await server?.stop()
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true })
})

// sms posts a customer's SMS as the SMS connector would record it (the
// customer is known by name from the shop before).
async function sms(who, text) {
  const anon = 'sms-' + who.phone
  await batch(server.url, serverKey, [{ type: 'identify', anonymousId: anon, traits: { name: who.name, email: who.email, phone: who.phone }, context: { channel: 'web' } }])
  await batch(server.url, serverKey, [
    { type: 'track', anonymousId: anon, event: 'message.received', properties: { text, from: who.phone }, context: { channel: 'sms', traits: { phone: who.phone } } },
  ])
}

const item = (text) => page.getByTestId('conversation-item').filter({ hasText: text })
const byID = (id) => page.locator(`[data-testid="conversation-item"][data-id="${id}"]`)
const conversationAPI = async (id) => (await apiAs(server.url, agentToken, '/api/v1/conversations/' + id)).body

describe('inbox', () => {
  it('an agent sees a new message live, replies, notes with a mention, moves with j/k and resolves', async () => {
    await page.goto(server.url + '/')
    await page.getByLabel('Email', { exact: true }).fill(AGENT.email)
    await page.getByLabel('Password', { exact: true }).fill(AGENT.password)
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Inbox' }).click()
    await page.getByRole('tab', { name: /All open/ }).click()
    await page.getByTestId('empty-view').waitFor()
    // Proof that nothing reloads the page from here on.
    await page.evaluate(() => (window.__sameDocument = true))

    // The SMS arrives while the page is open: it shows in the list, unread.
    await sms(CLEO, 'Hi, where is my parcel?')
    await item('where is my parcel').waitFor()
    // From here on by id: the row's preview changes with each message.
    const cleoID = await item('where is my parcel').getAttribute('data-id')
    const cleo = byID(cleoID)
    await cleo.getByText(CLEO.name).waitFor() // the name is filled in after the live row shows
    await cleo.getByTestId('unread').waitFor()
    await page.getByTestId('count-all').getByText('1').waitFor()

    // Open it: the message is there, the unread badge goes.
    await cleo.getByRole('button').click()
    const conv = page.getByRole('region', { name: 'Conversation' })
    await conv.getByTestId('message').filter({ hasText: 'Hi, where is my parcel?' }).waitFor()
    await conv.getByRole('link', { name: CLEO.name }).waitFor()
    await eventually(async () => (await cleo.getByTestId('unread').count()) === 0, { what: 'the unread badge to go' })
    assert.equal(new URL(page.url()).pathname, '/inbox/' + cleoID)
    await eventually(async () => (await conversationAPI(cleoID)).conversation?.unread === 0, { what: 'the conversation marked read' })

    // Reply with the keyboard: r focuses the composer, Enter sends.
    await page.locator('body').press('r')
    await page.keyboard.type('Your parcel ships today.')
    await page.keyboard.press('Enter')
    const reply = conv.getByTestId('message').filter({ hasText: 'Your parcel ships today.' })
    await reply.waitFor()
    assert.equal(await reply.getAttribute('data-author'), 'agent')
    await reply.getByText(AGENT.name).waitFor()
    // Its delivery state from the send ledger (no SMS connector here: the gate says why it did not go, with a Retry).
    await reply.getByTestId('message-status').waitFor()
    const status = await eventually(async () => {
      const s = await reply.getAttribute('data-status')
      return s && s !== 'sending' ? s : null
    }, { what: 'the reply to leave "sending"' })
    assert.equal(status, 'suppressed')
    await reply.getByTestId('message-status').getByText('Not sent: no sms channel is connected', { exact: false }).waitFor()
    const stored = (await conversationAPI(cleoID)).messages.find((m) => m.text === 'Your parcel ships today.')
    assert.equal(stored?.direction, 'out')
    assert.equal(stored?.status, status)
    // Retry sends it again as a new message, which the gate also refuses here.
    await reply.getByRole('button', { name: 'Retry' }).click()
    await eventually(async () => (await reply.count()) === 2, { what: 'the retried reply' })
    await reply.nth(1).getByTestId('message-status').waitFor()

    // Bea has her inbox open in her own browser: she will hear of the mention.
    const beaBrowser = await launchBrowser(tmp)
    const bea = beaBrowser.pages()[0] || (await beaBrowser.newPage())
    bea.setDefaultTimeout(15000)
    await bea.goto(server.url + '/')
    await bea.getByLabel('Email', { exact: true }).fill(BEA.email)
    await bea.getByLabel('Password', { exact: true }).fill(BEA.password)
    await bea.getByRole('button', { name: 'Sign in' }).click()
    await bea.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Inbox' }).click()
    await bea.getByRole('tab', { name: /All open/ }).click()
    await bea.locator(`[data-testid="conversation-item"][data-id="${cleoID}"]`).waitFor()

    // A private note mentioning Bea, picked from the @ list.
    const composer = page.getByRole('form', { name: 'Composer' })
    await page.keyboard.press('Escape')
    await page.locator('body').press('n')
    await composer.getByRole('tab', { name: 'Private note' }).and(page.locator('[aria-selected=true]')).waitFor()
    await page.keyboard.type('Ask @be')
    await composer.getByRole('listbox', { name: 'Mention a colleague' }).getByText('@bea').waitFor()
    await page.keyboard.press('Enter') // picks the highlighted colleague
    await page.keyboard.type('to check the courier')
    await page.keyboard.press('Enter')
    const note = conv.getByTestId('message').filter({ hasText: 'Ask @bea to check the courier' })
    await note.waitFor()
    await note.getByText('Private note').waitFor()
    const storedNote = (await conversationAPI(cleoID)).messages.find((m) => m.text === 'Ask @bea to check the courier')
    assert.equal(storedNote?.private, true)
    assert.deepEqual(storedNote?.mentions, [beaID])
    const toast = bea.getByTestId('mention-toast').filter({ hasText: `${AGENT.name} mentioned you: Ask @bea to check the courier` })
    await toast.waitFor()
    await toast.getByRole('button', { name: 'Open' }).click()
    await bea.getByRole('region', { name: 'Conversation' }).getByTestId('message').filter({ hasText: 'Ask @bea to check the courier' }).waitFor()
    await beaBrowser.close()
    await shot(page, 'inbox-conversation')

    // "/" picks a canned response, rendered for Cleo, to read and edit before Enter sends it.
    await page.keyboard.press('Escape')
    await page.keyboard.press('/')
    await composer.getByRole('tab', { name: 'Reply' }).and(page.locator('[aria-selected=true]')).waitFor()
    await page.keyboard.type('sh')
    await composer.getByRole('listbox', { name: 'Canned responses' }).getByText('/ship').waitFor()
    await page.keyboard.press('Enter')
    const box = composer.getByLabel('Reply')
    await eventually(async () => (await box.inputValue()) === 'Hi Cleo, we ship within 2 working days.', { what: 'the canned response rendered for Cleo' })
    await page.keyboard.press('End')
    await page.keyboard.type(' Thanks!')
    await page.keyboard.press('Enter')
    await conv.getByTestId('message').filter({ hasText: 'Hi Cleo, we ship within 2 working days. Thanks!' }).waitFor()

    // A second customer writes: the list grows live; j/k move between them.
    await sms(DAN, 'Do you ship to Ireland?')
    await item('Do you ship to Ireland?').waitFor()
    const danID = await item('Do you ship to Ireland?').getAttribute('data-id')
    const dan = byID(danID)
    await page.getByTestId('count-all').getByText('2').waitFor()
    await page.keyboard.press('Escape') // leaves the composer, so the keys are shortcuts again
    const order = await page.getByTestId('conversation-item').evaluateAll((els) => els.map((e) => e.dataset.id))
    assert.equal(order.length, 2)
    const from = order.indexOf(cleoID)
    await page.keyboard.press(from === 0 ? 'j' : 'k')
    await conv.getByTestId('message').filter({ hasText: 'Do you ship to Ireland?' }).waitFor()
    await dan.getByRole('button', { name: /Dan Doe/ }).and(page.locator('[aria-current=true]')).waitFor()
    await page.keyboard.press(from === 0 ? 'k' : 'j')
    await conv.getByTestId('message').filter({ hasText: 'Hi, where is my parcel?' }).waitFor()
    // The address follows, and Back / Forward move between them too.
    await page.goBack()
    await conv.getByTestId('message').filter({ hasText: 'Do you ship to Ireland?' }).waitFor()
    assert.equal(new URL(page.url()).pathname, '/inbox/' + danID)
    await page.goForward()
    await conv.getByTestId('message').filter({ hasText: 'Hi, where is my parcel?' }).waitFor()
    await page.evaluate(() => document.activeElement?.blur())

    // e resolves the open one: it leaves the open view.
    await page.keyboard.press('e')
    await conv.getByTestId('conversation-status').getByText('Resolved').waitFor()
    await eventually(async () => (await cleo.count()) === 0, { what: 'the resolved conversation to leave the list' })
    assert.equal((await conversationAPI(cleoID)).conversation.status, 'resolved')

    // a takes Dan's conversation, s snoozes it until he replies: it leaves the open view for Snoozed.
    await dan.getByRole('button').click()
    await conv.getByTestId('message').filter({ hasText: 'Do you ship to Ireland?' }).waitFor()
    await page.keyboard.press('a')
    await eventually(async () => (await conversationAPI(danID)).conversation.assignee_name === AGENT.name, { what: 'Dan assigned to the agent' })
    await eventually(async () => (await conv.getByLabel('Assignee').inputValue()) === 'me', { what: 'the assignee menu to read Me' })
    await page.getByTestId('count-mine').getByText('1').waitFor()
    await page.keyboard.press('s')
    await conv.getByRole('menu', { name: 'Snooze' }).getByRole('menuitem', { name: 'Until they reply' }).click()
    await conv.getByTestId('conversation-status').getByText('Snoozed').waitFor()
    await page.getByTestId('empty-view').waitFor()
    await page.getByTestId('count-snoozed').getByText('1').waitFor()
    await page.getByTestId('count-all').getByText('0').waitFor()

    // Bulk: in the Snoozed view, tick it and resolve the selection.
    await page.getByRole('tab', { name: /Snoozed/ }).click()
    await dan.getByRole('checkbox').check()
    await page.getByRole('toolbar', { name: 'Bulk actions' }).getByRole('button', { name: 'Resolve selected' }).click()
    await page.getByTestId('empty-view').waitFor()
    assert.equal((await conversationAPI(danID)).conversation.status, 'resolved')
    await page.getByTestId('count-snoozed').getByText('0').waitFor()

    // The resolved view lists both.
    await page.getByRole('tab', { name: /Resolved/ }).click()
    await cleo.waitFor()
    await dan.waitFor()
    await shot(page, 'inbox-resolved')
    assert.equal(await page.evaluate(() => window.__sameDocument), true)
  })

  it('on WhatsApp after the 24-hour window, only an approved template can go', async () => {
    // Eva wrote two days ago (the connector's event carries when she wrote).
    const EVA = { name: 'Eva Evans', phone: '+447700900333' }
    await batch(server.url, serverKey, [{ type: 'identify', anonymousId: 'wa-eva', traits: { name: EVA.name, phone: EVA.phone }, context: { channel: 'web' } }])
    await batch(server.url, serverKey, [
      { type: 'track', anonymousId: 'wa-eva', event: 'message.received', timestamp: new Date(Date.now() - 48 * 3600e3).toISOString(), properties: { text: 'Is the blue one back?' }, context: { channel: 'whatsapp', traits: { phone: EVA.phone } } },
    ])
    await page.getByRole('tab', { name: /All open/ }).click()
    await item('Is the blue one back?').getByRole('button').click()
    const composer = page.getByRole('form', { name: 'Composer' })
    await composer.getByTestId('wa-window').getByText('WhatsApp window closed', { exact: false }).waitFor()
    assert.equal(await composer.getByLabel('Reply').count(), 0) // no free text
    await composer.getByLabel('Approved template').selectOption({ label: 'Order update (order_update, en)' })
    await composer.getByRole('button', { name: 'Send template' }).click()
    const conv = page.getByRole('region', { name: 'Conversation' })
    const sent = conv.getByTestId('message').filter({ has: page.getByTestId('message-status') })
    await sent.first().waitFor()
    assert.equal(await sent.first().getAttribute('data-author'), 'agent')
    await sent.first().getByText('Template: Order update').waitFor()
    // A note is still possible.
    await composer.getByRole('tab', { name: 'Private note' }).click()
    await composer.getByLabel('Private note').fill('Asked with the template')
    await page.keyboard.press('Enter')
    await conv.getByTestId('message').filter({ hasText: 'Asked with the template' }).waitFor()
    await shot(page, 'inbox-whatsapp-window')
  })

  it('a message that arrives while the list loads stays in it', async () => {
    // The list's answer is read before Fay's message is stored and held
    // until her conversation has come live: the stale answer must not
    // take it out again.
    const FAY = { name: 'Fay Fox', phone: '+447700900444', email: 'fay@omni-shop.dev' }
    await page.getByRole('tab', { name: /Resolved/ }).click()
    await page.getByText('Loading…').waitFor({ state: 'hidden' })
    let fetched, release
    const answerRead = new Promise((r) => (fetched = r))
    const held = new Promise((r) => (release = r))
    await page.route((url) => url.pathname === '/api/v1/conversations', async (route) => {
      const stale = await route.fetch()
      fetched()
      await held
      await route.fulfill({ response: stale })
    }, { times: 1 })
    await page.getByRole('tab', { name: /All open/ }).click()
    await answerRead
    await sms(FAY, 'Can I pay in three instalments?')
    await item('three instalments').waitFor() // live, while the list still loads
    await page.getByText('Loading…').waitFor()
    release()
    await page.getByText('Loading…').waitFor({ state: 'hidden' })
    assert.equal(await item('three instalments').count(), 1)
    await item('three instalments').getByText(FAY.name).waitFor()
  })
})

