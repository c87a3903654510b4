// Staff email: with no mail server the reset page says plainly that no
// email can be sent (and what to do instead); once the owner connects the
// Email connector, a reset request delivers a mail to its SMTP server.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { apiAs, buildOmni, eventually, launchBrowser, login, shot, startOmni, tmpDir } from './harness.js'

const OWNER = { name: 'Olga Owner', email: 'owner@omni-shop.dev', password: 'owner-pass-1' }

let tmp, server, browser, page, ownerToken, smtp

// smtpServer is the smallest SMTP server that accepts mail (no TLS, no
// auth): enough to see the reset mail arrive.
function smtpServer() {
  const mails = []
  const srv = net.createServer((sock) => {
    let buf = ''
    let inData = false
    let mail = { to: [], data: '' }
    const say = (line) => sock.write(line + '\r\n')
    say('220 localhost ESMTP test')
    sock.on('data', (chunk) => {
      buf += chunk.toString('utf8')
      for (;;) {
        if (inData) {
          const end = buf.indexOf('\r\n.\r\n')
          if (end < 0) return
          mail.data = buf.slice(0, end)
          buf = buf.slice(end + 5)
          inData = false
          mails.push(mail)
          mail = { to: [], data: '' }
          say('250 OK queued')
          continue
        }
        const nl = buf.indexOf('\r\n')
        if (nl < 0) return
        const line = buf.slice(0, nl)
        buf = buf.slice(nl + 2)
        const cmd = line.slice(0, 4).toUpperCase()
        if (cmd === 'EHLO' || cmd === 'HELO') say('250 localhost')
        else if (cmd === 'MAIL') say('250 OK')
        else if (cmd === 'RCPT') (mail.to.push(line.replace(/^RCPT TO:\s*<?([^>]*)>?.*$/i, '$1')), say('250 OK'))
        else if (cmd === 'DATA') (inData = true, say('354 go ahead'))
        else if (cmd === 'QUIT') (say('221 bye'), sock.end())
        else say('250 OK')
      }
    })
    sock.on('error', () => {})
  })
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve({ port: srv.address().port, mails, close: () => srv.close() })))
}

before(async () => {
  tmp = tmpDir()
  const bin = buildOmni(tmp)
  server = await startOmni(bin, path.join(tmp, 'data'), { logName: 'omni-mail.log' })
  const owner = await apiAs(server.url, '', '/api/v1/setup/owner', { method: 'POST', body: JSON.stringify({ ...OWNER, passwordConfirm: OWNER.password }) })
  assert.equal(owner.status, 200, JSON.stringify(owner.body))
  ownerToken = await login(server.url, OWNER.email, OWNER.password)
  smtp = await smtpServer()
  browser = await launchBrowser(tmp)
  page = browser.pages()[0] || (await browser.newPage())
  page.setDefaultTimeout(10000)
})

after(async () => {
  await browser?.close()
  await server?.stop()
  smtp?.close()
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true })
})

describe('staff email', () => {
  it('says no email can be sent until the Email connector is set up, then sends the reset mail through it', async () => {
    // No mail server: the page says so instead of offering a link that never comes.
    await page.goto(server.url + '/forgot-password')
    const notice = page.getByTestId('mail-not-set-up')
    await notice.waitFor()
    const text = await notice.textContent()
    assert.match(text, /Email isn't set up yet/)
    assert.match(text, /Connectors → Email/)
    assert.match(text, /omni superuser upsert/)
    assert.equal(await page.getByRole('button', { name: 'Send reset link' }).count(), 0)
    await shot(page, 'mail-not-set-up')
    // The API answers the same, whoever asks.
    const refused = await apiAs(server.url, '', '/api/collections/staff/request-password-reset', { method: 'POST', body: JSON.stringify({ email: OWNER.email }) })
    assert.equal(refused.status, 503)
    assert.match(refused.body.message, /Email isn't set up yet/)

    // The owner connects the shop's mail server.
    const on = await apiAs(server.url, ownerToken, '/api/v1/connectors/email', {
      method: 'PATCH',
      body: JSON.stringify({ enabled: true, config: { smtp_host: '127.0.0.1', smtp_port: String(smtp.port), smtp_security: 'none', from_email: 'shop@omni-shop.dev', from_name: 'Omni Test Shop' } }),
    })
    assert.equal(on.status, 200, JSON.stringify(on.body))
    await eventually(async () => (await apiAs(server.url, '', '/api/v1/mail/status')).body.ready === true, { what: 'mail ready through the connector' })

    await page.goto(server.url + '/forgot-password')
    await page.getByLabel('Email').fill(OWNER.email)
    await page.getByRole('button', { name: 'Send reset link' }).click()
    await page.getByText(/we have sent it a link/).waitFor()
    await shot(page, 'mail-reset-sent')
    const mail = await eventually(() => smtp.mails.find((m) => m.to.includes(OWNER.email)), { what: 'the reset mail at the SMTP server' })
    assert.match(mail.data, /From: "?Omni Test Shop"? <shop@omni-shop\.dev>/)
    assert.match(mail.data.replace(/=\r\n/g, ''), /reset-password\//)
  })
})
