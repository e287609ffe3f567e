// The camelCase surface end to end: programmes from object / JSON / TOML /
// files, members, identities, consent, tags, orders, refunds, ledger commands,
// queries (as-of balance, statement pages, expiring, liability), both the
// …Sync and the Promise variants, and ESM import.

import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'

const require = createRequire(import.meta.url)
const crm = require('..')
const { Engine, Program, isCrmError, version } = crm

const tmp = mkdtempSync(join(tmpdir(), 'crm-node-api-'))
after(() => rmSync(tmp, { recursive: true, force: true }))

const doc = {
  version: 1,
  name: 'Shop',
  timezone: 'Asia/Shanghai',
  currency: 'CNY',
  value_per_point: '0.01',
  point_types: [
    { id: 'reward', expiry: { type: 'days_after_earning', days: 30 } },
    { id: 'growth', spendable: false },
  ],
  earn: {
    rules: [
      { id: 'base', point_type: 'reward', points_per_unit: '1', rounding: 'floor' },
      { id: 'grow', point_type: 'growth', points_per_unit: '1' },
    ],
    bonuses: [{ id: 'review', action: 'review', point_type: 'reward', points: 5, max_per_member: 1 }],
  },
}

const TOML = `
version = 1
name = "Shop"
timezone = "Asia/Shanghai"
currency = "CNY"
value_per_point = "0.01"

[[point_types]]
id = "reward"
expiry = { type = "days_after_earning", days = 30 }

[[point_types]]
id = "growth"
spendable = false

[[earn.rules]]
id = "base"
point_type = "reward"
points_per_unit = "1"
rounding = "floor"

[[earn.rules]]
id = "grow"
point_type = "growth"
points_per_unit = "1"

[[earn.bonuses]]
id = "review"
action = "review"
point_type = "reward"
points = 5
max_per_member = 1
`

describe('Program', () => {
  test('object, JSON, TOML and files give the same programme', () => {
    const a = Program.fromObject(doc)
    const b = Program.fromJson(JSON.stringify(doc))
    const c = Program.fromToml(TOML)
    writeFileSync(join(tmp, 'p.json'), JSON.stringify(doc))
    writeFileSync(join(tmp, 'p.toml'), TOML)
    const d = Program.fromFile(join(tmp, 'p.json'))
    const e = Program.fromFile(join(tmp, 'p.toml'))
    for (const p of [b, c, d, e]) assert.deepEqual(p.toJSON(), a.toJSON())
    assert.equal(a.name, 'Shop')
    assert.equal(a.currency, 'CNY')
    assert.equal(a.timezone, 'Asia/Shanghai')
    assert.deepEqual(a.pointTypes, ['reward', 'growth'])
    // toJSON() is a loadable document.
    assert.deepEqual(Program.fromJson(JSON.stringify(a)).toJSON(), a.toJSON())
  })
  test('defaultDemo is the quick-start programme', () => {
    const p = Program.defaultDemo()
    assert.equal(p.currency, 'USD')
    assert.deepEqual(p.pointTypes, ['reward'])
    assert.deepEqual(p.toJSON().point_types[0].expiry, { type: 'days_after_earning', days: 365 })
  })
  test('version() and isCrmError()', () => {
    assert.match(version(), /^\d+\.\d+\.\d+/)
    assert.equal(isCrmError(new Error('x')), false)
    assert.equal(isCrmError(null), false)
    assert.equal(isCrmError({ name: 'CrmError', code: 'x', field: null }), false)
  })
})

describe('in-memory engine, sync methods', () => {
  const e = Engine.inMemory(Program.fromObject(doc))
  const t0 = '2024-03-01T02:00:00Z'
  test('engine.program', () => assert.equal(e.program.name, 'Shop'))
  test('members, profile, identities, tags, consent', () => {
    const opts = {
      now: t0,
      profile: { name: 'Alice', birthday: '1990-05-01', gender: 'female', joinChannel: 'app', attributes: { shoe_size: 38 } },
      identities: [{ channel: 'wechat', externalId: 'wx-1' }],
      tags: ['new'],
      consents: { sms_marketing: true },
    }
    const out = e.createMemberSync('alice', opts)
    assert.deepEqual(out, { type: 'member', memberId: 'alice' })
    // Same key and command again: the first outcome; another command under the key: conflict.
    assert.deepEqual(e.createMemberSync('alice', { ...opts, now: new Date(t0) }), out)
    assert.throws(() => e.createMemberSync('alice', { now: t0 }), (err) => err.code === 'conflict')
    // Content-keyed commands get a default key; a long patch needs its own (see README).
    e.updateProfileSync('alice', { email: 'a@example.com', clear: ['joinChannel'] }, { now: t0, idempotencyKey: 'profile-1' })
    e.linkIdentitySync('alice', { channel: 'app', externalId: 'u-1' }, { now: t0 })
    e.unlinkIdentitySync('alice', { channel: 'wechat', externalId: 'wx-1' }, { now: t0, idempotencyKey: 'unlink-1' })
    e.addTagSync('alice', 'vip', { now: t0 })
    e.removeTagSync('alice', 'new', { now: t0 })
    e.setConsentSync('alice', 'email', false, { now: t0 })
    const m = e.memberSync('alice')
    assert.equal(m.id, 'alice')
    assert.deepEqual(m.status, { type: 'active' })
    assert.equal(m.profile.name, 'Alice')
    assert.equal(m.profile.email, 'a@example.com')
    assert.equal(m.profile.joinChannel, null)
    assert.deepEqual(m.profile.attributes, { shoe_size: 38 })
    assert.deepEqual(m.identities, [{ channel: 'app', externalId: 'u-1' }])
    assert.deepEqual(m.tags, ['vip'])
    assert.equal(m.consents.sms_marketing.granted, true)
    assert.equal(m.consents.email.granted, false)
    assert.equal(e.findByIdentitySync('app', 'u-1'), 'alice')
    assert.equal(e.findByIdentitySync('wechat', 'wx-1'), null)
  })
  test('orders, statuses, refunds and actions', () => {
    const o = e.recordOrderSync(
      { id: 'o1', memberId: 'alice', placedAt: t0, amount: '120.50', channel: 'app', items: [{ sku: 'a', qty: 2, price: '60.25' }] },
      { now: t0 },
    )
    assert.deepEqual(o.earned, { reward: 120, growth: 120 })
    assert.deepEqual(o.lots.length, 2)
    const placed = e.recordOrderSync({ id: 'o2', memberId: 'alice', placedAt: t0, amount: 30, status: 'placed' }, { now: t0 })
    assert.deepEqual(placed.earned, {})
    assert.deepEqual(e.setOrderStatusSync('o2', 'paid', { now: t0 }).earned, { reward: 30, growth: 30 })
    const r = e.recordRefundSync({ id: 'r1', orderId: 'o1', at: t0, scope: { type: 'amount', amount: '20.50' } }, { now: t0 })
    assert.equal(r.type, 'refund')
    assert.equal(r.amount, '20.50')
    assert.ok(r.clawbacks.some((c) => c.pointType === 'reward' && c.taken === 20))
    const a = e.recordActionSync('alice', 'review', 'rev-1', { now: t0 })
    assert.deepEqual(a.awarded, { reward: 5 })
    assert.deepEqual(e.balanceSync('alice', 'reward', { at: t0 }), { available: 135, pending: 0, debt: 0 })
  })
  test('redeem, reverse, adjust', () => {
    const red = e.redeemSync('alice', 35, { now: t0, idempotencyKey: 'red-1', pointType: 'reward', reason: 'coupon' })
    assert.equal(red.redemptionId, 'red-1')
    assert.equal(red.allocations.reduce((s, x) => s + x.points, 0), 35)
    const rev = e.reverseRedemptionSync('alice', 'red-1', { now: t0, idempotencyKey: 'rev-1' })
    assert.equal(rev.points, 35)
    const adj = e.adjustSync('alice', -10, { now: t0, idempotencyKey: 'adj-1', pointType: 'reward', reason: 'fix', actor: 'ops' })
    assert.equal(adj.delta, -10)
    assert.equal(e.balanceSync('alice', 'reward', { at: t0 }).available, 125)
  })
  test('queries: as-of balance, lots, statement pages, expiring, liability, memberAsOf', () => {
    assert.equal(e.balanceSync('alice', 'reward', { at: '2024-02-01T00:00:00Z' }).available, 0)
    assert.equal(e.balanceSync('alice', 'reward', { at: new Date('2024-04-15T00:00:00Z') }).available, 0, 'expired after 30 days')
    const lots = e.lotsSync('alice')
    assert.ok(lots.every((l) => typeof l.earnedAt === 'string' && l.remaining <= l.granted))
    const all = e.statementSync('alice', 'reward')
    assert.ok(all.total >= 5)
    const p1 = e.statementSync('alice', 'reward', { offset: 0, limit: 2 })
    assert.equal(p1.entries.length, 2)
    assert.equal(p1.nextOffset, 2)
    const p2 = e.statementSync('alice', 'reward', { offset: p1.nextOffset, limit: 100 })
    assert.equal(p2.nextOffset, null)
    assert.deepEqual([...p1.entries, ...p2.entries], all.entries)
    const exp = e.expiringSync('alice', 'reward', { at: t0, days: 31 })
    assert.equal(exp.total, 125)
    assert.equal(typeof exp.buckets[0][0], 'string')
    const liab = e.liabilitySync({ at: t0 })
    assert.equal(liab.members, 1)
    const reward = liab.pointTypes.find((x) => x.pointType === 'reward')
    assert.equal(reward.outstanding, 125)
    assert.equal(reward.value, '1.25')
    const before = e.memberAsOfSync('alice', '2024-03-01T01:00:00Z')
    assert.ok(before)
  })
  test('merge and erase', () => {
    e.createMemberSync('alice2', { now: t0, identities: [{ channel: 'phone', externalId: '+8613800000000' }] })
    e.recordOrderSync({ id: 'o3', memberId: 'alice2', placedAt: t0, amount: '10' }, { now: t0 })
    const mg = e.mergeSync('alice', 'alice2', { now: t0 })
    assert.equal(mg.moved.reward, 10)
    assert.deepEqual(e.memberSync('alice2').status.type, 'merged')
    assert.equal(e.resolveSync('alice2').id, 'alice')
    assert.equal(e.findByIdentitySync('phone', '+8613800000000'), 'alice')
    const er = e.eraseSync('alice', { now: t0 })
    assert.deepEqual(er, { type: 'erasure', memberId: 'alice' })
    const m = e.memberSync('alice')
    assert.equal(m.status.type, 'erased')
    assert.equal(m.profile.email, null)
    assert.deepEqual(m.identities, [])
  })
  test('runDue is idempotent per now', () => {
    const later = '2024-05-01T00:00:00Z'
    const d1 = e.runDueSync(later)
    assert.equal(d1.type, 'due')
    assert.deepEqual(e.runDueSync(later), d1)
  })
  test('execute runs a command in its core form', () => {
    const out = e.executeSync('x-1', { type: 'create_member', memberId: 'zoe' }, '2024-05-01T00:00:00Z')
    assert.deepEqual(out, { type: 'member', memberId: 'zoe' })
  })
})

describe('SQLite engine, Promise methods', () => {
  test('state survives reopening the file', async () => {
    const path = join(tmp, 'shop.db')
    const program = Program.fromObject(doc)
    const now = new Date('2024-03-01T02:00:00Z')
    {
      const e = Engine.openSqlite(program, path)
      const results = await e.recordOrders(
        Array.from({ length: 50 }, (_, i) => ({ id: `b${i}`, memberId: `m${i % 5}`, placedAt: now, amount: '10.00' })),
        { now },
      )
      assert.ok(results.every((r) => r.ok))
      await e.redeem('m0', 15, { now, idempotencyKey: 'k1', pointType: 'reward' })
    }
    const e = Engine.openSqlite(program, path, { synchronous: 'normal', busyTimeoutMs: 1000 })
    assert.deepEqual(await e.balance('m0', 'reward', { at: now }), { available: 85, pending: 0, debt: 0 })
    assert.equal((await e.liability({ at: now })).members, 5)
    // Repeating the batch is idempotent.
    const again = await e.recordOrders([{ id: 'b0', memberId: 'm0', placedAt: now, amount: '10.00' }], { now })
    assert.equal(again[0].ok, true)
    assert.deepEqual(await e.balance('m0', 'reward', { at: now }), { available: 85, pending: 0, debt: 0 })
  })
  test('the event loop keeps running while calls are in flight', async () => {
    const e = Engine.openSqlite(Program.fromObject(doc), join(tmp, 'busy.db'))
    const now = '2024-03-01T02:00:00Z'
    let ticks = 0
    const timer = setInterval(() => ticks++, 1)
    await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        e.recordOrder({ id: `c${i}`, memberId: `n${i % 10}`, placedAt: now, amount: '1.00' }, { now }),
      ),
    )
    clearInterval(timer)
    assert.equal((await e.liability({ at: now })).pointTypes[0].outstanding, 100)
    assert.ok(ticks >= 0)
  })
  test('store options: no cache, a snapshot on every commit, late checkpoints', async () => {
    const path = join(tmp, 'options.db')
    const now = new Date('2024-03-01T02:00:00Z')
    const options = { memberCache: 0, snapshotEvery: 1, checkpointBytes: 64 << 20 }
    {
      const e = Engine.openSqlite(Program.fromObject(doc), path, options)
      const orders = Array.from({ length: 40 }, (_, i) => ({ id: `s${i}`, memberId: `p${i % 4}`, placedAt: now, amount: '10.00' }))
      assert.ok((await e.recordOrders(orders, { now })).every((r) => r.ok))
      // Every read decodes the stored member (no cache): the same balance.
      assert.deepEqual(await e.balance('p0', 'reward', { at: now }), { available: 100, pending: 0, debt: 0 })
    }
    const e = Engine.openSqlite(Program.fromObject(doc), path, { snapshotEvery: 32 })
    assert.deepEqual(await e.balance('p0', 'reward', { at: now }), { available: 100, pending: 0, debt: 0 })
    assert.equal((await e.liability({ at: now })).members, 4)
  })
  test(':memory: opens a private SQLite database', async () => {
    const e = Engine.openSqlite(Program.defaultDemo(), ':memory:')
    await e.createMember('x', { now: '2024-01-01T00:00:00Z' })
    assert.equal((await e.member('x')).id, 'x')
  })
})

test('ESM import of the package works', async () => {
  const mod = await import('../index.js')
  const ns = mod.default ?? mod
  assert.equal(typeof ns.Engine.inMemory, 'function')
  const named = await import('../index.js')
  assert.equal(typeof named.Program, 'function')
  assert.equal(typeof crm.Engine, 'function')
})
