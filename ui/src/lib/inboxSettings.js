// The owners' inbox settings: one setting per key (general, hours, bot,
// assignment, sla, csat), each saved alone with PUT and checked by the
// server, which names a wrong field as "<key>.<path>" (e.g.
// "sla.targets.0.first_response"); the forms show that message on the field.
import { api, errorMessage, fieldErrors } from './api.js'

export const INBOX_CHANNELS = ['whatsapp', 'email', 'sms', 'chat']
export const PRIORITIES = ['none', 'low', 'medium', 'high', 'urgent']
export const DAYS = [
  ['mon', 'Monday'], ['tue', 'Tuesday'], ['wed', 'Wednesday'], ['thu', 'Thursday'],
  ['fri', 'Friday'], ['sat', 'Saturday'], ['sun', 'Sunday'],
]

export const loadSettings = () => api('/api/v1/inbox/settings')

// saveSetting PUTs one setting and returns the normalised value saved.
export const saveSetting = (key, value) => api('/api/v1/inbox/settings/' + key, { method: 'PUT', body: value })

// problems turns a failed save into {form, fields}: the sentence for the
// top of the form and each named field's message.
export function problems(err) {
  return { form: errorMessage(err), fields: fieldErrors(err) }
}

// items reads a list answer ({items: [...]} or a bare array).
export const items = (r) => (Array.isArray(r) ? r : r?.items || [])

export const clone = (v) => JSON.parse(JSON.stringify(v ?? {}))
