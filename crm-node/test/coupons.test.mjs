// Coupons over the camelCase API: issue (and for points), redeem with its
// conditions and idempotency by order, revoke, the checkout quote, batch issue
// to a segment, the code helpers; Promise and …Sync variants and typed errors.
// The rules live in crm-core; this checks the conversions.

import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { test } from 'node:test'

const require = createRequire(import.meta.url)
const { Engine, Program, generateCouponCodes, checkCouponCode } = require('..')

const doc = {
  version: 1,
  name: 'Coupons',
  timezone: 'Asia/Shanghai',
  currency: 'CNY',
  value_per_point: '0.01',
  point_types: [{ id: 'reward' }],
  earn: { rules: [{ id: 'base', point_type: 'reward', points_per_unit: '10' }] },
  coupons: {
    return_on_refund: true,
    templates: [
      {
        id: 'ten_off',
        benefit: { type: 'fixed_amount', amount: '10' },
        min_spend: '50',
        validity: { type: 'days_from_issue', days: 7 },
        points_price: { point_type: 'reward', points: 500 },
      },
      {
        id: 'pct',
        benefit: { type: 'percentage', percent: '15', cap: '20' },
        validity: { type: 'fixed', from: '2024-03-01', until: '2024-03-31' },
        channels: ['app'],
      },
    ],
  },
}

const t = (day, hour = 0) => `2024-03-${String(day).padStart(2, '0')}T${String(hour).padStart(2, '0')}:00:00Z`

function engine() {
  const e = Engine.inMemory(Program.fromObject(doc))
  e.createMemberSync('ann', { now: t(1) })
  return e
}

function order(e, id, amount, at, extra = {}) {
  e.recordOrderSync({ id, memberId: 'ann', amount, placedAt: at, ...extra }, { now: at })
}

test('issue, redeem (idempotent by order) and list', async () => {
  const e = engine()
  order(e, 'o1', '120.00', t(1, 2))
  const issued = await e.issueCoupon('ann', 'ten_off', { now: t(1, 3) })
  assert.equal(issued.type, 'coupon_issued')
  assert.equal(issued.expiresAt, '2024-03-08T16:00:00Z')
  const typed = `${issued.code.slice(0, 4)}-${issued.code.slice(4)}`.toLowerCase()
  const used = await e.redeemCoupon('ann', typed, 'o1', { now: t(1, 4) })
  assert.deepEqual(
    [used.type, used.discount, used.cost, used.orderId],
    ['coupon_redeemed', '10', '10', 'o1'],
  )
  assert.deepEqual(e.redeemCouponSync('ann', issued.code, 'o1', { now: t(2), idempotencyKey: 'again' }), used)
  const list = await e.coupons('ann', { now: t(2) })
  assert.deepEqual(
    list.map((c) => [c.code, c.status, c.redeemed.orderId]),
    [[issued.code, 'redeemed', 'o1']],
  )
})

test('conditions and bad input throw errors with a code and a field', async () => {
  const e = engine()
  order(e, 'small', '40', t(1, 2))
  const { code } = e.issueCouponSync('ann', 'ten_off', { now: t(1, 3) })
  await assert.rejects(e.redeemCoupon('ann', code, 'small', { now: t(1, 4) }), (err) => {
    assert.equal(err.code, 'validation_error')
    assert.equal(err.field, 'order_id')
    assert.match(err.message, /needs a spend of 50/)
    return true
  })
  assert.throws(() => e.issueCouponSync('ann', 'nope', { now: t(1, 4) }), { code: 'validation_error', field: 'template' })
  assert.throws(() => e.redeemCouponSync('ann', 'AAAA', 'small', { now: t(1, 4) }), { field: 'code' })
  assert.throws(() => e.issueCouponSync('ann', 'ten_off', {}), { field: 'now' })
})

test('exchange for points is atomic and revoking gives the points back', async () => {
  const e = engine()
  order(e, 'o1', '40', t(1, 2))
  await assert.rejects(e.issueCoupon('ann', 'ten_off', { now: t(1, 3), forPoints: true }), {
    code: 'insufficient_points',
  })
  order(e, 'o2', '30', t(1, 4))
  const issued = e.issueCouponSync('ann', 'ten_off', { now: t(1, 5), forPoints: true, idempotencyKey: 'swap' })
  assert.equal(issued.points, 500)
  assert.deepEqual(e.issueCouponSync('ann', 'ten_off', { now: t(1, 6), forPoints: true, idempotencyKey: 'swap' }), issued)
  assert.equal(e.balanceSync('ann', 'reward', { at: t(1, 7) }).available, 200)
  const revoked = await e.revokeCoupon('ann', issued.code, { now: t(1, 8), reason: 'changed mind' })
  assert.deepEqual([revoked.type, revoked.points], ['coupon_revoked', 500])
  assert.equal(e.balanceSync('ann', 'reward', { at: t(1, 9) }).available, 700)
})

test('quote ranks coupons and caps points', async () => {
  const e = engine()
  order(e, 'o1', '300', t(1, 2))
  const ten = e.issueCouponSync('ann', 'ten_off', { now: t(1, 3) }).code
  const pct = e.issueCouponSync('ann', 'pct', { now: t(1, 3) }).code
  const q = await e.quote('ann', { amount: '100.00', channel: 'app' }, { now: t(1, 4) })
  assert.equal(q.best, pct)
  assert.deepEqual(
    q.coupons.map((c) => [c.code, c.discount]),
    [
      [pct, '15.00'],
      [ten, '10'],
    ],
  )
  assert.equal(q.amountAfterCoupon, '85.00')
  assert.deepEqual(q.points, { pointType: 'reward', available: 3000, maxPoints: 3000, value: '30.00' })
  const none = e.quoteSync('ann', { amount: 30, channel: 'web' }, { now: t(1, 4) })
  assert.equal(none.best, null)
  assert.equal(none.notApplicable.length, 2)
})

test('batch issue to a segment issues nothing twice', async () => {
  const e = engine()
  for (const [m, amount] of [
    ['ann', '100'],
    ['bob', '5'],
    ['cy', '200'],
  ]) {
    e.recordOrderSync({ id: `o-${m}`, memberId: m, amount, placedAt: t(1, 2) }, { now: t(1, 2) })
  }
  const first = await e.issueCouponsToSegment('spring', 'spend(365d) > 50', 'ten_off', { now: t(1, 3) })
  assert.deepEqual(
    first.issued.map(([m]) => m),
    ['ann', 'cy'],
  )
  assert.deepEqual(e.issueCouponsToSegmentSync('spring', 'spend(365d) > 50', 'ten_off', { now: t(1, 4) }), first)
})

test('stock and budget over all members', async () => {
  const stocked = { ...doc, coupons: { templates: [{ ...doc.coupons.templates[0], total_limit: 2, budget: '15' }] } }
  const e = Engine.inMemory(Program.fromObject(stocked))
  for (const m of ['ann', 'bob', 'cy']) e.createMemberSync(m, { now: t(1) })
  // 10.00 each within 15.00: the second is over budget before the stock of 2 runs out.
  const batch = await e.issueCouponsToSegment('all', 'orders(365d) = 0', 'ten_off', { now: t(1, 3) })
  assert.deepEqual(
    batch.issued.map(([m]) => m),
    ['ann'],
  )
  assert.equal(batch.exhausted, true)
  const usage = await e.couponUsage('ten_off')
  assert.equal(usage.issued, 1)
  assert.equal(usage.remaining, 1)
  assert.equal(usage.totalLimit, 2)
  assert.equal(Number(usage.committed), 10)
  assert.equal(Number(usage.budgetRemaining), 5)
  assert.throws(() => e.issueCouponSync('bob', 'ten_off', { now: t(1, 4) }), {
    code: 'validation_error',
    field: 'template',
  })
  assert.throws(() => e.couponUsageSync('nope'), { code: 'validation_error', field: 'template' })
})

test('code helpers', () => {
  const codes = generateCouponCodes(1000)
  assert.equal(new Set(codes).size, 1000)
  assert.ok(codes.every((c) => c.length === 13 && !/[01OIL]/.test(c)))
  assert.equal(checkCouponCode(codes[0].toLowerCase()), codes[0])
  assert.throws(() => checkCouponCode('AAAA'), { code: 'validation_error', field: 'code' })
})
