// The journey graph as the builder edits it (format: docs/journeys.md):
// step kinds and their exits, fresh steps for the palette, the top-to-bottom
// layout for steps the owner never placed, and edits that keep `next`,
// `start` and `layout` consistent. Pure functions over plain objects, so the
// canvas is only a view of the graph.

// The start node on the canvas; ':' cannot appear in a step id.
export const TRIGGER_ID = 'trigger:'

// Step kinds in palette order, with the exits each has (core/journeys/graph.Exits).
export const STEP_KINDS = {
  wait: { label: 'Wait', hint: 'A duration, or until a time of day', exits: ['next'] },
  wait_for_event: { label: 'Wait for event', hint: 'Until an event happens, or a timeout', exits: ['happened', 'timed_out'] },
  branch: { label: 'Branch', hint: 'Yes / no on the customer or the trigger event', exits: ['yes', 'no'] },
  send: { label: 'Send', hint: 'A template on a channel, with fallbacks', exits: ['sent', 'suppressed'] },
  split: { label: 'A/B split', hint: 'Weighted arms', exits: [] },
  holdout: { label: 'Holdout', hint: 'A share that gets nothing, to measure lift', exits: ['held_out', 'continue'] },
  update: { label: 'Update customer', hint: 'Set a property, add or remove tags', exits: ['next'] },
  webhook: { label: 'Webhook', hint: 'A signed POST to your URL', exits: ['ok', 'failed'] },
  notify: { label: 'Notify staff', hint: 'Hand the customer to a person', exits: ['next'] },
  exit: { label: 'Exit', hint: 'The run ends here', exits: [] },
}

export const EXIT_LABELS = {
  next: 'next', happened: 'happened', timed_out: 'timed out', yes: 'yes', no: 'no', sent: 'sent', suppressed: 'suppressed',
  held_out: 'held out', continue: 'continue', ok: 'ok', failed: 'failed',
}

// exitsOf lists a step's exits: a split's are its arms' names.
export function exitsOf(node) {
  if (!node) return []
  if (node.type === 'split') return (node.arms || []).map((a) => a.name).filter(Boolean)
  return STEP_KINDS[node.type]?.exits || []
}

// freshStep is what the palette adds: valid where a sensible default exists.
export function freshStep(type) {
  switch (type) {
    case 'wait': return { type, duration: '1d' }
    case 'wait_for_event': return { type, event: 'order.placed', timeout: '1d' }
    case 'branch': return { type, rule: { and: [{ consent: 'whatsapp', status: 'subscribed' }] } }
    case 'send': return { type, channels: ['email'], template: '', kind: 'marketing' }
    case 'split': return { type, arms: [{ name: 'a', weight: 50 }, { name: 'b', weight: 50 }] }
    case 'holdout': return { type, percent: 10 }
    case 'update': return { type, add_tags: [] }
    case 'webhook': return { type, url: '' }
    case 'notify': return { type, message: '', open_conversation: false }
    default: return { type }
  }
}

const PREFIX = { wait: 'wait', wait_for_event: 'await', branch: 'branch', send: 'send', split: 'split', holdout: 'holdout', update: 'update', webhook: 'webhook', notify: 'notify', exit: 'end' }

// newStepId is the first unused "<kind><n>" id.
export function newStepId(graph, type) {
  const p = PREFIX[type] || 'step'
  for (let i = 1; ; i++) if (!graph.nodes?.[p + i]) return p + i
}

// emptyGraph is a new journey's draft.
export function emptyGraph() {
  return { trigger: { event: 'checkout.started' }, start: '', nodes: {} }
}

const COL = 260
const ROW = 150

// autoLayout places every step the layout lacks, top to bottom by distance
// from the start; unreachable ones go in a row below. Placed steps stay.
export function autoLayout(graph) {
  graph.layout ||= {}
  const nodes = graph.nodes || {}
  // Depth is the longest path from the start (capped, so loops end), so a
  // step shared by two branches sits below both.
  const depth = {}
  const order = []
  if (graph.start && nodes[graph.start]) {
    depth[graph.start] = 1
    order.push(graph.start)
    const cap = Object.keys(nodes).length + 1
    for (let changed = true, pass = 0; changed && pass < cap; pass++) {
      changed = false
      for (let i = 0; i < order.length; i++) {
        const id = order[i]
        for (const to of Object.values(nodes[id]?.next || {})) {
          if (!to || !nodes[to] || to === id) continue
          if (depth[to] === undefined) order.push(to)
          if (depth[to] === undefined || (depth[to] < depth[id] + 1 && depth[id] + 1 <= cap)) {
            depth[to] = depth[id] + 1
            changed = true
          }
        }
      }
    }
  }
  const maxDepth = Math.max(0, ...Object.values(depth))
  const rows = {}
  for (const id of [...order, ...Object.keys(nodes).filter((k) => depth[k] === undefined)]) {
    const d = depth[id] ?? maxDepth + 1
    ;(rows[d] ||= []).push(id)
  }
  for (const [d, ids] of Object.entries(rows)) {
    ids.forEach((id, i) => {
      if (graph.layout[id]) return
      graph.layout[id] = { x: (i - (ids.length - 1) / 2) * COL, y: Number(d) * ROW }
    })
  }
  return graph
}

// triggerPosition keeps the start node above the first step.
export function triggerPosition(graph) {
  const first = graph.layout?.[graph.start]
  return graph.layout?.[TRIGGER_ID] || { x: first ? first.x : 0, y: (first ? first.y : ROW) - ROW }
}

// freeSpot is below the lowest step, for a step added by click.
export function freeSpot(graph) {
  const ys = Object.values(graph.layout || {}).map((p) => p.y)
  const xs = Object.values(graph.layout || {}).map((p) => p.x)
  return { x: xs.length ? Math.min(...xs) : 0, y: ys.length ? Math.max(...ys) + ROW : ROW }
}

// connect points a step's exit (or the trigger) at a step.
export function connect(graph, source, exit, target) {
  if (!graph.nodes[target]) return
  if (source === TRIGGER_ID) {
    graph.start = target
    return
  }
  const n = graph.nodes[source]
  if (!n) return
  n.next = { ...(n.next || {}), [exit]: target }
}

// disconnect removes what an edge stood for.
export function disconnect(graph, source, exit) {
  if (source === TRIGGER_ID) {
    graph.start = ''
    return
  }
  const n = graph.nodes[source]
  if (!n?.next) return
  const next = { ...n.next }
  delete next[exit]
  if (Object.keys(next).length) n.next = next
  else delete n.next
}

// removeStep deletes a step and every way into it.
export function removeStep(graph, id) {
  delete graph.nodes[id]
  if (graph.layout) delete graph.layout[id]
  if (graph.start === id) graph.start = ''
  for (const [src, n] of Object.entries(graph.nodes)) {
    for (const [exit, to] of Object.entries(n.next || {})) if (to === id) disconnect(graph, src, exit)
  }
}

// renameArm keeps a split's edges when an arm is renamed.
export function renameArm(node, from, to) {
  if (!node.next || !(from in node.next) || from === to) return
  const next = { ...node.next, [to]: node.next[from] }
  delete next[from]
  node.next = next
}

// triggerSummary says in words who enters.
export function triggerSummary(t) {
  if (!t) return 'No trigger'
  if (t.event) return 'When ' + t.event + (t.where ? ' (with conditions)' : '')
  if (t.segment) return (t.on === 'exit' ? 'Leaves segment ' : 'Enters segment ') + (t.segmentName || t.segment)
  if (t.date) return 'On ' + (t.date.property || 'a date') + (t.date.offset ? ' + ' + t.date.offset : '') + (t.date.yearly ? ', yearly' : '')
  if (t.manual) return 'Enrolled by hand or API'
  return 'No trigger'
}

// stepSummary is the one line a node shows under its title.
export function stepSummary(n, templates = {}) {
  switch (n.type) {
    case 'wait':
      if (n.until) return 'until ' + (n.until.time || '?') + (n.until.weekdays?.length ? ' on ' + n.until.weekdays.join(', ') : '')
      return n.duration ? 'for ' + n.duration : 'no duration'
    case 'wait_for_event': return (n.event || '?') + ', up to ' + (n.timeout || '?')
    case 'branch': return n.rule ? 'on the customer' + (n.where ? ' and the event' : '') : n.where ? 'on the trigger event' : 'no rule'
    case 'send': return (n.channels || []).join(' → ') + ': ' + (templates[n.template]?.name || n.template || 'no template')
    case 'split': return (n.arms || []).map((a) => `${a.name} ${a.weight}`).join(' / ')
    case 'holdout': return (n.percent ?? 0) + '% get nothing'
    case 'update': {
      const parts = [...Object.keys(n.set || {}).map((k) => 'set ' + k), ...(n.add_tags || []).map((t) => '+' + t), ...(n.remove_tags || []).map((t) => '−' + t)]
      return parts.join(', ') || 'nothing yet'
    }
    case 'webhook': return n.url || 'no URL'
    case 'notify': return (n.open_conversation ? 'opens a conversation: ' : '') + (n.message || 'no message')
    case 'exit': return 'the run ends'
    default: return n.type
  }
}
