// What the segment builder suggests for a property condition: only
// properties that give an answer. lifetime_value_base needs a base
// currency (omni.yaml, or the shop's currency once a connector reported an
// order); until then it is left out rather than silently 0.
import { api } from './api.js'
import { BUYING_STAGES } from './format.js'

export const baseCurrency = $state({ code: '', origin: '', note: '', loaded: false })

let asked = false
export function loadBaseCurrency() {
  if (asked) return
  asked = true
  api('/api/v1/profiles/currency')
    .then((b) => Object.assign(baseCurrency, b, { loaded: true }))
    .catch(() => (asked = false))
}

export function traitSuggestions() {
  const base = baseCurrency.code
  return [
    { id: 'buying_stage', label: 'Buying stage', hint: Object.values(BUYING_STAGES).map((s) => s.label).join(' → ') },
    { id: 'orders_count', label: 'Orders', hint: 'number of orders' },
    ...(base
      ? [
          { id: 'lifetime_value_base', label: `Lifetime value (${base})`, hint: `all orders added up in ${base}` },
          { id: 'average_order_value_base', label: `Average order (${base})`, hint: `in ${base}` },
        ]
      : []),
    { id: 'last_order_at', label: 'Last order', hint: 'a date' },
    { id: 'engagement_level', label: 'Engagement', hint: 'highly_engaged, engaged, less_engaged, dormant' },
    { id: 'preferred_channel', label: 'Preferred channel', hint: 'where they last talked back: whatsapp, sms, email' },
    { id: 'channels', label: 'Channels', hint: 'web, app, email, sms, whatsapp, pos' },
    { id: 'first_seen', label: 'First seen', hint: 'a date' },
    { id: 'last_seen', label: 'Last seen', hint: 'a date' },
    { id: 'email', label: 'Email', hint: '' },
    { id: 'phone', label: 'Phone', hint: '' },
    { id: 'name', label: 'Name', hint: '' },
  ]
}

// A sentence under a condition on a property that needs explaining.
export function traitNote(trait) {
  if (trait === 'lifetime_value_base' || trait === 'average_order_value_base') {
    if (!baseCurrency.loaded) return ''
    if (!baseCurrency.code) return 'No base currency yet: set profiles.base_currency in omni.yaml, or connect your shop (its currency is used). Until then nobody matches.'
    return `Orders in other currencies are converted to ${baseCurrency.code} with profiles.exchange_rates${baseCurrency.origin === 'connector' ? ` (${baseCurrency.code} is ${baseCurrency.note || 'your shop’s currency'})` : ''}.`
  }
  if (trait === 'lifecycle_stage') return 'Older stage names (awareness, consideration, purchase, post_purchase, loyal); buying_stage uses the newer ones.'
  return ''
}
