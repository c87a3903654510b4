// Reading a report's tables (core/metrics Report) as plain objects.

// table returns the report's table of that name, or null.
export const table = (report, name) => report?.tables?.find((t) => t.name === name) || null

// tableObjects returns a table's rows as objects keyed by column key.
export function tableObjects(report, name) {
  const t = table(report, name)
  if (!t) return []
  return (t.rows || []).map((row) => Object.fromEntries(t.columns.map((c, i) => [c.key, row[i]])))
}

// columnType is the type of a table's column (text when unknown).
export const columnType = (report, name, key) => table(report, name)?.columns.find((c) => c.key === key)?.type || 'text'

// distribution turns a two-column table (a score or name, then a count)
// into bars: the first column labels, the first number column counts,
// each with its share of the total.
export function distribution(report, name) {
  const t = table(report, name)
  if (!t) return []
  const labelAt = Math.max(0, t.columns.findIndex((c) => c.type === 'text' || c.type === 'date'))
  const valueAt = t.columns.findIndex((c, i) => i !== labelAt && (c.type === 'number' || c.type === 'money'))
  if (valueAt < 0) return []
  const rows = t.rows || []
  const total = rows.reduce((a, r) => a + (Number(r[valueAt]) || 0), 0)
  return rows.map((r) => {
    const value = Number(r[valueAt]) || 0
    return { key: String(r[labelAt]), label: String(r[labelAt] ?? ''), value, share: total ? value / total : 0 }
  })
}
