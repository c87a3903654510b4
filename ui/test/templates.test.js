// Templates and the preference center: an owner writes a template with a
// typo and sees it named with its line in the live preview beside the
// editor, picks a customer and sees the message rendered for her, fixes
// it and saves; the customer opens her preference link (no login), turns
// email marketing on, and the consent ledger shows her own change; her
// unsubscribe link, confirmed with one button, turns it off again.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { apiAs, batch, buildOmni, eventually, launchBrowser, login, omniCLI, shot, startOmni, tmpDir } from './harness.js'

const OWNER = { name: 'Olga Owner', email: 'olga@omni-shop.dev', password: 'owner-pass-1' }
const EMAIL = 'dana@omni-shop.dev'

let tmp, server, browser, page, ownerToken, profileID, writeKey

before(async () => {
  tmp = tmpDir()
  const bin = buildOmni(tmp)
  const dataDir = path.join(tmp, 'data')
  writeKey = omniCLI(bin, dataDir, 'source', 'create', 'shop').match(/write key: (\S+)/)[1]
  server = await startOmni(bin, dataDir, { logName: 'omni-templates.log' })
  const owner = await apiAs(server.url, '', '/api/v1/setup/owner', { method: 'POST', body: JSON.stringify({ ...OWNER, passwordConfirm: OWNER.password }) })
  assert.equal(owner.status, 200, JSON.stringify(owner.body))
  ownerToken = await login(server.url, OWNER.email, OWNER.password)
  await batch(server.url, writeKey, [{ type: 'identify', userId: 'dana-1', traits: { email: EMAIL, first_name: 'Dana', last_name: 'Scully' } }])
  profileID = await eventually(async () => {
    const r = await apiAs(server.url, ownerToken, '/api/v1/profiles?q=' + encodeURIComponent(EMAIL))
    return r.body.items?.[0]?.id
  }, { what: 'the customer' })
  browser = await launchBrowser(tmp)
  page = browser.pages()[0] || (await browser.newPage())
  page.setDefaultTimeout(10000)
})

after(async () => {
  await browser?.close()
  await server?.stop()
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true })
})

// linkFor renders a template for the customer to get the signed link a
// message to her would carry; the page is opened on this test's server.
async function linkFor(variable) {
  const r = await apiAs(server.url, ownerToken, '/api/v1/templates/preview', {
    method: 'POST',
    body: JSON.stringify({ channel: 'email', subject: 'x', body: `{{ ${variable} }}`, profile: profileID }),
  })
  assert.equal(r.status, 200, JSON.stringify(r.body))
  return server.url + new URL(r.body.text).pathname
}

const consentOf = async (ch) => (await apiAs(server.url, ownerToken, '/api/v1/profiles/' + profileID)).body.consent?.[ch]

describe('templates', () => {
  it('the editor previews live for a chosen customer and names problems by line', async () => {
    await page.goto(server.url + '/')
    await page.getByLabel('Email', { exact: true }).fill(OWNER.email)
    await page.getByLabel('Password', { exact: true }).fill(OWNER.password)
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.getByTestId('cards').waitFor()
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Templates' }).click()

    const editor = page.getByRole('form', { name: 'Template editor' })
    const preview = page.getByRole('region', { name: 'Preview' })
    // A new template starts without a list of what it lacks; typing shows it.
    await preview.getByTestId('preview-text').waitFor({ state: 'attached' }) // the blank one's preview came back
    assert.equal(await preview.getByTestId('problems').count(), 0, 'a blank new template lists no problems')
    await editor.getByLabel('Name').fill('Welcome')
    await preview.getByTestId('problems').getByText(/needs a subject/).waitFor()
    await editor.getByLabel('Subject').fill('Welcome to the shop')
    await editor.getByLabel('Text body').fill('Hello\nHi {{ customer.frist_name }}!')
    await preview.getByTestId('problems').getByText('Text body, line 2: unknown variable customer.frist_name (did you mean customer.first_name?)').waitFor()

    // Choose the customer: the preview is rendered for her.
    await preview.getByLabel('Preview for customer').fill('dana')
    await preview.getByRole('button', { name: /Dana Scully/ }).click()
    await preview.getByTestId('preview-customer').getByText('Showing it for Dana Scully').waitFor()
    await editor.getByLabel('Text body').fill('Hello\nHi {{ customer.first_name | default: "there" }}!')
    await preview.getByTestId('preview-text').getByText('Hi Dana!').waitFor()
    assert.equal(await preview.getByTestId('problems').count(), 0)

    // HTML variables are escaped; the preview shows the HTML in a sandbox.
    await editor.getByLabel('HTML body (optional)').fill('<p>Hi <b>{{ customer.first_name }}</b></p>')
    await preview.locator('iframe[title="HTML preview"]').waitFor()
    const frame = page.frameLocator('iframe[title="HTML preview"]')
    await frame.getByText('Dana').waitFor()
    await shot(page, 'templates-editor')

    await editor.getByRole('button', { name: 'Create template' }).click()
    await editor.getByRole('status').getByText('Saved.').waitFor()
    const list = await apiAs(server.url, ownerToken, '/api/collections/templates/records')
    assert.equal(list.body.items?.[0]?.name, 'Welcome')
    assert.equal(list.body.items[0].body, 'Hello\nHi {{ customer.first_name | default: "there" }}!')

    // Send test to me: the owner is not a customer yet, so it says so.
    await editor.getByRole('button', { name: 'Send test to me' }).click()
    await editor.getByRole('alert').getByText(`No customer has your email (${OWNER.email.toLowerCase()})`, { exact: false }).waitFor()
    // Once she is, the button asks the send gate for the saved template, to
    // her profile, and shows its answer: with no email connector set up
    // here, the gate's reason for not sending.
    await batch(server.url, writeKey, [{ type: 'identify', userId: 'olga-1', traits: { email: OWNER.email, first_name: 'Olga' } }])
    await eventually(async () => (await apiAs(server.url, ownerToken, '/api/v1/profiles?q=' + encodeURIComponent(OWNER.email))).body.items?.length, { what: 'the owner as a customer' })
    await editor.getByRole('button', { name: 'Send test to me' }).click()
    await editor.getByRole('alert').getByText('Not sent: no email channel is connected', { exact: false }).waitFor()

    // A save with a typo is refused beside its field, naming the line.
    await editor.getByLabel('Subject').fill('Hi {{ shop.nme }}')
    await editor.getByRole('button', { name: 'Save changes' }).click()
    await editor.getByRole('alert').getByText(/Line 1: unknown variable shop\.nme \(did you mean shop\.name\?\)/).waitFor()
  })
})

describe('preference center', () => {
  it('a customer chooses her channels without logging in, and the ledger shows her change', async () => {
    const prefs = await linkFor('preferences_url')
    const customerPage = await browser.newPage()
    await customerPage.goto(prefs)
    await customerPage.getByRole('heading', { name: 'Your message preferences' }).waitFor()
    const email = customerPage.getByLabel('Email')
    assert.equal(await email.isChecked(), false)
    // Keyboard only: tab to the checkbox, tick it, save.
    await email.focus()
    await customerPage.keyboard.press('Space')
    await customerPage.getByRole('button', { name: 'Save preferences' }).click()
    await customerPage.getByRole('status').getByText('Your preferences are saved.').waitFor()
    assert.equal(await customerPage.getByLabel('Email').isChecked(), true)
    await shot(customerPage, 'preference-center')
    const c = await eventually(async () => {
      const c = await consentOf('email')
      return c?.status === 'subscribed' ? c : null
    }, { what: 'email consent subscribed' })
    assert.equal(c.source, 'customer')
    assert.equal(c.reason, 'preference center')

    // The link in an email asks first (a mail scanner opening it changes
    // nothing); one button unsubscribes; "Changed your mind?" is offered.
    await customerPage.goto(await linkFor('unsubscribe_url'))
    await customerPage.getByRole('heading', { name: 'Unsubscribe from email?' }).waitFor()
    assert.equal((await consentOf('email'))?.status, 'subscribed')
    await shot(customerPage, 'unsubscribe-confirm')
    await customerPage.getByRole('button', { name: 'Unsubscribe', exact: true }).click()
    await customerPage.getByRole('heading', { name: "You're unsubscribed" }).waitFor()
    await customerPage.getByRole('button', { name: 'Resubscribe to email' }).waitFor()
    const u = await eventually(async () => {
      const c = await consentOf('email')
      return c?.status === 'unsubscribed' ? c : null
    }, { what: 'email consent unsubscribed' })
    assert.equal(u.source, 'customer')

    // A forged link says so and nothing more.
    const res = await customerPage.goto(server.url + '/p/prefs/forged.token.x')
    assert.equal(res.status(), 404)
    await customerPage.getByRole('heading', { name: 'This link is not valid' }).waitFor()
    await customerPage.close()
  })
})
