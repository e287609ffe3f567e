// Bad input never crashes the process: every failure is an `Error` with
// `name === 'CrmError'`, a stable `code` and the core's `field` path, thrown by
// the …Sync methods and rejected by the Promise methods alike.

import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'

const require = createRequire(import.meta.url)
const { Engine, Program, isCrmError } = require('..')

const tmp = mkdtempSync(join(tmpdir(), 'crm-node-errors-'))
after(() => rmSync(tmp, { recursive: true, force: true }))

const now = '2024-03-01T10:00:00Z'
const CNY = {
  version: 1,
  name: 'Errors',
  timezone: 'Asia/Shanghai',
  currency: 'CNY',
  point_types: [{ id: 'reward' }],
  earn: { rules: [{ id: 'base', point_type: 'reward', points_per_unit: '1' }] },
}

function fresh() {
  const engine = Engine.inMemory(Program.fromObject(CNY))
  engine.createMemberSync('alice', { now })
  engine.recordOrderSync({ id: 'o1', memberId: 'alice', placedAt: now, amount: '100.00' }, { now })
  return engine
}

const order = (patch = {}) => ({ id: 'x1', memberId: 'alice', placedAt: now, amount: '10.00', ...patch })

/** Assert `fn` throws a CrmError with `code` (and `field` when given). */
function throwsCrm(fn, code, field) {
  let caught
  try {
    fn()
  } catch (e) {
    caught = e
  }
  assert.ok(caught !== undefined, `expected a ${code} error, got a result`)
  assertCrm(caught, code, field)
  return caught
}

function assertCrm(e, code, field) {
  assert.ok(e instanceof Error, `not an Error: ${e}`)
  assert.ok(isCrmError(e), `not a CrmError: ${e?.stack ?? e}`)
  assert.equal(e.name, 'CrmError')
  assert.equal(e.code, code, `code of: ${e.message}`)
  if (field !== undefined) assert.equal(e.field, field, `field of: ${e.message}`)
  assert.equal(typeof e.message, 'string')
  assert.ok(e.message.length > 0)
  assert.ok('field' in e)
}

async function rejectsCrm(promise, code, field) {
  assert.ok(promise instanceof Promise)
  let caught
  try {
    await promise
  } catch (e) {
    caught = e
  }
  assert.ok(caught !== undefined, `expected a ${code} rejection`)
  assertCrm(caught, code, field)
}

describe('money', () => {
  const e = fresh()
  const cases = [
    ['NaN', NaN],
    ['Infinity', Infinity],
    ['-Infinity', -Infinity],
  ]
  for (const [name, amount] of cases) {
    test(`${name} amount is rejected`, () => throwsCrm(() => e.recordOrderSync(order({ amount }), { now }), 'validation_error', 'order.amount'))
  }
  test('negative amounts (string and number)', () => {
    throwsCrm(() => e.recordOrderSync(order({ amount: '-5.00' }), { now }), 'validation_error', 'order.amount')
    throwsCrm(() => e.recordOrderSync(order({ amount: -5 }), { now }), 'validation_error', 'order.amount')
  })
  test('absurdly large amounts', () => {
    throwsCrm(() => e.recordOrderSync(order({ amount: '1000000000.01' }), { now }), 'validation_error', 'order.amount')
    throwsCrm(() => e.recordOrderSync(order({ amount: '99999999999999999999999999' }), { now }), 'validation_error', 'order.amount')
    throwsCrm(() => e.recordOrderSync(order({ amount: '79228162514264337593543950336' }), { now }), 'validation_error', 'order.amount')
    throwsCrm(() => e.recordOrderSync(order({ amount: 1e300 }), { now }), 'validation_error', 'order.amount')
    throwsCrm(() => e.recordOrderSync(order({ amount: Number.MAX_VALUE }), { now }), 'validation_error', 'order.amount')
  })
  test('non-exact float money is rejected, exact floats are accepted', () => {
    throwsCrm(() => e.recordOrderSync(order({ amount: 0.1 + 0.2 }), { now }), 'validation_error', 'order.amount')
    throwsCrm(() => e.recordOrderSync(order({ amount: 19.999 }), { now }), 'validation_error', 'order.amount')
    const item = { sku: 's', qty: 1, price: 1 / 3 }
    throwsCrm(() => e.recordOrderSync(order({ items: [item] }), { now }), 'validation_error', 'order.items[0].price')
    const ok = e.recordOrderSync(order({ id: 'exact', amount: 12.5 }), { now })
    assert.deepEqual(ok.earned, { reward: 12 })
    assert.equal(e.memberSync('alice').orders.exact.order.amount, '12.5')
  })
  test('malformed decimal strings', () => {
    for (const amount of ['', 'abc', '1e3', '1,5', '12.5.1', 'NaN', 'Infinity']) {
      throwsCrm(() => e.recordOrderSync(order({ amount }), { now }), 'validation_error', 'order.amount')
    }
    throwsCrm(() => e.recordOrderSync(order({ amount: '1.00001' }), { now }), 'validation_error', 'order.amount')
  })
  test('wrong types for money', () => {
    for (const amount of [true, {}, [], 10n, Symbol('x'), () => 1, null]) {
      throwsCrm(() => e.recordOrderSync(order({ amount }), { now }), 'validation_error', 'order.amount')
    }
  })
  test('nothing was recorded by the failures', () => {
    assert.deepEqual(Object.keys(e.memberSync('alice').orders).sort(), ['exact', 'o1'])
  })
})

describe('points and counts', () => {
  const e = fresh()
  const redeem = (points, extra = {}) => () =>
    e.redeemSync('alice', points, { now, idempotencyKey: `r-${String(points)}`, pointType: 'reward', ...extra })
  test('non-integer, non-finite, unsafe and wrongly typed points', () => {
    throwsCrm(redeem(1.5), 'validation_error', 'points')
    throwsCrm(redeem(NaN), 'validation_error', 'points')
    throwsCrm(redeem(Infinity), 'validation_error', 'points')
    throwsCrm(redeem(2 ** 60), 'validation_error', 'points')
    throwsCrm(redeem('5'), 'validation_error', 'points')
    throwsCrm(redeem(5n), 'validation_error', 'points')
    throwsCrm(redeem(undefined), 'validation_error', 'points')
  })
  test('negative and zero points', () => {
    throwsCrm(redeem(-5), 'validation_error', 'points')
    throwsCrm(redeem(0), 'validation_error', 'points')
  })
  test('more points than available', () => {
    const err = throwsCrm(redeem(1000), 'insufficient_points', null)
    assert.match(err.message, /requested 1000, available 100/)
  })
  test('unknown point type', () => throwsCrm(redeem(5, { pointType: 'gold' }), 'validation_error', 'point_type'))
  test('missing idempotency key for a redemption', () => {
    throwsCrm(() => e.redeemSync('alice', 5, { now, pointType: 'reward' }), 'validation_error', 'idempotency_key')
  })
  test('adjust needs reason and actor', () => {
    throwsCrm(() => e.adjustSync('alice', 5, { now, idempotencyKey: 'a1', pointType: 'reward', actor: 'ops' }), 'validation_error', 'reason')
    throwsCrm(() => e.adjustSync('alice', 5.5, { now, idempotencyKey: 'a1', pointType: 'reward', reason: 'r', actor: 'ops' }), 'validation_error', 'delta')
  })
  test('statement paging bounds', () => {
    throwsCrm(() => e.statementSync('alice', 'reward', { offset: -1 }), 'validation_error', 'offset')
    throwsCrm(() => e.statementSync('alice', 'reward', { limit: 1.5 }), 'validation_error', 'limit')
    throwsCrm(() => e.expiringSync('alice', 'reward', { days: -3 }), 'validation_error', 'days')
  })
  test('balance still intact', () => assert.deepEqual(e.balanceSync('alice', 'reward', { at: now }), { available: 100, pending: 0, debt: 0 }))
})

describe('unknown entities', () => {
  const e = fresh()
  test('unknown member in queries', () => {
    throwsCrm(() => e.memberSync('ghost'), 'not_found', null)
    throwsCrm(() => e.balanceSync('ghost', 'reward'), 'not_found', null)
    throwsCrm(() => e.lotsSync('ghost'), 'not_found', null)
    throwsCrm(() => e.statementSync('ghost', 'reward'), 'not_found', null)
  })
  test('unknown member in commands', () => {
    throwsCrm(() => e.redeemSync('ghost', 1, { now, idempotencyKey: 'g1', pointType: 'reward' }), 'not_found', null)
    throwsCrm(() => e.addTagSync('ghost', 'vip', { now }), 'not_found')
    throwsCrm(() => e.mergeSync('alice', 'ghost', { now }), 'not_found')
  })
  test('unknown order', () => {
    throwsCrm(() => e.setOrderStatusSync('nope', 'cancelled', { now }), 'not_found', null)
    const refund = { id: 'rf', orderId: 'nope', at: now, scope: { type: 'full' } }
    throwsCrm(() => e.recordRefundSync(refund, { now }), 'not_found', null)
  })
  test('find by an unknown identity is null, not an error', () => {
    assert.equal(e.findByIdentitySync('wechat', 'nobody'), null)
  })
})

describe('times', () => {
  const e = fresh()
  test('now is required for commands', () => {
    throwsCrm(() => e.recordOrderSync(order(), {}), 'validation_error', 'now')
    throwsCrm(() => e.recordOrderSync(order()), 'validation_error', 'now')
  })
  test('invalid dates', () => {
    throwsCrm(() => e.recordOrderSync(order(), { now: 'yesterday' }), 'validation_error', 'now')
    throwsCrm(() => e.recordOrderSync(order(), { now: new Date('not a date') }), 'validation_error', 'now')
    throwsCrm(() => e.recordOrderSync(order(), { now: 1709287200000 }), 'validation_error', 'now')
    throwsCrm(() => e.recordOrderSync(order(), { now: '2024-02-30T00:00:00Z' }), 'validation_error', 'now')
    throwsCrm(() => e.recordOrderSync(order({ placedAt: 'soon' }), { now }), 'validation_error', 'order.placed_at')
    throwsCrm(() => e.balanceSync('alice', 'reward', { at: {} }), 'validation_error', 'at')
  })
  test('naive date-times (no offset) are rejected, not guessed', () => {
    throwsCrm(() => e.recordOrderSync(order(), { now: '2024-03-01T10:00:00' }), 'validation_error', 'now')
    throwsCrm(() => e.recordOrderSync(order({ placedAt: '2024-03-01 10:00' }), { now }), 'validation_error', 'order.placed_at')
  })
  test('Date objects and offset strings are the same instant', () => {
    const a = e.recordOrderSync(order({ id: 'd1', placedAt: new Date(now) }), { now: new Date(now) })
    const b = e.recordOrderSync(order({ id: 'd2', placedAt: '2024-03-01T18:00:00+08:00' }), { now })
    assert.deepEqual(a.earned, b.earned)
    const m = e.memberSync('alice')
    assert.equal(m.orders.d1.order.placedAt, m.orders.d2.order.placedAt)
  })
})

describe('wrong argument types and shapes', () => {
  const e = fresh()
  test('ids must be strings', () => {
    throwsCrm(() => e.memberSync(5), 'validation_error', 'member_id')
    throwsCrm(() => e.memberSync(), 'validation_error', 'member_id')
    throwsCrm(() => e.createMemberSync({ id: 'x' }, { now }), 'validation_error', 'member_id')
    throwsCrm(() => e.createMemberSync('', { now }), 'validation_error')
  })
  test('orders must be objects with known fields', () => {
    throwsCrm(() => e.recordOrderSync(42, { now }), 'validation_error', 'order')
    throwsCrm(() => e.recordOrderSync(null, { now }), 'validation_error', 'order')
    throwsCrm(() => e.recordOrderSync(order({ colour: 'red' }), { now }), 'validation_error', 'order.colour')
    throwsCrm(() => e.recordOrderSync({ id: 'y', placedAt: now, amount: '1' }, { now }), 'validation_error', 'order.member_id')
    throwsCrm(() => e.recordOrderSync(order({ status: 'shipped' }), { now }), 'validation_error', 'order.status')
    throwsCrm(() => e.recordOrderSync(order({ items: [{ sku: 's', qty: -1, price: '1' }] }), { now }), 'validation_error', 'order.items[0].qty')
    throwsCrm(() => e.recordOrderSync(order({ currency: 'USD' }), { now }), 'validation_error', 'order.currency')
  })
  test('options must be an object', () => {
    throwsCrm(() => e.recordOrderSync(order(), 'now'), 'validation_error', 'options')
  })
  test('booleans must be booleans', () => {
    throwsCrm(() => e.setConsentSync('alice', 'sms', 'yes', { now }), 'validation_error', 'granted')
  })
  test('order status must be known', () => {
    throwsCrm(() => e.setOrderStatusSync('o1', 'lost', { now }), 'validation_error', 'status')
  })
  test('engines need a Program instance', () => {
    throwsCrm(() => Engine.inMemory({}), 'validation_error', 'program')
    throwsCrm(() => Engine.inMemory(CNY), 'validation_error', 'program')
    throwsCrm(() => Engine.inMemory(), 'validation_error', 'program')
  })
  test('sqlite options', () => {
    const p = Program.fromObject(CNY)
    throwsCrm(() => Engine.openSqlite(p, join(tmp, 'a.db'), { synchronous: 'sometimes' }), 'validation_error', 'synchronous')
    throwsCrm(() => Engine.openSqlite(p, join(tmp, 'a.db'), { memberCache: -1 }), 'validation_error', 'member_cache')
    throwsCrm(() => Engine.openSqlite(p, join(tmp, 'a.db'), { snapshotEvery: 0 }), 'validation_error', 'snapshot_every')
    throwsCrm(() => Engine.openSqlite(p, join(tmp, 'a.db'), { checkpointBytes: 1024 }), 'validation_error', 'checkpoint_bytes')
    throwsCrm(() => Engine.openSqlite(p, join(tmp, 'a.db'), { busyTimeoutMs: -5 }), 'validation_error', 'busy_timeout_ms')
    throwsCrm(() => Engine.openSqlite(p, join(tmp, 'a.db'), { memberCache: 1.5 }), 'validation_error', 'member_cache')
    throwsCrm(() => Engine.openSqlite(p, 42), 'validation_error', 'path')
    throwsCrm(() => Engine.openSqlite(p, join(tmp, 'missing', 'dir', 'x.db')), 'store_error', null)
  })
  test('batch: a bad order does not stop the others', () => {
    const results = e.recordOrdersSync(
      [order({ id: 'b1' }), order({ id: 'b2', amount: NaN }), 7, order({ id: 'b3', memberId: '' })],
      { now },
    )
    assert.equal(results.length, 4)
    assert.equal(results[0].ok, true)
    assert.deepEqual(results[1].error && [results[1].ok, results[1].error.code, results[1].error.field], [false, 'validation_error', 'order.amount'])
    assert.deepEqual([results[2].ok, results[2].error.code], [false, 'validation_error'])
    assert.equal(results[3].ok, false)
    throwsCrm(() => e.recordOrdersSync('nope', { now }), 'validation_error', 'orders')
  })
  test('idempotency: same key, other command is a conflict', () => {
    e.redeemSync('alice', 5, { now, idempotencyKey: 'same', pointType: 'reward' })
    const again = e.redeemSync('alice', 5, { now, idempotencyKey: 'same', pointType: 'reward' })
    assert.equal(again.points, 5)
    throwsCrm(() => e.redeemSync('alice', 6, { now, idempotencyKey: 'same', pointType: 'reward' }), 'conflict', null)
  })
  test('JavaScript exceptions thrown by the caller’s own objects propagate unchanged', () => {
    const evil = {
      get id() {
        throw new RangeError('from a getter')
      },
    }
    assert.throws(() => e.recordOrderSync(evil, { now }), RangeError)
  })
  test('cyclic and deeply nested input is rejected, not a stack overflow', () => {
    const cyclic = order({ id: 'cyc' })
    cyclic.items = [cyclic]
    throwsCrm(() => e.recordOrderSync(cyclic, { now }), 'validation_error')
    let deep = {}
    const root = deep
    for (let i = 0; i < 500; i++) deep = deep.attributes = {}
    throwsCrm(() => e.createMemberSync('deep', { now, profile: root }), 'validation_error')
  })
})

describe('results JavaScript cannot hold', () => {
  test('points beyond Number.MAX_SAFE_INTEGER are an internal_error, not a crash', async () => {
    const huge = Program.fromObject({
      ...CNY,
      earn: { rules: [{ id: 'base', point_type: 'reward', points_per_unit: '79228162514264337593543950335' }] },
    })
    const e = Engine.inMemory(huge)
    const big = { id: 'big', memberId: 'bob', placedAt: now, amount: '1000000000' }
    throwsCrm(() => e.recordOrderSync(big, { now }), 'internal_error', null)
    await rejectsCrm(e.recordOrder({ ...big, id: 'big2' }, { now }), 'internal_error', null)
  })
})

describe('malformed configuration', () => {
  test('JSON syntax error points at the position', () => {
    const err = throwsCrm(() => Program.fromJson('{"version": 1,'), 'config_error')
    assert.match(err.field, /line 1/)
  })
  test('TOML syntax error', () => throwsCrm(() => Program.fromToml('version = ['), 'config_error'))
  test('semantic errors name the setting', () => {
    throwsCrm(() => Program.fromObject({ ...CNY, timezone: 'Mars/Olympus' }), 'config_error', 'timezone')
    throwsCrm(() => Program.fromObject({ ...CNY, colour: 'red' }), 'config_error')
    throwsCrm(() => Program.fromObject(null), 'config_error')
    throwsCrm(() => Program.fromObject('text'), 'config_error')
    throwsCrm(() => Program.fromObject({ ...CNY, value_per_point: NaN }), 'config_error')
  })
  test('wrong argument types', () => {
    throwsCrm(() => Program.fromJson(42), 'validation_error', 'text')
    throwsCrm(() => Program.fromFile(), 'validation_error', 'path')
  })
  test('missing and malformed files', () => {
    throwsCrm(() => Program.fromFile(join(tmp, 'nope.json')), 'config_error')
    const bad = join(tmp, 'bad.toml')
    writeFileSync(bad, 'name = "x"\ntimezone = 5\n')
    throwsCrm(() => Program.fromFile(bad), 'config_error')
  })
})

describe('Promise variants reject with the same errors', () => {
  const e = fresh()
  test('validation, not_found, insufficient_points, conflict', async () => {
    await rejectsCrm(e.recordOrder(order({ amount: NaN }), { now }), 'validation_error', 'order.amount')
    await rejectsCrm(e.recordOrder(order(), {}), 'validation_error', 'now')
    await rejectsCrm(e.member('ghost'), 'not_found', null)
    await rejectsCrm(e.redeem('alice', 10_000, { now, idempotencyKey: 'p1', pointType: 'reward' }), 'insufficient_points', null)
    await e.redeem('alice', 1, { now, idempotencyKey: 'p2', pointType: 'reward' })
    await rejectsCrm(e.redeem('alice', 2, { now, idempotencyKey: 'p2', pointType: 'reward' }), 'conflict', null)
  })
  test('argument errors reject instead of throwing synchronously', async () => {
    let threw = false
    let p
    try {
      p = e.balance(5, 'reward')
    } catch {
      threw = true
    }
    assert.equal(threw, false)
    await rejectsCrm(p, 'validation_error', 'member_id')
  })
  test('many concurrent failing calls settle', async () => {
    const all = await Promise.allSettled(Array.from({ length: 200 }, (_, i) => e.member(`ghost${i}`)))
    assert.ok(all.every((r) => r.status === 'rejected' && r.reason.code === 'not_found'))
  })
})
