// Seed data: one cross-channel customer (web → email → WhatsApp → in-store)
// and many ordinary customers, all through the Segment-compatible API.
import { batch } from './harness.js'

export const ADA = { email: 'ada@omni-shop.dev', phone: '+447700900123', name: 'Ada Lovelace' }

export async function seedCrossChannel(url, writeKey) {
  const t0 = Date.now() - 3 * 3600 * 1000
  const at = (min) => new Date(t0 + min * 60000).toISOString()
  await batch(url, writeKey, [
    { type: 'page', anonymousId: 'anon-ada', name: 'Spring collection', timestamp: at(0), context: { channel: 'web', page: { path: '/spring', title: 'Spring collection' } } },
    { type: 'identify', anonymousId: 'anon-ada', traits: { email: ADA.email, name: ADA.name, plan: 'gold' }, timestamp: at(2), context: { channel: 'web' } },
    {
      type: 'track', anonymousId: 'anon-ada', event: 'Order Completed', timestamp: at(5),
      properties: { order_id: '1001', total: 120, currency: 'EUR' }, context: { channel: 'web', traits: { email: ADA.email, phone: ADA.phone } },
    },
    { type: 'track', anonymousId: 'anon-ada', event: 'email.opened', timestamp: at(30), properties: { subject: 'Your order is on its way' }, context: { channel: 'email', traits: { email: ADA.email } } },
    { type: 'track', anonymousId: 'wa-ada', event: 'message.received', timestamp: at(60), properties: { text: 'Hi! When does my order arrive?' }, context: { channel: 'whatsapp', traits: { phone: ADA.phone } } },
    {
      type: 'track', anonymousId: 'sq-ada', event: 'Order Completed', timestamp: at(120),
      properties: { order_id: 'SQ-77', total: 35.5, currency: 'EUR' }, context: { channel: 'pos', traits: { phone: ADA.phone } },
    },
  ])
}

// seedCustomers adds n customers (identify + an order for every third).
export async function seedCustomers(url, writeKey, n, { batchSize = 500 } = {}) {
  const channels = ['web', 'pos', 'whatsapp']
  let msgs = []
  for (let i = 0; i < n; i++) {
    const email = `customer${i}@omni-shop.dev`
    msgs.push({ type: 'identify', userId: `u${i}`, traits: { email, name: `Customer ${i}` }, context: { channel: 'web' } })
    if (i % 3 === 0) {
      msgs.push({ type: 'track', userId: `u${i}`, event: 'Order Completed', properties: { total: 10 + (i % 50), currency: 'EUR' }, context: { channel: channels[i % 3] } })
    }
    if (msgs.length >= batchSize) {
      await batch(url, writeKey, msgs)
      msgs = []
    }
  }
  if (msgs.length) await batch(url, writeKey, msgs)
}
