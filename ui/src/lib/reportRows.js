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

// distribution turns a count table (a score or name first, then counts)
// into bars: the first column labels, the counts are the column named
// responses, count or customers (else the first number column after the
// label), each with its share of the total.
export function distribution(report, name) {
  const t = table(report, name)
  if (!t) return []
  const keys = t.columns.map((c) => c.key)
  let valueAt = keys.findIndex((k, i) => i > 0 && ['responses', 'count', 'customers'].includes(k))
  if (valueAt < 0) valueAt = t.columns.findIndex((c, i) => i > 0 && c.type === 'number')
  if (valueAt < 0) return []
  const rows = t.rows || []
  const total = rows.reduce((a, r) => a + (Number(r[valueAt]) || 0), 0)
  return rows.map((r) => {
    const value = Number(r[valueAt]) || 0
    return { key: String(r[0]), label: String(r[0] ?? ''), value, share: total ? value / total : 0 }
  })
}
