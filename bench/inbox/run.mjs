// bench/inbox measures how long a customer's WhatsApp message takes to
// show in an agent's browser: from the moment Meta's signed webhook is
// posted to the moment its text is in the page's DOM, through the real
// omni binary (the whatsapp connector as a plugin subprocess, the events
// transaction, the inbox, PocketBase realtime) and a real Chromium.
//
// Both ends are timed in the browser, on one clock: the page posts each
// webhook itself (same origin) and a MutationObserver stamps
// performance.now() when the message's text lands in the DOM. The floor,
// measured in the same run, is the webhook's own answer (the message
// accepted and durable on the bus): what is left above it is the inbox
// and the push to the browser.
//
// Usage (from the repository root; needs `cd ui && npm ci` once):
//
//	node bench/inbox/run.mjs                       # 300 messages, 10 a second, on /inbox
//	node bench/inbox/run.mjs -n 1000 -rate 20
//	node bench/inbox/run.mjs -page topic           # a bare page subscribed to omni/inbox
//
// -page inbox signs an agent in and opens the admin's /inbox page (the
// list shows each conversation's latest message); -page topic opens a bare
// page of the same origin that subscribes to the realtime topic
// omni/inbox and writes each pushed message into the DOM (no UI code).
// BENCH_OMNI_BIN=path skips the build; CHROMIUM_PATH overrides /usr/bin/chromium.
import { execFileSync, spawn } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const { chromium } = createRequire(path.join(repoRoot, 'ui', 'package.json'))('playwright-core')

function flags() {
  const f = { n: 300, rate: 10, customers: 50, page: 'inbox' }
  const a = process.argv.slice(2)
  for (let i = 0; i < a.length; i += 2) {
    const k = a[i].replace(/^-+/, '')
    if (!(k in f) || a[i + 1] === undefined) {
      console.error(`bench: unknown flag ${a[i]} (flags: -n, -rate, -customers, -page inbox|topic)`)
      process.exit(2)
    }
    f[k] = typeof f[k] === 'number' ? Number(a[i + 1]) : a[i + 1]
  }
  if (!(f.n >= 1 && f.rate > 0 && f.customers >= 1) || !['inbox', 'topic'].includes(f.page)) {
    console.error('bench: -n, -rate and -customers must be positive; -page is inbox or topic')
    process.exit(2)
  }
  return f
}

const PNID = '106540352242922'
const SECRET = 'bench-app-secret'
const TOKEN = 'bench-graph-token'

// graphAPI answers the connector's health check and sends, as Meta's Graph API would.
function graphAPI() {
  let n = 0
  const srv = http.createServer((req, res) => {
    req.resume()
    res.setHeader('Content-Type', 'application/json')
    if (req.headers.authorization !== 'Bearer ' + TOKEN) {
      res.statusCode = 401
      return res.end('{"error":{"message":"Invalid OAuth access token","code":190}}')
    }
    if (req.method === 'GET') return res.end(JSON.stringify({ id: PNID, display_phone_number: '15550783881', verified_name: 'Bench Shop' }))
    res.end(JSON.stringify({ messaging_product: 'whatsapp', messages: [{ id: `wamid.BENCH${++n}` }] }))
  })
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve(srv)))
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
    s.on('error', reject)
  })
}

async function api(url, token, p, body, method = body ? 'POST' : 'GET') {
  const r = await fetch(url + p, { method, headers: { 'Content-Type': 'application/json', Authorization: token }, body: body && JSON.stringify(body) })
  const text = await r.text()
  if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${text}`)
  return text ? JSON.parse(text) : null
}

async function until(what, fn, timeout = 60000) {
  const deadline = Date.now() + timeout
  for (;;) {
    try {
      if (await fn()) return
    } catch {}
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 200))
  }
}

// webhook is Meta's notification for one text message, in the shape of
// the real delivery (see /work/shared/fixtures/whatsapp), and its signature.
function webhook(i, waID, text) {
  const body = JSON.stringify({
    object: 'whatsapp_business_account',
    entry: [{ id: '419561257915477', changes: [{ field: 'messages', value: {
      messaging_product: 'whatsapp',
      metadata: { display_phone_number: '15550783881', phone_number_id: PNID },
      contacts: [{ profile: { name: `Bench Customer ${waID.slice(-3)}` }, wa_id: waID }],
      messages: [{ from: waID, id: `wamid.BENCHIN${String(i).padStart(6, '0')}`, timestamp: String(Math.floor(Date.now() / 1000)), type: 'text', text: { body: text } }],
    } }] }],
  })
  return { body, sig: 'sha256=' + crypto.createHmac('sha256', SECRET).update(body).digest('hex') }
}

const pct = (xs, p) => xs[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)]
const fmt = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return { median: +pct(s, 50).toFixed(1), p95: +pct(s, 95).toFixed(1), p99: +pct(s, 99).toFixed(1), max: +s[s.length - 1].toFixed(1) }
}

async function main() {
  const f = flags()
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'omni-bench-inbox-'))
  let server, browser, graph
  try {
    const bin = process.env.BENCH_OMNI_BIN || path.join(tmp, 'omni')
    if (!process.env.BENCH_OMNI_BIN) execFileSync('go', ['build', '-o', bin, '.'], { cwd: repoRoot, stdio: 'inherit' })
    const dataDir = path.join(tmp, 'data')
    fs.mkdirSync(dataDir)
    graph = await graphAPI()
    // Omni reads OMNI_* variables as config: run it without the caller's.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('OMNI_')))
    const cli = (...args) => execFileSync(bin, [...args, '--data-dir', dataDir], { encoding: 'utf8', env })
    cli('connector', 'configure', 'whatsapp', `phone_number_id=${PNID}`, `access_token=${TOKEN}`, `app_secret=${SECRET}`,
      'verify_token=bench-verify', `base_url=http://127.0.0.1:${graph.address().port}`)
    cli('connector', 'enable', 'whatsapp')

    const port = await freePort()
    const url = `http://127.0.0.1:${port}`
    const logPath = path.join(tmp, 'omni.log')
    const proc = spawn(bin, ['serve', '--data-dir', dataDir, '--http', `127.0.0.1:${port}`], { env, stdio: ['ignore', fs.openSync(logPath, 'w'), fs.openSync(logPath, 'a')] })
    server = proc
    await until('omni to serve', async () => (await fetch(url + '/api/v1/health')).ok)
    await until('the whatsapp connector to run', async () =>
      (await fetch(url + '/webhooks/whatsapp?hub.mode=subscribe&hub.challenge=1&hub.verify_token=bench-verify')).ok)

    const owner = (await api(url, '', '/api/v1/setup/owner', { email: 'owner@omni-shop.dev', password: 'owner-pass-1234', passwordConfirm: 'owner-pass-1234', name: 'Olga Owner' })).token
    await api(url, owner, '/api/collections/staff/records', { email: 'alex@omni-shop.dev', password: 'agent-pass-1234', passwordConfirm: 'agent-pass-1234', name: 'Alex Agent', role: 'agent' })
    const agent = await api(url, '', '/api/collections/staff/auth-with-password', { identity: 'alex@omni-shop.dev', password: 'agent-pass-1234' })

    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-renderer-backgrounding', '--disable-background-timer-throttling'],
    })
    const page = await browser.newPage()
    // Sign the agent in the way the admin keeps its session.
    await page.goto(url + '/api/v1/health')
    await page.evaluate((a) => localStorage.setItem('pocketbase_auth', JSON.stringify({ token: a.token, record: a.record })), agent)
    if (f.page === 'inbox') {
      await page.goto(url + '/inbox')
      await page.waitForLoadState('networkidle')
    } else {
      await page.evaluate(subscribeTopic, agent.token)
      await page.waitForFunction(() => window.__subscribed === true, null, { timeout: 20000 })
    }
    await page.evaluate(observe)

    // One warm-up message through the whole path (plugin, first
    // conversation, the page's first render) before timing.
    const warm = webhook(999999, '447700999999', 'bench-warmup')
    await page.evaluate(post, { ...warm, i: -1 })
    await page.waitForFunction(() => window.__seen[-1] !== undefined, null, { timeout: 60000 })

    const msgs = []
    for (let i = 0; i < f.n; i++) {
      const waID = '4477009' + String(10000 + (i % f.customers)).slice(-5)
      msgs.push({ i, ...webhook(i, waID, `bench-${i}-x hello from the bench`) })
    }
    const started = Date.now()
    await page.evaluate(({ msgs, interval }) => {
      msgs.forEach((m) => setTimeout(() => window.__post(m), m.i * interval))
    }, { msgs, interval: 1000 / f.rate })
    await page.waitForFunction((n) => Object.keys(window.__seen).length >= n + 1 && Object.keys(window.__acked).length >= n + 1, f.n, { timeout: 60000 + (f.n / f.rate) * 1000, polling: 250 })
    const { sent, acked, seen, codes } = await page.evaluate(() => ({ sent: window.__sent, acked: window.__acked, seen: window.__seen, codes: window.__codes }))
    const bad = Object.entries(codes).filter(([i, c]) => c !== 200 && i !== '-1')
    if (bad.length) throw new Error(`webhooks refused: ${JSON.stringify(bad.slice(0, 5))}`)
    const visible = [], floor = []
    for (let i = 0; i < f.n; i++) {
      visible.push(seen[i] - sent[i])
      floor.push(acked[i] - sent[i])
    }
    const result = {
      page: f.page, messages: f.n, rate_per_s: f.rate, customers: f.customers, seconds: +((Date.now() - started) / 1000).toFixed(1),
      webhook_to_dom_ms: fmt(visible), floor_webhook_answer_ms: fmt(floor),
    }
    console.log(`inbox: ${f.n} WhatsApp webhooks at ${f.rate}/s over ${f.customers} customers, page ${f.page}`)
    console.log(`  webhook → text in the agent's DOM: median ${result.webhook_to_dom_ms.median} ms, p95 ${result.webhook_to_dom_ms.p95} ms, p99 ${result.webhook_to_dom_ms.p99} ms, max ${result.webhook_to_dom_ms.max} ms`)
    console.log(`  floor, webhook answered (durable on the bus): median ${result.floor_webhook_answer_ms.median} ms, p95 ${result.floor_webhook_answer_ms.p95} ms, p99 ${result.floor_webhook_answer_ms.p99} ms`)
    console.log(`  target p99 ≤ 100 ms: ${result.webhook_to_dom_ms.p99 <= 100 ? 'met' : 'NOT met'}`)
    console.log(JSON.stringify(result))
  } catch (err) {
    console.error('bench:', err.message)
    process.exitCode = 1
  } finally {
    await browser?.close()
    if (server && server.exitCode === null) {
      const done = new Promise((r) => server.once('exit', r))
      server.kill('SIGTERM')
      await done
    }
    graph?.close()
    fs.rmSync(tmp, { recursive: true, force: true })
  }
}

// In the page: the bare subscriber to the realtime topic (PocketBase's
// protocol: an SSE stream, then the subscription set with the staff token).
function subscribeTopic(token) {
  const list = document.createElement('main')
  document.body.replaceChildren(list)
  const es = new EventSource('/api/realtime')
  es.addEventListener('PB_CONNECT', async (e) => {
    const { clientId } = JSON.parse(e.data)
    const r = await fetch('/api/realtime', { method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: token }, body: JSON.stringify({ clientId, subscriptions: ['omni/inbox'] }) })
    window.__subscribed = r.status === 204
  })
  es.addEventListener('omni/inbox', (e) => {
    for (const m of JSON.parse(e.data).messages || []) {
      const p = document.createElement('p')
      p.textContent = m.text
      list.append(p)
    }
  })
}

// In the page: stamp when each bench-<i> text first lands in the DOM, and
// post webhooks timing their answers, all on performance.now().
function observe() {
  window.__sent = {}
  window.__acked = {}
  window.__seen = {}
  window.__codes = {}
  const scan = (text) => {
    if (!text || !text.includes('bench-')) return
    const now = performance.now()
    for (const m of text.matchAll(/bench-(\d+|warmup)-?/g)) {
      const i = m[1] === 'warmup' ? -1 : Number(m[1])
      if (window.__seen[i] === undefined) window.__seen[i] = now
    }
  }
  new MutationObserver((records) => {
    for (const r of records) {
      if (r.type === 'characterData') scan(r.target.data)
      for (const n of r.addedNodes) scan(n.textContent)
    }
  }).observe(document.body, { childList: true, subtree: true, characterData: true })
  window.__post = async ({ i, body, sig }) => {
    window.__sent[i] = performance.now()
    const r = await fetch('/webhooks/whatsapp', { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-Hub-Signature-256': sig }, body })
    window.__acked[i] = performance.now()
    window.__codes[i] = r.status
  }
}

function post(m) {
  return window.__post(m)
}

main()
