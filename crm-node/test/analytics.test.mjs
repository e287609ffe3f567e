// Analytics (RFM, customer summaries, BG/NBD, Gamma-Gamma, CLV) and segment
// rules (Rule) through the Node bindings: small hand-computed examples, the
// published CDNOW parameters, and bad input with stable error codes.

import assert from 'node:assert/strict'
import { existsSync, readFileSync, realpathSync } from 'node:fs'
import { createRequire } from 'node:module'
import { describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
const {
  Rule,
  aliveUntil,
  clv,
  expectedPurchases,
  fitBgNbd,
  fitGammaGamma,
  isCrmError,
  pAlive,
  rfm,
  summary,
} = require('..')

// /work/main/crm-node/test -> /work/shared/data (outside the repository).
const dataDir = new URL('../../../shared/data/', import.meta.url)

/** Assert `fn` throws a CrmError with `code` (and `field` when given); returns it. */
function throwsCrm(fn, code, field) {
  let caught
  try {
    fn()
  } catch (e) {
    caught = e
  }
  assert.ok(caught, 'expected an error')
  assert.ok(isCrmError(caught), `expected a CrmError, got ${caught}`)
  assert.equal(caught.code, code, caught.message)
  if (field !== undefined) assert.equal(caught.field, field, caught.message)
  return caught
}

/** Relative difference within `tol`. */
function near(actual, expected, tol, what) {
  assert.ok(Math.abs(actual - expected) <= tol * Math.abs(expected), `${what}: ${actual} vs ${expected}`)
}

/** A numeric CSV as columns keyed by header name. */
function readCsv(name) {
  const [header, ...lines] = readFileSync(new URL(name, dataDir), 'utf8').trim().split(/\r?\n/)
  const names = header.split(',')
  const cols = Object.fromEntries(names.map((n) => [n, []]))
  for (const line of lines) line.split(',').forEach((v, i) => cols[names[i]].push(Number(v)))
  return cols
}

// ---------------------------------------------------------------------------
// RFM

// As of 2024-06-30 (the end of that UTC day). Ids are integers, so rows sort
// numerically: 2, 7, 9, 10, 100.
//   id   recency  frequency  monetary   R (1+#larger)  F (1+#smaller)  M (1+#smaller)  group
//   10      0        2        15.00      5              4               2 (tie)        champions
//   9      30        1       100.00      3 (tie)        1 (tie)         5              about_to_sleep
//   100    30        3        50.00      3 (tie)        5               4              loyal
//   2      90        1        15.00      2              1 (tie)         2 (tie)        hibernating
//   7     395        1         1.50      1              1 (tie)         1              lost
//   8     (only an order after the as-of day: no row)
const ORDERS = [
  { memberId: '10', placedAt: '2024-06-30T23:59:00Z', amount: '10.00' },
  { memberId: '10', placedAt: new Date('2024-06-01T08:00:00Z'), amount: 5 },
  { memberId: '9', placedAt: '2024-05-31', amount: '100' },
  { memberId: '100', placedAt: '2024-05-31T12:00:00+08:00', amount: 20 },
  { memberId: '100', placedAt: '2024-05-01T00:00:00Z', amount: '20.0' },
  { memberId: '100', placedAt: '2024-04-01T00:00:00Z', amount: 10 },
  { memberId: '2', placedAt: '2024-04-01T10:00:00Z', amount: '15.00' },
  { memberId: '7', placedAt: '2023-06-01T10:00:00Z', amount: 1.5 },
  { memberId: '8', placedAt: '2024-07-01T00:00:00Z', amount: '99.00' },
]

const EXPECTED = [
  { memberId: '2', recency: 90, frequency: 1, monetary: '15.00', rScore: 2, fScore: 1, mScore: 2, group: 'hibernating' },
  { memberId: '7', recency: 395, frequency: 1, monetary: '1.50', rScore: 1, fScore: 1, mScore: 1, group: 'lost' },
  { memberId: '9', recency: 30, frequency: 1, monetary: '100.00', rScore: 3, fScore: 1, mScore: 5, group: 'about_to_sleep' },
  { memberId: '10', recency: 0, frequency: 2, monetary: '15.00', rScore: 5, fScore: 4, mScore: 2, group: 'champions' },
  { memberId: '100', recency: 30, frequency: 3, monetary: '50.00', rScore: 3, fScore: 5, mScore: 4, group: 'loyal' },
]

/** Rows as columns (the fast path). */
const columnsOf = (rows) => ({
  memberId: rows.map((o) => o.memberId),
  placedAt: rows.map((o) => o.placedAt),
  amount: rows.map((o) => o.amount),
})

describe('rfm', () => {
  test('hand-computed scores with ties, sorted by member id in natural order', () => {
    assert.deepEqual(rfm(ORDERS, '2024-06-30'), EXPECTED)
  })

  test('columns give the same rows as objects', () => {
    assert.deepEqual(rfm(columnsOf(ORDERS), '2024-06-30'), EXPECTED)
    assert.deepEqual(rfm(columnsOf(ORDERS), new Date('2024-06-30T23:59:59.999Z')), EXPECTED)
  })

  test('an instant as-of counts orders up to that second only', () => {
    const rows = rfm(ORDERS, '2024-06-30T12:00:00Z')
    const m10 = rows.find((r) => r.memberId === '10')
    assert.equal(m10.frequency, 1)
    assert.equal(m10.monetary, '5.00')
    assert.equal(m10.recency, 29)
  })

  test('clusters are reproducible for a seed and numbered by value', () => {
    const a = rfm(ORDERS, '2024-06-30', { clusters: 2, seed: 7 })
    const b = rfm(columnsOf(ORDERS), '2024-06-30', { clusters: 2, seed: 7 })
    assert.deepEqual(a, b)
    assert.ok(a.every((r) => r.cluster === 0 || r.cluster === 1))
    // The champion is in the most valuable cluster, the lost member in the other.
    assert.equal(a.find((r) => r.memberId === '10').cluster, 0)
    assert.equal(a.find((r) => r.memberId === '7').cluster, 1)
    assert.ok(!('cluster' in rfm(ORDERS, '2024-06-30')[0]))
  })

  test('other scales and text ids', () => {
    const rows = rfm(
      [
        { memberId: 'b', placedAt: '2024-01-01', amount: '1.005' },
        { memberId: 'a', placedAt: '2024-01-02', amount: 2 },
      ],
      '2024-01-02',
      { scale: 3 },
    )
    assert.deepEqual(
      rows.map((r) => [r.memberId, r.monetary, r.recency]),
      [
        ['a', '2.000', 0],
        ['b', '1.005', 1],
      ],
    )
  })

  test('bad input: stable codes and field paths', () => {
    const one = (patch) => [{ memberId: 'a', placedAt: '2024-01-01', amount: '1.00', ...patch }]
    throwsCrm(() => rfm(one({ amount: '12.345' }), '2024-06-30'), 'validation_error', 'orders[0].amount')
    throwsCrm(() => rfm(one({ amount: 0.1 + 0.2 }), '2024-06-30'), 'validation_error', 'orders[0].amount')
    throwsCrm(() => rfm(one({ amount: 'ten' }), '2024-06-30'), 'validation_error', 'orders[0].amount')
    throwsCrm(() => rfm(one({ amount: true }), '2024-06-30'), 'validation_error', 'orders[0].amount')
    throwsCrm(() => rfm(one({ memberId: 7 }), '2024-06-30'), 'validation_error', 'orders[0].member_id')
    throwsCrm(() => rfm(one({ placedAt: 'yesterday' }), '2024-06-30'), 'validation_error', 'orders[0].placed_at')
    throwsCrm(() => rfm(one({ placedAt: undefined }), '2024-06-30'), 'validation_error', 'orders[0].placed_at')
    throwsCrm(() => rfm(one({ placedAt: new Date(NaN) }), '2024-06-30'), 'validation_error', 'orders[0].placed_at')
    throwsCrm(() => rfm(one({}), 'soon'), 'validation_error', 'as_of')
    throwsCrm(() => rfm('orders', '2024-06-30'), 'validation_error', 'orders')
    throwsCrm(() => rfm([42], '2024-06-30'), 'validation_error', 'orders[0]')
    const cols = columnsOf(ORDERS)
    throwsCrm(() => rfm({ ...cols, amount: cols.amount.slice(1) }, '2024-06-30'), 'validation_error', 'orders.amount')
    throwsCrm(() => rfm({ ...cols, placedAt: undefined }, '2024-06-30'), 'validation_error', 'orders.placed_at')
    throwsCrm(
      () => rfm({ ...cols, placedAt: cols.placedAt.map((p, i) => (i === 3 ? 'nope' : p)) }, '2024-06-30'),
      'validation_error',
      'orders.placed_at[3]',
    )
    throwsCrm(() => rfm(ORDERS, '2024-06-30', { clusters: 0 }), 'validation_error', 'clusters')
    throwsCrm(() => rfm(ORDERS, '2024-06-30', { clusters: 9 }), 'validation_error', 'clusters')
    throwsCrm(() => rfm(ORDERS, '2024-06-30', { scale: 1.5 }), 'validation_error', 'scale')
    throwsCrm(() => rfm(ORDERS, '2024-06-30', 'fast'), 'validation_error', 'options')
  })

  test('no orders: no rows', () => {
    assert.deepEqual(rfm([], '2024-06-30'), [])
    assert.deepEqual(rfm({ memberId: [], placedAt: [], amount: [] }, '2024-06-30'), [])
  })
})

// ---------------------------------------------------------------------------
// Summaries and the value models

describe('summary', () => {
  // Member a: Jan 1 (two orders, one purchase day), Jan 15 (20), Jan 29 (30); the
  // Feb 13 order is after the calibration end. Member b: one order on Feb 1.
  const orders = [
    { memberId: 'b', placedAt: '2024-02-01T09:00:00Z', amount: '8.00' },
    { memberId: 'a', placedAt: '2024-01-01T09:00:00Z', amount: '10.00' },
    { memberId: 'a', placedAt: '2024-01-01T18:00:00Z', amount: '5.00' },
    { memberId: 'a', placedAt: '2024-01-15T09:00:00Z', amount: '20.00' },
    { memberId: 'a', placedAt: '2024-01-29T09:00:00Z', amount: '30.00' },
    { memberId: 'a', placedAt: '2024-02-13T09:00:00Z', amount: '99.00' },
  ]

  test('days and weeks', () => {
    assert.deepEqual(summary(orders, '2024-02-12'), [
      { memberId: 'a', frequency: 2, recency: 28, T: 42, monetaryValue: 25 },
      { memberId: 'b', frequency: 0, recency: 0, T: 11, monetaryValue: 0 },
    ])
    assert.deepEqual(summary(columnsOf(orders), '2024-02-12', { period: 'week' }), [
      { memberId: 'a', frequency: 2, recency: 4, T: 6, monetaryValue: 25 },
      { memberId: 'b', frequency: 0, recency: 0, T: 11 / 7, monetaryValue: 0 },
    ])
  })

  test('bad input', () => {
    throwsCrm(() => summary(orders, '2024-02-12', { period: 'month' }), 'validation_error', 'period')
    throwsCrm(() => summary(orders, 'later'), 'validation_error', 'calibration_end')
    throwsCrm(() => summary(orders, '2023-01-01'), 'validation_error', 'orders')
  })
})

describe('BG/NBD and Gamma-Gamma on CDNOW', () => {
  test('the data folder is /work/shared/data', () => {
    assert.ok(existsSync(dataDir), `${fileURLToPath(dataDir)} exists`)
    assert.match(realpathSync(fileURLToPath(dataDir)), /\/shared\/data$/)
  })

  const s = readCsv('cdnow_customers_summary.csv')
  const columns = { frequency: s.frequency, recency: s.recency, T: s.T }
  const bg = fitBgNbd(columns)

  test('BG/NBD matches the published parameters within 0.5 %', () => {
    assert.equal(s.frequency.length, 2357)
    near(bg.r, 0.243, 0.005, 'r')
    near(bg.alpha, 4.414, 0.005, 'alpha')
    near(bg.a, 0.793, 0.005, 'a')
    near(bg.b, 2.426, 0.005, 'b')
    assert.ok(bg.converged)
    assert.ok(bg.logLikelihood < 0 && Number.isFinite(bg.logLikelihood))
  })

  test('rows, columns and typed arrays fit the same model', () => {
    const rows = s.frequency.map((f, i) => ({ frequency: f, recency: s.recency[i], T: s.T[i] }))
    assert.deepEqual(fitBgNbd(rows), bg)
    const typed = { frequency: Float64Array.from(s.frequency), recency: Float64Array.from(s.recency), T: Float64Array.from(s.T) }
    assert.deepEqual(fitBgNbd(typed), bg)
  })

  test('pAlive and expectedPurchases', () => {
    assert.equal(pAlive(bg, 0, 0, 38.86), 1)
    // 1 / (1 + a/(b+x-1) · ((α+T)/(α+t_x))^(r+x))
    const [x, tx, T] = [2, 30.43, 38.86]
    const odds = (bg.a / (bg.b + x - 1)) * ((bg.alpha + T) / (bg.alpha + tx)) ** (bg.r + x)
    near(pAlive(bg, x, tx, T), 1 / (1 + odds), 1e-12, 'pAlive')
    assert.ok(pAlive(bg, 5, 5, 38) < pAlive(bg, 5, 37, 38))
    // A customer without history is a new customer.
    near(expectedPurchases(bg, 10, 0, 0, 0), expectedPurchases(bg, 10), 1e-12, 'E[Y(10)]')
    const e = expectedPurchases(bg, 39, 2, 30.43, 38.86)
    assert.ok(e > 0 && e < 10, `${e}`)
  })

  test('aliveUntil inverts pAlive', () => {
    const T = aliveUntil(bg, 2, 10, 0.3)
    assert.ok(T > 10, `${T}`)
    near(pAlive(bg, 2, 10, T), 0.3, 1e-9, 'pAlive at aliveUntil')
    // No repeat purchase: the model never lets go.
    assert.equal(aliveUntil(bg, 0, 0, 0.3), null)
    throwsCrm(() => aliveUntil(bg, 2, 10, 1), 'validation_error', 'p')
    throwsCrm(() => aliveUntil(bg, 1.5, 10, 0.3), 'validation_error', 'frequency')
  })

  const t = readCsv('cdnow_customers_summary_with_transactions.csv')
  const spend = { frequency: t.x, recency: t.t_x, T: t.T, monetaryValue: t.zbar }
  const gg = fitGammaGamma(spend)

  test('Gamma-Gamma matches the published parameters within 0.5 %', () => {
    near(gg.p, 6.25, 0.005, 'p')
    near(gg.q, 3.74, 0.005, 'q')
    near(gg.gamma, 15.44, 0.005, 'gamma')
    assert.ok(gg.converged)
  })

  test('clv: the documented formula, one customer', () => {
    const values = clv(bg, gg, spend, { period: 'week', months: 12, discountRate: 0.01, margin: 0.5 })
    assert.equal(values.length, t.x.length)
    assert.ok(values.every(Number.isFinite))
    const i = t.x.findIndex((x) => x >= 2)
    const [x, tx, T, z] = [t.x[i], t.t_x[i], t.T[i], t.zbar[i]]
    const value = (gg.p * (gg.gamma + x * z)) / (gg.p * x + gg.q - 1)
    const f = 365.25 / 12 / 7
    let total = 0
    let before = 0
    for (let m = 1; m <= 12; m++) {
      const upto = expectedPurchases(bg, m * f, x, tx, T)
      total += (upto - before) / 1.01 ** m
      before = upto
    }
    near(values[i], 0.5 * value * total, 1e-9, 'clv')
    assert.deepEqual(clv(bg, gg, spend, { period: 'week', months: 0 }).slice(0, 3), [0, 0, 0])
  })

  test('bad input', () => {
    throwsCrm(() => fitBgNbd({ frequency: [1], recency: [5], T: [4] }), 'validation_error', 'recency[0]')
    throwsCrm(() => fitBgNbd({ frequency: [1.5], recency: [1], T: [4] }), 'validation_error', 'frequency[0]')
    throwsCrm(() => fitBgNbd({ frequency: [1, 2], recency: [1], T: [4, 4] }), 'validation_error', 'summary.recency')
    throwsCrm(() => fitBgNbd({ frequency: [1], recency: ['1'], T: [4] }), 'validation_error', 'summary.recency[0]')
    throwsCrm(() => fitBgNbd([{ frequency: 1, recency: 1 }]), 'validation_error', 'summary[0].T')
    throwsCrm(() => fitBgNbd({ frequency: [], recency: [], T: [] }), 'validation_error', 'frequency')
    throwsCrm(() => fitBgNbd(null), 'validation_error', 'summary')
    throwsCrm(() => fitGammaGamma(columns), 'validation_error', 'summary[0].monetary_value')
    throwsCrm(() => pAlive({ ...bg, r: -1 }, 1, 1, 2), 'validation_error', 'params.r')
    throwsCrm(() => pAlive({ r: 1, alpha: 1, a: 1 }, 1, 1, 2), 'validation_error', 'params.b')
    throwsCrm(() => pAlive(bg, 1, 3, 2), 'validation_error', 'recency')
    throwsCrm(() => expectedPurchases(bg, 10, 1), 'validation_error', 'frequency')
    throwsCrm(() => expectedPurchases(bg, -1), 'validation_error', 't')
    throwsCrm(() => clv(bg, gg, spend, {}), 'validation_error', 'period')
    throwsCrm(() => clv(bg, gg, spend, { period: 'week', discountRate: -2 }), 'validation_error', 'discount_rate')
    throwsCrm(() => clv(bg, { p: 1, q: 1 }, spend, { period: 'week' }), 'validation_error', 'gamma_gamma.gamma')
  })
})

// ---------------------------------------------------------------------------
// Segment rules

describe('Rule', () => {
  const text = 'tier in ("gold", "platinum") and orders(90d) >= 2 and not tag("vip_manual")'
  const canonical = 'tier in ("gold", "platinum") and orders(90d) >= 2 and not tags contains "vip_manual"'

  test('parse, canonical text, fields', () => {
    const rule = Rule.parse(text)
    assert.ok(rule instanceof Rule)
    assert.equal(rule.toString(), canonical)
    assert.equal(`${rule}`, canonical)
    assert.deepEqual(rule.fields, ['tier', 'orders(90d)', 'tags'])
  })

  test('text -> JSON -> rule -> text round trip', () => {
    const rule = Rule.parse(text)
    const json = rule.toJson()
    assert.deepEqual(json, {
      and: [
        { field: 'tier', op: 'in', values: ['gold', 'platinum'] },
        { field: 'orders', window: '90d', op: '>=', value: 2 },
        { not: { field: 'tags', op: 'contains', value: 'vip_manual' } },
      ],
    })
    assert.equal(Rule.fromJson(json).toString(), canonical)
    assert.equal(Rule.fromJson(JSON.stringify(rule)).toString(), canonical)
    assert.deepEqual(JSON.parse(JSON.stringify(rule)), json)
    const money = Rule.fromJson({ field: 'spend', window: '365d', op: '>=', value: '500.00' })
    assert.equal(money.toString(), 'spend(365d) >= 500.00')
    assert.equal(Rule.parse(money.toString()).toString(), money.toString())
    const attr = Rule.fromJson({ field: 'balance', point_type: 'reward', op: '>', value: 1000 })
    assert.equal(attr.toString(), 'balance("reward") > 1000')
  })

  test('a syntax error points at the spot', () => {
    const e = throwsCrm(() => Rule.parse('tier == "gold" and\n  orders(90d) >= '), 'rule_error', null)
    assert.equal(e.name, 'CrmError')
    assert.equal(e.line, 2)
    assert.equal(e.column, 18)
    assert.equal(e.excerpt, '  orders(90d) >= \n                 ^')
    assert.match(e.message, /line 2, column 18: expected a value, found end of input/)
  })

  test('a type error names the field', () => {
    const e = throwsCrm(() => Rule.parse('tier == "gold" and spend(365d) >= "abc"'), 'rule_error', 'spend(365d)')
    assert.equal(e.line, 1)
    assert.equal(e.column, 20)
    assert.equal(e.excerpt, 'tier == "gold" and spend(365d) >= "abc"\n                   ^')
    assert.match(e.message, /field `spend\(365d\)` is money, got text "abc"/)
  })

  test('JSON errors carry the path', () => {
    const e = throwsCrm(
      () => Rule.fromJson({ and: [{ field: 'tier', op: '==', value: 'gold' }, { field: 'orders', window: '90d', op: 'like', value: 1 }] }),
      'rule_error',
    )
    assert.equal(e.line, 0)
    assert.equal(e.column, 0)
    assert.match(e.excerpt, /^and\[1\]/)
    const t = throwsCrm(() => Rule.fromJson({ field: 'spend', window: '365d', op: '>=', value: 'abc' }), 'rule_error', 'spend(365d)')
    assert.equal(t.line, 0)
    throwsCrm(() => Rule.fromJson('{"and": ['), 'rule_error')
    throwsCrm(() => Rule.fromJson(42), 'validation_error', 'json')
    throwsCrm(() => Rule.parse(42), 'validation_error', 'text')
  })

  test('matches one member', () => {
    const rule = Rule.parse(text)
    assert.equal(rule.matches({ tier: 'gold', 'orders(90d)': 3, tags: [] }), true)
    assert.equal(rule.matches({ tier: 'gold', 'orders(90d)': 3, tags: ['vip_manual'] }), false)
    assert.equal(rule.matches({ tier: 'silver', 'orders(90d)': 9, tags: [] }), false)
    // Missing values make their clauses false (and `not` is the complement).
    assert.equal(rule.matches({ tier: 'gold', 'orders(90d)': 3 }), true)
    assert.equal(rule.matches({ tier: 'gold', 'orders(90d)': null }), false)
    const spend = Rule.parse('spend(365d) between 100 and 500.50 and birthday < 2000-01-01')
    assert.equal(spend.matches({ 'spend(365d)': '500.50', birthday: '1990-05-01' }), true)
    assert.equal(spend.matches({ 'spend(365d)': 500.51, birthday: new Date('1990-05-01T00:00:00Z') }), false)
    const ladder = Rule.parse('tier >= "gold"')
    assert.equal(ladder.matches({ tier: 'platinum' }), false)
    assert.equal(ladder.matches({ tier: 'platinum' }, { tierLadder: ['silver', 'gold', 'platinum'] }), true)
    assert.equal(Rule.parse('attr.vip_code exists').matches({ 'attr.vip_code': { level: 2 } }), true)
  })

  test('mistyped values are errors naming the field', () => {
    const rule = Rule.parse(text)
    throwsCrm(() => rule.matches({ tier: 'gold', 'orders(90d)': '3' }), 'validation_error', 'values.orders(90d)')
    throwsCrm(() => rule.matches({ tier: 'gold', 'orders(90d)': 1.5 }), 'validation_error', 'values.orders(90d)')
    throwsCrm(() => rule.matches({ tier: 'gold', tags: 'vip' }), 'validation_error', 'values.tags')
    throwsCrm(() => rule.matches('gold'), 'validation_error', 'values')
  })

  test('evaluate over columns', () => {
    const rule = Rule.parse(text)
    const bits = rule.evaluate({
      tier: ['gold', 'silver', 'platinum', null, 'gold'],
      'orders(90d)': [3, 9, 2, 5, 1],
      tags: [[], [], ['vip_manual'], [], null],
      unused: ['ignored'],
    })
    assert.ok(bits instanceof Uint8Array)
    assert.deepEqual([...bits], [1, 0, 0, 0, 0])
    const typed = rule.evaluate({
      tier: ['gold', 'gold'],
      'orders(90d)': Int32Array.from([2, 1]),
      tags: [['a'], []],
    })
    assert.deepEqual(Array.from(typed, Boolean), [true, false])
    const money = Rule.parse('spend(365d) >= 100 and tier >= "gold"')
    assert.deepEqual(
      [...money.evaluate({ 'spend(365d)': ['100.00', 99.99, '250', null], tier: ['gold', 'platinum', 'silver', 'gold'] }, { tierLadder: ['silver', 'gold', 'platinum'] })],
      [1, 0, 0, 0],
    )
    assert.deepEqual([...rule.evaluate({ tier: [], 'orders(90d)': [], tags: [] })], [])
  })

  test('evaluate: one value per member, and a column per field', () => {
    const rule = Rule.parse(text)
    throwsCrm(() => rule.evaluate({ tier: ['gold'], 'orders(90d)': [1, 2], tags: [[], []] }), 'validation_error', 'columns.orders(90d)')
    throwsCrm(() => rule.evaluate({ tier: ['gold'], 'orders(90d)': [1] }), 'validation_error', 'columns.tags')
    throwsCrm(() => rule.evaluate({ tier: ['gold'], 'orders(90d)': ['x'], tags: [[]] }), 'validation_error', 'columns.orders(90d)[0]')
    throwsCrm(() => rule.evaluate({ tier: 'gold', 'orders(90d)': [1], tags: [[]] }), 'validation_error', 'columns.tier')
  })
})
