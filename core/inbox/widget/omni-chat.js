/* Omni website chat. Add to a page:
 *   <script src="https://omni.example/widget/omni-chat.js" data-omni-widget="cw_…" async></script>
 * Plain JavaScript, no framework. The visitor's token is kept in
 * localStorage, so the chat survives page changes and reloads; messages
 * carry the page's Segment anonymousId so the chat lands on the same
 * profile as the visitor's browsing. */
(function () {
  'use strict'
  var script = document.currentScript || document.querySelector('script[data-omni-widget]')
  if (!script || window.__omniChat) return
  window.__omniChat = true
  var key = script.getAttribute('data-omni-widget') || ''
  var api = script.src.replace(/\/widget\/omni-chat\.js(\?.*)?$/, '') + '/widget/' + encodeURIComponent(key)
  var tokenKey = 'omni_chat_token:' + key
  var openKey = 'omni_chat_open:' + key

  function get(storage, k) { try { return window[storage].getItem(k) } catch (e) { return null } }
  function set(storage, k, v) { try { v == null ? window[storage].removeItem(k) : window[storage].setItem(k, v) } catch (e) {} }
  function unquote(v) {
    if (!v) return ''
    try { var j = JSON.parse(v); if (typeof j === 'string') return j } catch (e) {}
    return String(v)
  }

  // The page's Segment anonymousId: analytics.js, its localStorage copy
  // (JSON-quoted) or its cookie.
  function anonymousId() {
    try {
      var a = window.analytics && window.analytics.user && window.analytics.user().anonymousId()
      if (a) return String(a)
    } catch (e) {}
    var v = unquote(get('localStorage', 'ajs_anonymous_id'))
    if (v) return v
    var m = document.cookie.match(/(?:^|;\s*)ajs_anonymous_id=([^;]*)/)
    return m ? unquote(decodeURIComponent(m[1])) : ''
  }

  function call(method, path, body) {
    var init = { method: method }
    if (body) {
      init.body = JSON.stringify(body)
      init.headers = { 'Content-Type': 'text/plain' } // a simple request: no preflight
    }
    return fetch(api + path, init).then(function (r) {
      return r.json().catch(function () { return {} }).then(function (j) {
        if (!r.ok) { var err = new Error(j.message || 'HTTP ' + r.status); err.status = r.status; throw err }
        return j
      })
    })
  }

  var state = { token: get('localStorage', tokenKey), session: null, online: false, emailGiven: false, seen: {}, unread: 0, stream: null }

  // ---- the view (in a shadow root: the shop's styles do not leak in) ----
  var host = document.createElement('div')
  host.setAttribute('data-omni-chat', '')
  var root = host.attachShadow ? host.attachShadow({ mode: 'open' }) : host
  root.innerHTML =
    '<style>' +
    ':host{all:initial}*{box-sizing:border-box;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}' +
    '.bubble{position:fixed;right:20px;bottom:20px;width:56px;height:56px;border-radius:50%;border:0;cursor:pointer;color:#fff;background:var(--c);box-shadow:0 4px 14px rgba(0,0,0,.25);z-index:2147483000;padding:0}' +
    '.badge{position:absolute;top:-4px;right:-4px;min-width:20px;height:20px;border-radius:10px;background:#d1242f;color:#fff;font-size:12px;line-height:20px;padding:0 6px}' +
    '.panel{position:fixed;right:20px;bottom:88px;width:340px;max-width:calc(100vw - 40px);height:480px;max-height:calc(100vh - 120px);background:#fff;color:#1f2328;border-radius:12px;box-shadow:0 8px 30px rgba(0,0,0,.25);display:flex;flex-direction:column;overflow:hidden;z-index:2147483000}' +
    '.head{position:relative;background:var(--c);color:#fff;padding:12px 44px 12px 14px}.close{position:absolute;top:6px;right:6px;width:32px;height:32px;border:0;border-radius:50%;background:none;color:#fff;font-size:22px;line-height:1;cursor:pointer;padding:0}.close:hover{background:rgba(255,255,255,.15)}.title{font-weight:600;font-size:15px}.status{font-size:12px;opacity:.9;margin-top:2px}' +
    '.dot{display:inline-block;width:8px;height:8px;border-radius:50%;background:#9aa4ad;margin-right:6px}.on .dot{background:#3fb950}' +
    '.list{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:8px;background:#f6f8fa}' +
    '.msg{max-width:80%;padding:8px 11px;border-radius:12px;font-size:14px;line-height:1.35;white-space:pre-wrap;word-wrap:break-word}' +
    '.them{align-self:flex-start;background:#fff;border:1px solid #d0d7de}.me{align-self:flex-end;background:var(--c);color:#fff}.pending{opacity:.6}' +
    '.who{font-size:11px;color:#59636e;margin-bottom:2px}.note{font-size:12px;color:#59636e;text-align:center}' +
    'form{display:flex;border-top:1px solid #d0d7de;margin:0}textarea,input{flex:1;border:0;padding:12px;font-size:14px;resize:none;outline:none;color:#1f2328;background:#fff}' +
    'button.send{border:0;background:none;color:var(--c);font-weight:600;padding:0 14px;cursor:pointer;font-size:14px}' +
    '.ask{padding:10px 12px;border-top:1px solid #d0d7de;font-size:13px}.ask form{border:1px solid #d0d7de;border-radius:8px;margin-top:6px}.ask input{padding:8px}' +
    '[hidden]{display:none!important}' +
    // On a phone: the panel takes the screen (a 340 px box with margins
    // leaves no room to read), and the fields are 16 px, below which iOS
    // Safari zooms the whole page in when one is focused.
    '@media (max-width:480px){.panel{right:0;left:0;bottom:0;top:0;width:auto;max-width:none;height:auto;max-height:none;border-radius:0}textarea,input{font-size:16px}.panel:not([hidden])~.bubble{display:none}}' +
    '</style>' +
    '<div class="panel" part="panel" role="dialog" hidden>' +
    '<div class="head"><button class="close" type="button" aria-label="Close chat">&times;</button><div class="title"></div><div class="status"><span class="dot"></span><span class="st"></span></div></div>' +
    '<div class="list" aria-live="polite"></div>' +
    '<div class="ask" hidden><div class="asktext">Nobody is online right now. Leave your email and we will reply there.</div>' +
    '<form class="emailform"><input type="email" name="email" placeholder="you@example.com" required aria-label="Your email"><button class="send" type="submit">Save</button></form></div>' +
    '<form class="compose"><textarea name="text" rows="2" maxlength="5000" placeholder="Write a message…" aria-label="Message"></textarea><button class="send" type="submit">Send</button></form>' +
    '</div>' +
    '<button class="bubble" part="bubble" aria-label="Open chat" type="button">' +
    '<svg width="26" height="26" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linejoin="round" aria-hidden="true" style="vertical-align:middle"><path d="M21 12a8 8 0 0 1-11.6 7.1L4 20l1.1-4.6A8 8 0 1 1 21 12z"/></svg>' +
    '<span class="badge" hidden></span></button>'
  function $(sel) { return root.querySelector(sel) }
  var panel = $('.panel'), list = $('.list'), bubble = $('.bubble'), badge = $('.badge'), ask = $('.ask')
  var compose = $('.compose'), textarea = compose.querySelector('textarea'), emailForm = $('.emailform')

  function applyWidget(w) {
    host.style.setProperty('--c', (w && w.color) || '#1f6feb')
    $('.title').textContent = (w && w.title) || 'Chat with us'
  }
  applyWidget(null)

  function showPresence() {
    $('.head').className = 'head' + (state.online ? ' on' : '')
    $('.st').textContent = state.online ? 'We are online' : 'We are away: we will reply as soon as we can'
    var w = state.session && state.session.widget
    var wantsEmail = w && w.ask_email_offline && !state.online && !state.emailGiven && list.querySelector('.me')
    ask.hidden = !wantsEmail
  }

  function add(m) {
    if (m.id && state.seen[m.id]) return
    if (m.id) state.seen[m.id] = true
    var mine = m.from === 'visitor'
    if (mine && m.client_id) {
      var pending = list.querySelector('[data-client="' + m.client_id + '"]')
      if (pending) { pending.classList.remove('pending'); pending.removeAttribute('data-client'); return }
    }
    var el = document.createElement('div')
    el.className = 'msg ' + (mine ? 'me' : 'them') + (m.pending ? ' pending' : '')
    if (m.pending) el.setAttribute('data-client', m.client_id)
    if (!mine) {
      var who = document.createElement('div')
      who.className = 'who'
      who.textContent = (m.name || (m.from === 'bot' ? 'Assistant' : 'Team')) + (m.via === 'email' ? ' · sent by email' : '')
      el.appendChild(who)
    }
    el.appendChild(document.createTextNode(m.text))
    list.appendChild(el)
    list.scrollTop = list.scrollHeight
    if (!mine && panel.hidden) {
      state.unread++
      badge.textContent = state.unread
      badge.hidden = false
    }
  }

  function note(text) {
    var el = document.createElement('div')
    el.className = 'note'
    el.textContent = text
    list.appendChild(el)
    list.scrollTop = list.scrollHeight
  }

  function render(history) {
    var pending = [].slice.call(list.querySelectorAll('.pending')) // sent, not yet filed
    list.textContent = ''
    state.seen = {}
    var greeting = state.session && state.session.widget && state.session.widget.greeting
    if (greeting) add({ from: 'shop', text: greeting })
    var unread = state.unread
    ;(history.messages || []).forEach(add)
    state.unread = unread
    var filed = {}
    ;(history.messages || []).forEach(function (m) { if (m.client_id) filed[m.client_id] = true })
    pending.forEach(function (el) { if (!filed[el.getAttribute('data-client')]) list.appendChild(el) })
    state.online = !!history.online
    state.emailGiven = !!history.email_given
    showPresence()
  }

  // ---- the session and its live stream ----
  var starting = null
  function start() {
    if (starting) return starting
    starting = call('POST', '/session', { token: state.token, anonymous_id: anonymousId() }).then(function (s) {
      state.session = s
      state.token = s.token
      state.online = !!s.online
      state.emailGiven = !!s.email_given
      set('localStorage', tokenKey, s.token)
      applyWidget(s.widget)
      openStream()
      return s
    })
    starting.catch(function () { starting = null })
    return starting
  }

  function loadHistory() {
    return call('GET', '/messages?token=' + encodeURIComponent(state.token)).then(render)
  }

  function openStream() {
    if (state.stream) state.stream.close()
    var es = new EventSource(api + '/stream?token=' + encodeURIComponent(state.token))
    state.stream = es
    es.addEventListener('ready', function () { loadHistory().catch(function () {}) }) // catch up after every (re)connect
    es.addEventListener('message', function (ev) { try { add(JSON.parse(ev.data)) } catch (e) {} })
    es.addEventListener('presence', function (ev) {
      try { state.online = !!JSON.parse(ev.data).online } catch (e) {}
      showPresence()
    })
    es.onerror = function () {
      if (es.readyState !== 2) return // the browser reconnects by itself
      // Closed for good (the token was refused or the server is gone): a
      // fresh session in a while.
      state.stream = null
      starting = null
      setTimeout(function () { if (!state.stream) start().catch(function () {}) }, 5000)
    }
  }

  function openPanel(open) {
    panel.hidden = !open
    set('sessionStorage', openKey, open ? '1' : null)
    if (open) {
      state.unread = 0
      badge.hidden = true
      start().catch(function (e) {
        if (e.status === 404) host.remove() // the widget was switched off or deleted
        else note('The chat is not available right now (' + e.message + ').')
      })
      setTimeout(function () { textarea.focus() }, 0)
    }
  }

  bubble.addEventListener('click', function () { openPanel(panel.hidden) })
  $('.close').addEventListener('click', function () { openPanel(false); bubble.focus() })

  var counter = 0
  function send() {
    var text = textarea.value.trim()
    if (!text) return
    textarea.value = ''
    var cid = 'c' + Date.now().toString(36) + (counter++).toString(36) + Math.random().toString(36).slice(2, 8)
    add({ from: 'visitor', text: text, client_id: cid, pending: true })
    start().then(function () {
      return call('POST', '/messages', { token: state.token, text: text, id: cid, page: location.href })
    }).then(showPresence, function (e) {
      note('Not sent: ' + e.message)
    })
  }
  compose.addEventListener('submit', function (ev) { ev.preventDefault(); send() })
  textarea.addEventListener('keydown', function (ev) {
    if (ev.key === 'Enter' && !ev.shiftKey) { ev.preventDefault(); send() }
  })
  emailForm.addEventListener('submit', function (ev) {
    ev.preventDefault()
    var email = emailForm.elements.email.value.trim()
    call('POST', '/email', { token: state.token, email: email }).then(function (r) {
      state.emailGiven = true
      showPresence()
      note('Thanks! If we miss you here, we will reply to ' + r.email + '.')
    }, function (e) { note(e.message) })
  })

  function mount() {
    document.body.appendChild(host)
    if (state.token) start().catch(function () {}) // a returning visitor: history and live replies
    if (get('sessionStorage', openKey)) openPanel(true)
  }
  if (document.body) mount()
  else document.addEventListener('DOMContentLoaded', mount)
})()
