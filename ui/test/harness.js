// Test harness: builds the real omni binary, runs it on 127.0.0.1 with a
// temp data dir, seeds it through the real ingest API and drives Debian's
// Chromium with playwright-core.
import { execFileSync, spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'

export const uiDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
export const repoRoot = path.resolve(uiDir, '..')
export const artifacts = path.join(uiDir, 'artifacts')
fs.mkdirSync(artifacts, { recursive: true })

export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium'

// buildOmni compiles the binary once per run (UI_TEST_OMNI_BIN skips the build).
export function buildOmni(tmp) {
  if (process.env.UI_TEST_OMNI_BIN) return process.env.UI_TEST_OMNI_BIN
  const bin = path.join(tmp, 'omni')
  execFileSync('go', ['build', '-o', bin, '.'], { cwd: repoRoot, stdio: 'inherit' })
  return bin
}

// buildDBExec compiles ui/test/dbexec, which runs SQL on a data dir's
// data.db (Node 20 has no SQLite); dbExec returns the rows each statement changed.
export function buildDBExec(tmp) {
  const bin = path.join(tmp, 'dbexec')
  execFileSync('go', ['build', '-o', bin, './ui/test/dbexec'], { cwd: repoRoot, stdio: 'inherit' })
  return bin
}

export function dbExec(bin, dataDir, ...statements) {
  return execFileSync(bin, [dataDir, ...statements], { encoding: 'utf8' }).trim().split('\n').map(Number)
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

export function omniCLI(bin, dataDir, ...args) {
  return execFileSync(bin, [...args, '--data-dir', dataDir], { encoding: 'utf8' })
}

// startOmni runs `omni serve` and waits for /api/v1/health. host is the
// address it binds (0.0.0.0 to test behaviour off loopback; url still goes
// through 127.0.0.1); env adds settings (OMNI_…); its log goes to
// artifacts/<logName>.
export async function startOmni(bin, dataDir, { host = '127.0.0.1', logName = 'omni.log', env = {} } = {}) {
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const logPath = path.join(artifacts, logName)
  const log = fs.openSync(logPath, 'w')
  const proc = spawn(bin, ['serve', '--data-dir', dataDir, '--http', `${host}:${port}`], { stdio: ['ignore', log, log], env: { ...process.env, ...env } })
  const deadline = Date.now() + 60000
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`omni exited with ${proc.exitCode}; see artifacts/${logName}`)
    try {
      const r = await fetch(url + '/api/v1/health')
      if (r.ok) break
    } catch {}
    if (Date.now() > deadline) throw new Error('omni did not start within 60s')
    await new Promise((r) => setTimeout(r, 200))
  }
  return {
    url,
    proc,
    log: () => fs.readFileSync(logPath, 'utf8'),
    async stop() {
      if (proc.exitCode !== null) return
      const done = new Promise((r) => proc.once('exit', r))
      proc.kill('SIGTERM')
      const t = setTimeout(() => proc.kill('SIGKILL'), 15000)
      await done
      clearTimeout(t)
    },
  }
}

// batch posts Segment messages to /v1/batch with a write key.
export async function batch(url, writeKey, messages) {
  const r = await fetch(url + '/v1/batch', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: 'Basic ' + Buffer.from(writeKey + ':').toString('base64') },
    body: JSON.stringify({ batch: messages }),
  })
  if (!r.ok) throw new Error(`batch: ${r.status} ${await r.text()}`)
}

export async function apiAs(url, token, p, init = {}) {
  const r = await fetch(url + p, { ...init, headers: { 'Content-Type': 'application/json', Authorization: token, ...(init.headers || {}) } })
  const text = await r.text()
  let body
  try {
    body = JSON.parse(text)
  } catch {
    body = text
  }
  return { status: r.status, body }
}

export async function login(url, email, password) {
  const r = await apiAs(url, '', '/api/collections/staff/auth-with-password', { method: 'POST', body: JSON.stringify({ identity: email, password }) })
  if (r.status !== 200) throw new Error(`login ${email}: ${r.status} ${JSON.stringify(r.body)}`)
  return r.body.token
}

export async function eventually(fn, { timeout = 60000, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout
  let last
  for (;;) {
    try {
      const v = await fn()
      if (v) return v
    } catch (err) {
      last = err
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? ': ' + last.message : ''}`)
    await new Promise((r) => setTimeout(r, 250))
  }
}

export async function launchBrowser(tmp) {
  const userDataDir = fs.mkdtempSync(path.join(tmp, 'chromium-'))
  return chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 860 },
    args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  })
}

// phoneFit names what keeps a page usable on a phone: it must not scroll
// sideways (a wide table scrolls inside its own box), the top bar stays one
// line high however short the page is, and no field is under 16 px.
export async function phoneFit(page) {
  return page.evaluate(() => ({
    sideways: document.documentElement.scrollWidth - window.innerWidth,
    topBar: document.querySelector('header.top')?.getBoundingClientRect().height ?? 0,
    // Fields under 16 px make iOS Safari zoom in on focus.
    smallFields: [...document.querySelectorAll('main input:not([type=checkbox]):not([type=radio]), main select, main textarea')]
      .filter((f) => f.offsetParent && parseFloat(getComputedStyle(f).fontSize) < 16).map((f) => f.id || f.name || f.getAttribute('aria-label') || f.tagName),
  }))
}

export const shot = (page, name, opts = {}) => page.screenshot({ path: path.join(artifacts, name + '.png'), fullPage: true, ...opts })

export function tmpDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'omni-ui-e2e-'))
}
