// The member journey over the camelCase API: tiers (upgrade on the order that
// crosses the threshold, manual assignment, history, distribution), lifecycle
// stages (stage as of any instant, transitions recorded by runDue, the
// transition matrix) and outreach (birthday on the consented channel after
// quiet hours, cart abandonment, no second hand-out for the same `now`), with
// the …Sync and the Promise variants, and bad input.

import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { describe, test } from 'node:test'

const require = createRequire(import.meta.url)
const { Engine, Program, isCrmError } = require('..')

const doc = {
  version: 1,
  name: 'Journey',
  timezone: 'Asia/Shanghai',
  currency: 'CNY',
  point_types: [{ id: 'reward' }],
  earn: { rules: [{ id: 'base', point_type: 'reward', points_per_unit: '1', rounding: 'floor' }] },
  tiers: {
    window: { type: 'calendar_year' },
    levels: [
      { id: 'member', name: 'Member' },
      {
        id: 'silver',
        name: 'Silver',
        entry: { spend: '1000' },
        benefits: { points_multiplier: '1.5', custom: { lounge_access: true } },
      },
      {
        id: 'gold',
        name: 'Gold',
        entry: { spend: '5000' },
        retain: { spend: '3000' },
        benefits: { free_shipping: true },
      },
    ],
  },
  lifecycle: { new_days: 30, at_risk_days: 60, dormant_days: 120, churned_days: 365 },
  outreach: {
    // 08:00 local falls in quiet hours: date triggers are deferred to 09:00.
    send_hour: 8,
    quiet_hours: { start: '21:00:00', end: '09:00:00' },
    triggers: [
      { id: 'birthday_sms', when: { type: 'birthday' }, channels: ['sms'], payload: { template_id: 'bday-1' } },
      { id: 'cart', when: { type: 'cart_abandoned', minutes: 60 }, channels: ['sms'] },
    ],
  },
}

const T = {
  join: '2024-03-01T02:00:00Z', // 10:00 Shanghai
  o1: '2024-03-02T04:00:00Z',
  o2: '2024-03-05T04:00:00Z',
  birthday: '2024-03-20T03:00:00Z',
  cart: '2024-03-25T04:00:00Z', // 12:00 local
  cartDue: '2024-03-25T06:00:00Z',
  assign: '2024-03-26T02:00:00Z',
  late: '2024-05-06T00:00:00Z',
}

const order = (id, memberId, placedAt, amount) => ({ id, memberId, placedAt, amount })

/** Alice (SMS consent) and Bob (e-mail consent only), both born on 20 March. */
function setUp(engine) {
  const now = T.join
  engine.createMemberSync('alice', { now, profile: { birthday: '1990-03-20' }, consents: { sms: true } })
  engine.createMemberSync('bob', { now, profile: { birthday: '1985-03-20' }, consents: { email: true } })
}

function expectCrm(fn, code, field) {
  assert.throws(fn, (e) => {
    assert.ok(e instanceof Error, 'an Error')
    assert.ok(isCrmError(e), `a CrmError: ${e}`)
    assert.equal(e.code, code, e.message)
    if (field !== undefined) assert.equal(e.field, field, e.message)
    return true
  })
}

describe('tiers', () => {
  const engine = Engine.inMemory(Program.fromObject(doc))
  setUp(engine)
  const first = engine.recordOrderSync(order('o1', 'alice', T.o1, '600'), { now: T.o1 })
  const second = engine.recordOrderSync(order('o2', 'alice', T.o2, '500'), { now: T.o2 })

  test('the order crossing 1000 upgrades to silver and earns at the tier held before it', () => {
    assert.deepEqual(first.earned, { reward: 600 })
    assert.deepEqual(second.earned, { reward: 500 })
    const history = engine.tierHistorySync('alice')
    assert.deepEqual(
      history.map(({ at, from, to, reason }) => ({ at, from, to, reason })),
      [
        { at: T.join, from: null, to: 'member', reason: 'joined' },
        { at: T.o2, from: 'member', to: 'silver', reason: 'upgrade' },
      ],
    )
    // The next order earns with silver's 1.5 multiplier.
    const t3 = '2024-03-06T04:00:00Z'
    const third = engine.recordOrderSync(order('o3', 'alice', t3, '100'), { now: t3 })
    assert.deepEqual(third.earned, { reward: 150 })
  })

  test('tier view: camelCase fields, money as strings, progress before and after', () => {
    const before = engine.tierSync('alice', { at: '2024-03-03T00:00:00Z' })
    assert.equal(before.tier, 'member')
    assert.equal(before.name, 'Member')
    assert.equal(before.since, T.join)
    assert.equal(before.next.tier, 'silver')
    assert.equal(before.next.missing.spend, '400')
    assert.equal(before.next.metric.spend, '600')
    assert.equal(before.next.metric.orders, 1)
    assert.equal(before.retain, null)
    assert.equal(before.manual, null)
    assert.equal(before.graceUntil, null)

    const after = engine.tierSync('alice', { at: new Date('2024-03-05T05:00:00Z') })
    assert.equal(after.tier, 'silver')
    assert.equal(after.name, 'Silver')
    assert.equal(after.since, T.o2)
    // Calendar year in Shanghai: reviewed at local new year.
    assert.equal(after.reviewAt, '2024-12-31T16:00:00Z')
    assert.deepEqual(after.benefits, { pointsMultiplier: '1.5', freeShipping: false, custom: { lounge_access: true } })
    assert.equal(after.next.tier, 'gold')
    assert.equal(after.next.missing.spend, '3900')
    assert.match(after.next.message, /spend 3900(\.00)? more to reach Gold/)
    assert.equal(after.retain.tier, 'silver')
    assert.equal(after.retain.by, '2024-12-31T16:00:00Z')
  })

  test('tier distribution at an instant, keyed by tier id', () => {
    assert.deepEqual(engine.tierDistributionSync({ at: '2024-03-03T00:00:00Z' }), { member: 2, silver: 0, gold: 0 })
    assert.deepEqual(engine.tierDistributionSync({ at: T.o2 }), { member: 1, silver: 1, gold: 0 })
    // Before anyone joined.
    assert.deepEqual(engine.tierDistributionSync({ at: '2024-01-01T00:00:00Z' }), { member: 0, silver: 0, gold: 0 })
  })

  test('assignTier: manual tier with reason and actor, in the view and the history', () => {
    const until = '2024-12-01T00:00:00Z'
    const out = engine.assignTierSync('bob', 'gold', { now: T.assign, until, reason: 'VIP guest', actor: 'ops:kim' })
    assert.deepEqual(out, { type: 'tier', memberId: 'bob', tier: 'gold', until })
    // Same content, same now: the default key answers with the first outcome.
    const again = engine.assignTierSync('bob', 'gold', { now: T.assign, until, reason: 'VIP guest', actor: 'ops:kim' })
    assert.deepEqual(again, out)
    assert.equal(engine.tierHistorySync('bob').length, 2)

    const view = engine.tierSync('bob', { at: '2024-04-01T00:00:00Z' })
    assert.equal(view.tier, 'gold')
    assert.deepEqual(view.manual, { until, reason: 'VIP guest', actor: 'ops:kim' })
    assert.equal(view.benefits.freeShipping, true)
    assert.equal(view.next, null)
    const last = engine.tierHistorySync('bob').at(-1)
    assert.deepEqual(last, { at: T.assign, from: 'member', to: 'gold', reason: 'manual', note: 'VIP guest' })
    assert.deepEqual(engine.tierDistributionSync({ at: '2024-04-01T00:00:00Z' }), { member: 0, silver: 1, gold: 1 })
  })

  test('bad input: unknown tier, invalid dates, missing fields, unknown member', () => {
    const opts = { now: T.assign, until: '2024-12-01T00:00:00Z', reason: 'r', actor: 'a' }
    expectCrm(() => engine.assignTierSync('alice', 'platinum', opts), 'validation_error', 'tier')
    expectCrm(() => engine.assignTierSync('alice', 7, opts), 'validation_error', 'tier')
    const assign = (patch) => () => engine.assignTierSync('alice', 'gold', { ...opts, ...patch })
    expectCrm(assign({ until: 'next week' }), 'validation_error', 'until')
    // No offset: never guessed.
    expectCrm(assign({ until: '2024-12-01T00:00:00' }), 'validation_error', 'until')
    expectCrm(assign({ until: new Date(NaN) }), 'validation_error', 'until')
    // Not after now.
    expectCrm(assign({ until: T.o1 }), 'validation_error', 'until')
    expectCrm(assign({ until: undefined }), 'validation_error', 'until')
    expectCrm(assign({ reason: undefined }), 'validation_error', 'reason')
    expectCrm(assign({ actor: ' ' }), 'validation_error', 'actor')
    expectCrm(assign({ now: 'yesterday' }), 'validation_error', 'now')
    expectCrm(() => engine.assignTierSync('nobody', 'gold', { ...opts, now: T.assign }), 'not_found')
    expectCrm(() => engine.tierSync('alice', { at: '2024-13-01T00:00:00Z' }), 'validation_error', 'at')
    expectCrm(() => engine.tierSync('nobody', { at: T.o2 }), 'not_found')
    expectCrm(() => engine.tierDistributionSync({ at: 12 }), 'validation_error', 'at')
    // Refused commands leave the member as it was.
    assert.equal(engine.tierSync('alice', { at: T.assign }).tier, 'silver')
  })

  test('a programme without tiers answers tier queries with validation_error on `tiers`', () => {
    const { tiers, outreach, ...plain } = doc
    const e = Engine.inMemory(Program.fromObject(plain))
    e.createMemberSync('carol', { now: T.join })
    expectCrm(() => e.tierSync('carol'), 'validation_error', 'tiers')
    expectCrm(() => e.tierDistributionSync(), 'validation_error', 'tiers')
    expectCrm(
      () => e.assignTierSync('carol', 'gold', { now: T.assign, until: T.late, reason: 'r', actor: 'a' }),
      'validation_error',
      'tier',
    )
    assert.deepEqual(e.tierHistorySync('carol'), [])
  })
})

describe('lifecycle stages and outreach', () => {
  const engine = Engine.inMemory(Program.fromObject(doc))
  setUp(engine)
  engine.recordOrderSync(order('o1', 'alice', T.o1, '600'), { now: T.o1 })
  engine.recordOrderSync(order('o2', 'alice', T.o2, '500'), { now: T.o2 })

  test('runDue hands out the birthday item on the consented channel after quiet hours, once', () => {
    const due = engine.runDueSync(T.birthday)
    assert.equal(due.type, 'due')
    assert.deepEqual(due.outreach, [
      {
        id: 'alice:birthday_sms:2024',
        memberId: 'alice',
        trigger: 'birthday_sms',
        occurrence: '2024',
        channel: 'sms',
        // 08:00 local is quiet: deferred to 09:00 local.
        dueAt: '2024-03-20T01:00:00Z',
        // Payload keys are passed through unchanged.
        payload: { birthday: '2024-03-20', template_id: 'bday-1' },
      },
    ])
    assert.equal(due.outreachCount, 1)
    // Bob consented to e-mail only: suppressed.
    assert.equal(due.suppressed, 1)
    assert.equal(due.tierChanges, 0)
    assert.equal(due.stageChanges, 0)

    const repeat = engine.runDueSync(new Date(T.birthday))
    assert.deepEqual(repeat.outreach, [])
    assert.equal(repeat.outreachCount, 1)
    assert.equal(repeat.suppressed, 1)
    // A host that crashed before sending reads the run's items again.
    assert.deepEqual(engine.outreachOfRunSync(new Date(T.birthday)), due.outreach)
    return engine.outreachOfRun(T.birthday).then((items) => assert.deepEqual(items, due.outreach))
  })

  test('recordEngagement feeds cart-abandonment outreach', async () => {
    const out = engine.recordEngagementSync('alice', 'add_to_cart', { now: T.cart, sku: 'sku-1', reference: 'cart-9' })
    assert.deepEqual(out, { type: 'member', memberId: 'alice' })
    const [e] = engine.memberSync('alice').engagements
    assert.deepEqual(e, { at: T.cart, kind: 'add_to_cart', sku: 'sku-1', reference: 'cart-9' })
    // `at` defaults to now and can be given; Promise variant.
    const p = engine.recordEngagement('alice', 'browse', { now: T.cart, at: '2024-03-25T03:00:00Z', sku: 'sku-2' })
    assert.ok(p instanceof Promise)
    assert.deepEqual(await p, { type: 'member', memberId: 'alice' })
    assert.equal(engine.memberSync('alice').engagements[0].at, '2024-03-25T03:00:00Z')

    const due = await engine.runDue(T.cartDue)
    assert.deepEqual(due.outreach, [
      {
        id: `alice:cart:${'2024-03-25T04:00:00+00:00'}`,
        memberId: 'alice',
        trigger: 'cart',
        occurrence: '2024-03-25T04:00:00+00:00',
        channel: 'sms',
        dueAt: '2024-03-25T05:00:00Z',
        payload: { event: 'add_to_cart', sku: 'sku-1', reference: 'cart-9' },
      },
    ])
  })

  test('recordEngagement: bad input', async () => {
    expectCrm(() => engine.recordEngagementSync('alice', '', { now: T.cart }), 'validation_error', 'kind')
    const browse = (opts) => () => engine.recordEngagementSync('alice', 'browse', { now: T.cart, ...opts })
    expectCrm(browse({ at: 'soon' }), 'validation_error', 'at')
    expectCrm(browse({ sku: 5 }), 'validation_error', 'sku')
    expectCrm(browse({ reference: 'x'.repeat(129) }), 'validation_error', 'reference')
    expectCrm(() => engine.recordEngagementSync('alice', 'browse', {}), 'validation_error', 'now')
    await assert.rejects(engine.recordEngagement('alice', 'browse', { now: 'not a date' }), (e) => {
      assert.ok(isCrmError(e))
      assert.equal(e.code, 'validation_error')
      assert.equal(e.field, 'now')
      return true
    })
  })

  test('stage as of any instant: new, active, at_risk 61 days after the last order', () => {
    assert.deepEqual(engine.stageSync('bob', { at: T.o2 }), {
      stage: 'prospect',
      since: T.join,
      lastOrderAt: null,
      daysSinceLastOrder: null,
      orders: 0,
    })
    const fresh = engine.stageSync('alice', { at: '2024-03-06T00:00:00Z' })
    assert.equal(fresh.stage, 'new')
    assert.equal(fresh.since, T.o1)
    assert.equal(fresh.orders, 2)
    assert.equal(fresh.lastOrderAt, T.o2)
    assert.equal(fresh.daysSinceLastOrder, 0)
    assert.equal(engine.stageSync('alice', { at: '2024-04-10T00:00:00Z' }).stage, 'active')
    assert.equal(engine.stageSync('alice', { at: '2024-05-04T03:59:59Z' }).stage, 'active')
    const risk = engine.stageSync('alice', { at: '2024-05-05T04:00:00Z' })
    assert.equal(risk.stage, 'at_risk')
    assert.equal(risk.daysSinceLastOrder, 61)
  })

  test('runDue records the stage changes; history, distribution and transitions', async () => {
    const due = engine.runDueSync(T.late)
    // Alice: new -> active (30 days after the first order), active -> at_risk (60 days after the last).
    assert.equal(due.stageChanges, 2)
    assert.deepEqual(due.outreach, [])
    assert.equal(due.outreachCount, 0)

    const history = engine.stageHistorySync('alice')
    assert.deepEqual(
      history.map(({ at, from, to }) => ({ at, from, to })),
      [
        { at: T.join, from: null, to: 'prospect' },
        { at: T.o1, from: 'prospect', to: 'new' },
        { at: '2024-04-01T04:00:00Z', from: 'new', to: 'active' },
        { at: '2024-05-04T04:00:00Z', from: 'active', to: 'at_risk' },
      ],
    )
    assert.equal(history.at(-1).reason, 'no order for 60 days')
    assert.equal(engine.stageSync('alice', { at: T.late }).since, '2024-05-04T04:00:00Z')

    // Keys are the stage values (snake_case), every stage listed.
    assert.deepEqual(engine.stageDistributionSync({ at: T.late }), {
      prospect: 1,
      new: 0,
      active: 0,
      reactivated: 0,
      at_risk: 1,
      dormant: 0,
      churned: 0,
    })
    assert.deepEqual(await engine.stageDistribution({ at: '2024-03-10T00:00:00Z' }), {
      prospect: 1,
      new: 1,
      active: 0,
      reactivated: 0,
      at_risk: 0,
      dormant: 0,
      churned: 0,
    })

    const m = engine.stageTransitionsSync('2024-03-10T00:00:00Z', new Date(T.late))
    assert.deepEqual(m, {
      from: '2024-03-10T00:00:00Z',
      to: T.late,
      counts: { prospect: { prospect: 1 }, new: { at_risk: 1 } },
    })
    assert.deepEqual(await engine.stageTransitions('2024-03-10T00:00:00Z', T.late), m)
    expectCrm(() => engine.stageTransitionsSync(T.late, '2024-03-10T00:00:00Z'), 'validation_error', 'to')
    expectCrm(() => engine.stageTransitionsSync('2024-03-10', T.late), 'validation_error', 'from')
    expectCrm(() => engine.stageSync('alice', { at: 'later' }), 'validation_error', 'at')
  })

  test('Promise and Sync variants agree', async () => {
    const at = { at: T.late }
    assert.deepEqual(await engine.tier('alice', at), engine.tierSync('alice', at))
    assert.deepEqual(await engine.tierHistory('alice'), engine.tierHistorySync('alice'))
    assert.deepEqual(await engine.tierDistribution(at), engine.tierDistributionSync(at))
    assert.deepEqual(await engine.stage('alice', at), engine.stageSync('alice', at))
    assert.deepEqual(await engine.stageHistory('alice'), engine.stageHistorySync('alice'))
    const opts = { now: T.late, until: '2025-01-01T00:00:00Z', reason: 'r', actor: 'a' }
    await assert.rejects(engine.assignTier('alice', 'platinum', opts), (e) => {
      assert.ok(isCrmError(e))
      assert.equal(e.code, 'validation_error')
      assert.equal(e.field, 'tier')
      return true
    })
    const out = await engine.assignTier('alice', 'gold', { ...opts, idempotencyKey: 'manual-1' })
    assert.deepEqual(out, { type: 'tier', memberId: 'alice', tier: 'gold', until: '2025-01-01T00:00:00Z' })
  })

  test('execute takes the new commands in their core form', () => {
    const out = engine.executeSync(
      'eng-1',
      { type: 'record_engagement', memberId: 'bob', kind: 'favourite', sku: 'sku-3' },
      T.late,
    )
    assert.deepEqual(out, { type: 'member', memberId: 'bob' })
    const tier = engine.executeSync(
      'tier-1',
      { type: 'assign_tier', memberId: 'bob', tier: 'silver', until: '2025-02-01T00:00:00Z', reason: 'r', actor: 'a' },
      T.late,
    )
    assert.deepEqual(tier, { type: 'tier', memberId: 'bob', tier: 'silver', until: '2025-02-01T00:00:00Z' })
  })
})

describe('a changed programme', () => {
  test('takes effect at the next runDue: the wake-ups are derived again under it', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs')
    const { tmpdir } = await import('node:os')
    const { join } = await import('node:path')
    const dir = mkdtempSync(join(tmpdir(), 'crm-node-reschedule-'))
    try {
      const path = join(dir, 'crm.db')
      // No stages, no messages: alice is next due at her tier review (1 January 2025).
      const { outreach, lifecycle, ...quiet } = doc
      const before = Engine.openSqlite(Program.fromObject(quiet), path, { memberCache: 0 })
      setUp(before)
      before.recordOrderSync(order('o1', 'alice', T.o1, '600'), { now: T.o1 })
      assert.equal(await before.reschedule(T.o1), 0) // unchanged: nothing to derive again
      // The store does not keep the programme: opened again under the full one.
      const after = Engine.openSqlite(Program.fromObject(doc), path, { memberCache: 0 })
      const due = after.runDueSync(T.birthday)
      assert.deepEqual(
        due.outreach.map((i) => [i.memberId, i.trigger]),
        [['alice', 'birthday_sms']],
      )
      assert.equal(after.stageSync('alice', { at: T.birthday }).stage, 'new')
      assert.equal(after.rescheduleSync(T.birthday), 0) // recorded: derived once
      expectCrm(() => after.rescheduleSync('yesterday'), 'validation_error', 'now')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test('withProgram: the same store, in memory too, under another programme', async () => {
    const { outreach, lifecycle, ...quiet } = doc
    const before = Engine.inMemory(Program.fromObject(quiet))
    setUp(before)
    before.recordOrderSync(order('o1', 'alice', T.o1, '600'), { now: T.o1 })
    const after = before.withProgram(Program.fromObject(doc))
    assert.ok(after instanceof Engine)
    assert.equal(after.program.toJSON().outreach.triggers.length, doc.outreach.triggers.length)
    assert.equal(before.program.toJSON().outreach ?? null, null) // the old engine keeps its own
    assert.equal(after.balanceSync('alice', 'reward', { at: T.o1 }).available, 600)
    const due = await after.runDue(T.birthday)
    assert.deepEqual(
      due.outreach.map((i) => [i.memberId, i.trigger]),
      [['alice', 'birthday_sms']],
    )
    assert.equal(after.stageSync('alice', { at: T.birthday }).stage, 'new')
    expectCrm(() => before.withProgram(doc), 'validation_error', 'program') // an object, not a Program
  })
})
