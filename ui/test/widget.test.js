// The website chat widget in a real Chromium: a shop page on another
// origin (its analytics keeps a Segment anonymousId and tracks the page
// view through /v1/page) loads the snippet; the visitor writes; an agent,
// signed in to the admin in a second browser, sees the message and
// replies; the visitor sees the reply without reloading, the history
// survives a reload, and the chat is on the profile of the page view.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { apiAs, buildOmni, eventually, launchBrowser, login, omniCLI, shot, startOmni, tmpDir } from './harness.js'

const OWNER = { name: 'Olga Owner', email: 'owner@omni-shop.dev', password: 'owner-pass-1' }
const AGENT = { name: 'Ann Agent', email: 'ann@omni-shop.dev', password: 'agent-pass-1' }
const ANON = 'anon-shop-visitor-7'

let tmp, bin, server, shop, shopURL, visitorBrowser, agentBrowser, ownerToken, agentToken, widget, writeKey

// shopPage is the shop's page: analytics-style anonymousId in
// localStorage (JSON-quoted, as analytics.js keeps it), a page view sent
// to /v1/page with the source's write key, and the widget's snippet.
function shopPage() {
  return `<!doctype html><html><head><meta charset="utf-8"><title>Winter boots</title></head><body>
<h1>Winter boots</h1><p>Warm and dry.</p>
<script>
  if (!localStorage.getItem('ajs_anonymous_id')) localStorage.setItem('ajs_anonymous_id', JSON.stringify(${JSON.stringify(ANON)}))
  fetch(${JSON.stringify(server.url + '/v1/page')}, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: 'Basic ' + btoa(${JSON.stringify(writeKey)} + ':') },
    body: JSON.stringify({ anonymousId: JSON.parse(localStorage.getItem('ajs_anonymous_id')), name: 'Winter boots', messageId: 'pv-' + Date.now(),
      context: { page: { url: location.href, path: location.pathname, title: document.title } } }),
  }).then(function (r) { document.body.setAttribute('data-tracked', r.status) })
</script>
${widget.snippet.replace(/src="[^"]*\/widget\//, `src="${server.url}/widget/`)}
</body></html>`
}

before(async () => {
  tmp = tmpDir()
  bin = buildOmni(tmp)
  const dataDir = path.join(tmp, 'data')
  writeKey = omniCLI(bin, dataDir, 'source', 'create', 'shop-web').match(/write key: (\S+)/)[1]
  server = await startOmni(bin, dataDir, { logName: 'omni-widget.log' })
  const setup = await apiAs(server.url, '', '/api/v1/setup/owner', { method: 'POST', body: JSON.stringify({ ...OWNER, passwordConfirm: OWNER.password }) })
  assert.equal(setup.status, 200, JSON.stringify(setup.body))
  ownerToken = await login(server.url, OWNER.email, OWNER.password)
  const agent = await apiAs(server.url, ownerToken, '/api/collections/staff/records', {
    method: 'POST', body: JSON.stringify({ ...AGENT, passwordConfirm: AGENT.password, role: 'agent' }),
  })
  assert.equal(agent.status, 200, JSON.stringify(agent.body))
  agentToken = await login(server.url, AGENT.email, AGENT.password)

  shop = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' })
    res.end(shopPage())
  })
  await new Promise((r) => shop.listen(0, '127.0.0.1', r))
  shopURL = `http://127.0.0.1:${shop.address().port}`

  const created = await apiAs(server.url, ownerToken, '/api/v1/inbox/widgets', {
    method: 'POST', body: JSON.stringify({ name: 'Shop', source: 'shop-web', allowed_origins: [shopURL], title: 'Talk to us', greeting: 'Hi! Ask us anything.' }),
  })
  assert.equal(created.status, 201, JSON.stringify(created.body))
  widget = created.body
  visitorBrowser = await launchBrowser(tmp)
  agentBrowser = await launchBrowser(tmp)
})

after(async () => {
  await visitorBrowser?.close()
  await agentBrowser?.close()
  await server?.stop()
  shop?.close()
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true })
})

describe('website chat widget', () => {
  it('carries a visitor chat and an agent reply live, across a reload, on the page view profile', async () => {
    const visitor = visitorBrowser.pages()[0] || (await visitorBrowser.newPage())
    visitor.setDefaultTimeout(15000)
    await visitor.goto(shopURL + '/boots')
    await visitor.locator('body[data-tracked="200"]').waitFor()

    // The bubble opens the panel with the greeting; the visitor writes.
    await visitor.getByRole('button', { name: 'Open chat' }).click()
    await visitor.getByText('Hi! Ask us anything.').waitFor()
    await visitor.getByText('Talk to us').waitFor()
    await visitor.getByLabel('Message').fill('Do the boots come in size 9?')
    await visitor.getByLabel('Message').press('Enter')

    // The agent, signed in to the admin in another browser, sees it arrive
    // in the inbox, opens it and replies; she also leaves a private note
    // the visitor must never see.
    const agent = agentBrowser.pages()[0] || (await agentBrowser.newPage())
    agent.setDefaultTimeout(15000)
    await agent.goto(server.url + '/')
    await agent.getByLabel('Email', { exact: true }).fill(AGENT.email)
    await agent.getByLabel('Password', { exact: true }).fill(AGENT.password)
    await agent.getByRole('button', { name: 'Sign in' }).click()
    await agent.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Inbox' }).click()
    await agent.getByRole('tab', { name: /All open/ }).click()
    const item = agent.getByTestId('conversation-item').filter({ hasText: 'Do the boots come in size 9?' })
    await item.waitFor()
    await item.getByRole('button').click()
    const conv = agent.getByRole('region', { name: 'Conversation' })
    await conv.getByTestId('message').filter({ hasText: 'Do the boots come in size 9?' }).waitFor()
    const conversationID = new URL(agent.url()).pathname.split('/').pop()
    await agent.locator('body').press('n')
    await agent.keyboard.type('Internal: stock room has two pairs')
    await agent.keyboard.press('Enter')
    await conv.getByTestId('message').filter({ hasText: 'Internal: stock room' }).waitFor()
    await agent.keyboard.press('Escape')
    await agent.locator('body').press('r')
    const composer = agent.getByRole('form', { name: 'Composer' })
    await composer.getByRole('tab', { name: 'Reply' }).and(agent.locator('[aria-selected=true]')).waitFor()
    await agent.keyboard.type('Yes, size 9 is in stock.')
    await agent.keyboard.press('Enter')
    const sent = conv.getByTestId('message').filter({ hasText: 'Yes, size 9 is in stock.' })
    await sent.waitFor()
    await shot(agent, 'widget-agent')
    const conversation = (await apiAs(server.url, agentToken, '/api/v1/conversations/' + conversationID)).body.conversation
    assert.equal(conversation.channel, 'chat')

    // The visitor sees it without reloading, signed with the agent's first name.
    await visitor.getByText('Yes, size 9 is in stock.').waitFor()
    await visitor.getByText('Ann', { exact: true }).waitFor()
    // Ann has the inbox open: the widget says someone is online.
    await visitor.getByText('We are online').waitFor()
    await shot(visitor, 'widget-visitor')

    // A reload keeps the chat (and the panel open).
    await visitor.reload()
    await visitor.getByText('Do the boots come in size 9?').waitFor()
    await visitor.getByText('Yes, size 9 is in stock.').waitFor()
    assert.equal(await visitor.getByText('Internal: stock room').count(), 0)

    // The ledger says the reply went out on the chat and reached the visitor.
    await eventually(async () => {
      const r = await apiAs(server.url, agentToken, `/api/v1/conversations/${conversationID}`)
      const m = r.body.messages?.find((x) => x.text === 'Yes, size 9 is in stock.')
      return m && m.status === 'delivered' && m.channel === 'chat'
    }, { what: 'the reply delivered' })

    // The chat is on the profile of the page view.
    const timeline = await apiAs(server.url, agentToken, `/api/v1/profiles/${conversation.profile}/timeline`)
    assert.equal(timeline.status, 200)
    assert.match(JSON.stringify(timeline.body), /Winter boots/)
    const profile = await apiAs(server.url, agentToken, `/api/v1/profiles/${conversation.profile}`)
    assert.match(JSON.stringify(profile.body), new RegExp(ANON))

    // The × closes the panel; the bubble opens it again.
    await visitor.getByRole('button', { name: 'Close chat' }).click()
    await visitor.getByRole('dialog').waitFor({ state: 'hidden' })
    await visitor.getByRole('button', { name: 'Open chat' }).click()
    await visitor.getByText('Yes, size 9 is in stock.').waitFor()

    // On a phone the open chat takes the screen, its bubble steps aside, and
    // its fields are 16 px (smaller, and iOS Safari zooms the page in on focus).
    await visitor.setViewportSize({ width: 390, height: 844 })
    const panel = await visitor.getByRole('dialog').boundingBox()
    assert.deepEqual([panel.x, panel.y, panel.width, panel.height], [0, 0, 390, 844], 'the chat fills the phone screen')
    assert.equal(await visitor.getByRole('button', { name: 'Open chat' }).isVisible(), false)
    assert.equal(await visitor.getByLabel('Message').evaluate((t) => getComputedStyle(t).fontSize), '16px')
    await shot(visitor, 'widget-phone')
    await visitor.getByRole('button', { name: 'Close chat' }).click()
    await visitor.getByRole('button', { name: 'Open chat' }).waitFor()
  })
})
