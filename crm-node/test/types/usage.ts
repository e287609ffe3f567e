// Type-level test of index.d.ts: compiled with `tsc` (npm run typecheck and
// test/dts.test.mjs). Never executed.

import type {
  Balance,
  BatchResult,
  CrmError,
  DueOutcome,
  Engine as EngineT,
  Expiring,
  Liability,
  Lot,
  Member,
  OrderInput,
  OrderOutcome,
  Program as ProgramT,
  ProgramConfig,
  RedemptionOutcome,
  StatementPage,
} from '../../index.js'

declare const Engine: typeof EngineT
declare const Program: typeof ProgramT
declare function isCrmError(v: unknown): v is CrmError

const config: ProgramConfig = {
  version: 1,
  name: 'Demo',
  timezone: 'Asia/Shanghai',
  currency: 'CNY',
  point_types: [{ id: 'reward', pending_days: 7, expiry: { type: 'days_after_earning', days: 365 } }],
  earn: {
    rules: [
      {
        id: 'base',
        point_type: 'reward',
        points_per_unit: '1',
        rounding: 'floor',
        multipliers: [{ when: { type: 'channel', channels: ['app'] }, factor: '2' }],
      },
    ],
    bonuses: [{ id: 'signup', action: 'sign_up', point_type: 'reward', points: 100 }],
  },
  refunds: { clawback: 'cap_at_zero' },
}

async function usage(): Promise<void> {
  const program: ProgramT = Program.fromObject(config)
  const again: ProgramT = Program.fromJson(JSON.stringify(program.toJSON()))
  const demo = Program.defaultDemo()
  const names: string[] = [program.name, again.currency, demo.timezone, ...demo.pointTypes]
  const mem: EngineT = Engine.inMemory(program)
  const db: EngineT = Engine.openSqlite(program, '/tmp/x.db', { synchronous: 'normal', busyTimeoutMs: 100 })
  const changed: EngineT = mem.withProgram(demo)
  // @ts-expect-error withProgram takes a Program, not its document
  mem.withProgram(config)
  const pg: EngineT = await Engine.openPostgres(program, 'postgresql://postgres@127.0.0.1/test', {
    schema: 'crm_eu',
    poolSize: 4,
    connectTimeoutMs: 2000,
  })
  const pgSync: EngineT = Engine.openPostgresSync(program, 'postgresql://postgres@127.0.0.1/test')
  const dropped: void = await pg.dropStoreSchema()
  pgSync.dropStoreSchemaSync()
  // @ts-expect-error openPostgres resolves to the engine: await it first
  Engine.openPostgres(program, 'postgresql://x').memberSync('alice')
  // @ts-expect-error the pool size is a number
  Engine.openPostgresSync(program, 'postgresql://x', { poolSize: '4' })
  const now = new Date()

  mem.createMemberSync('alice', {
    now,
    profile: { name: 'Alice', birthday: '1990-05-01', gender: 'female', attributes: { vip: true } },
    identities: [{ channel: 'wechat', externalId: 'o-123' }],
    tags: ['new'],
    consents: { sms: true },
  })
  const order: OrderInput = { id: 'o1', memberId: 'alice', placedAt: now, amount: '59.90', channel: 'app' }
  const o: OrderOutcome = mem.recordOrderSync(order, { now })
  const earned: number | undefined = o.earned['reward']
  const batch: BatchResult[] = await db.recordOrders([order, { ...order, id: 'o2', amount: 12.5 }], { now })
  for (const r of batch) {
    if (r.ok) {
      const lots: string[] = r.outcome.lots
    } else {
      const code: string = r.error.code
    }
  }
  const red: RedemptionOutcome = await db.redeem('alice', 10, { now, idempotencyKey: 'k', pointType: 'reward' })
  const b: Balance = await db.balance('alice', 'reward', { at: '2024-01-01T00:00:00Z' })
  const bs: Balance = mem.balanceSync('alice', 'reward')
  const lots: Lot[] = await db.lots('alice')
  const page: StatementPage = mem.statementSync('alice', 'reward', { offset: 0, limit: 10 })
  const next: number | null = page.nextOffset
  const exp: Expiring = await db.expiring('alice', 'reward', { days: 30 })
  const first: [string, number] | undefined = exp.buckets[0]
  const liab: Liability = mem.liabilitySync({ at: now })
  const m: Member = await db.member('alice')
  const spend: string = m.stats.spend
  const who: string | null = mem.findByIdentitySync('wechat', 'o-123')
  const due: DueOutcome = await db.runDue(now, { idempotencyKey: 'due-1' })
  await db.recordRefund({ id: 'r1', orderId: 'o1', at: now, scope: { type: 'amount', amount: '10.00' } }, { now })
  await db.setOrderStatus('o2', 'cancelled', { now })
  await db.recordAction('alice', 'review', 'review-1', { now })
  await db.adjust('alice', -5, { now, idempotencyKey: 'adj', pointType: 'reward', reason: 'goodwill', actor: 'ops' })
  await db.reverseRedemption('alice', red.redemptionId, { now, idempotencyKey: 'rev' })
  await db.updateProfile('alice', { email: 'a@example.com', clear: ['phone'] }, { now })
  await db.linkIdentity('alice', { channel: 'app', externalId: 'u1' }, { now })
  await db.setConsent('alice', 'email', false, { now })
  await db.merge('alice', 'bob', { now })
  await db.erase('bob', { now })
  try {
    mem.memberSync('ghost')
  } catch (e) {
    if (isCrmError(e)) {
      const code: 'not_found' | string = e.code
      const field: string | null = e.field
    }
  }
  // @ts-expect-error money is a string or a number, never a boolean
  mem.recordOrderSync({ ...order, amount: true }, { now })
  // @ts-expect-error commands need `now`
  mem.recordOrderSync(order, {})
  // @ts-expect-error redemptions need an idempotency key
  mem.redeemSync('alice', 1, { now, pointType: 'reward' })
  void [names, earned, b, bs, lots, next, first, liab, spend, who, due, dropped]
}
void usage
