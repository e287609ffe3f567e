// Campaign measurement over the camelCase API: the hold-out split is the
// documented hash (recomputed here with BigInt), a planted effect is found and
// an absent one is not, the Promise and …Sync variants agree, and bad input
// fails with a stable code and the field.

import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { describe, test } from 'node:test'

const require = createRequire(import.meta.url)
const { Engine, Program, isCrmError } = require('..')

const M64 = (1n << 64n) - 1n

/** FNV-1a over the seed's 8 little-endian bytes and the id, then fmix64. */
function assignmentHash(seed, member) {
  let h = 0xcbf29ce484222325n
  const bytes = [...Array(8)].map((_, i) => Number((BigInt(seed) >> BigInt(8 * i)) & 0xffn))
  for (const b of [...bytes, ...Buffer.from(member, 'utf8')]) {
    h = ((h ^ BigInt(b)) * 0x100000001b3n) & M64
  }
  h ^= h >> 33n
  h = (h * 0xff51afd7ed558ccdn) & M64
  h ^= h >> 33n
  h = (h * 0xc4ceb9fe1a85ec53n) & M64
  return h ^ (h >> 33n)
}

const u = (stream, member) => Number(assignmentHash(stream, member) >> 11n) / 2 ** 53
const heldOut = (seed, member, share) => assignmentHash(seed, member) >> 11n < BigInt(Math.floor(share * 2 ** 53))

const START = new Date('2024-03-01T00:00:00Z')
const campaign = (over = {}) => ({
  id: 'spring',
  audience: { rule: 'orders(365d) >= 1' },
  seed: 2024,
  holdout: '0.25',
  startsAt: START,
  endsAt: '2024-03-15T00:00:00Z',
  attributionDays: 7,
  cost: { pointsPerMember: 20, couponValue: '100.00' },
  ...over,
})

function engine(planted, n = 1000) {
  const e = Engine.inMemory(Program.defaultDemo())
  const history = []
  const window = []
  for (let i = 0; i < n; i++) {
    const m = `m${String(i).padStart(4, '0')}`
    history.push({ id: `h${i}`, memberId: m, amount: '30', placedAt: new Date(Date.UTC(2023, 6, 1 + (i % 150))) })
    const at = new Date(START.getTime() + (48 + (i % 200)) * 3600_000)
    if (u(1, m) < 0.2) window.push({ id: `w${i}`, memberId: m, amount: '50', placedAt: at })
    if (planted && !heldOut(2024, m, 0.25) && u(2, m) < 0.2) {
      window.push({ id: `x${i}`, memberId: m, amount: '70', placedAt: new Date(at.getTime() + 3600_000) })
    }
  }
  e.recordOrdersSync(history, { now: '2024-02-01T00:00:00Z' })
  e.recordOrdersSync(window, { now: '2024-04-01T00:00:00Z' })
  return e
}

describe('campaign measurement', () => {
  test('the split is the documented hash', () => {
    const e = engine(false, 300)
    const { treatment, control } = e.campaignMembersSync(campaign())
    const ids = [...Array(300)].map((_, i) => `m${String(i).padStart(4, '0')}`)
    assert.deepEqual(control, ids.filter((m) => heldOut(2024, m, 0.25)))
    assert.deepEqual(treatment, ids.filter((m) => !heldOut(2024, m, 0.25)))
    assert.equal(assignmentHash(42, 'alice'), 0xa131bfd835caabf2n)
  })

  test('a planted effect is found', async () => {
    const e = engine(true)
    const r = await e.campaignReport(campaign(), { at: '2024-05-01T00:00:00Z' })
    assert.equal(r.campaignId, 'spring')
    assert.equal(r.complete, true)
    assert.equal(r.targeted, 1000)
    assert.equal(r.treatment.members + r.control.members, r.targeted)
    assert.equal(r.conversionUplift.significant, true)
    assert.ok(Number(r.conversionUplift.low) > 0, JSON.stringify(r.conversionUplift))
    assert.equal(r.revenueUplift.significant, true)
    assert.equal(r.cost.points, 20 * r.treatment.members)
    assert.equal(typeof r.roi, 'string')
    assert.deepEqual(e.campaignReportSync(campaign(), { at: '2024-05-01T00:00:00Z' }), r)
  })

  test('no effect is found where none was planted', async () => {
    const e = engine(false)
    const r = await e.campaignReport(campaign(), { at: new Date('2024-05-01T00:00:00Z') })
    for (const up of [r.conversionUplift, r.revenueUplift]) {
      assert.equal(up.significant, false)
      assert.ok(Number(up.low) <= 0 && Number(up.high) >= 0, JSON.stringify(up))
    }
  })

  test('bad input names the field', async () => {
    const e = engine(false, 10)
    await assert.rejects(e.campaignReport(campaign({ holdout: '1' }), { at: '2024-05-01T00:00:00Z' }), (err) => {
      assert.ok(isCrmError(err))
      assert.equal(err.code, 'validation_error')
      assert.equal(err.field, 'campaign.holdout')
      return true
    })
    assert.throws(
      () => e.campaignReportSync(campaign(), { at: '2024-02-01T00:00:00Z' }),
      (err) => err.code === 'validation_error' && err.field === 'at',
    )
    assert.throws(
      () => e.campaignReportSync(campaign({ seed: 1.5 }), { at: '2024-05-01T00:00:00Z' }),
      (err) => err.code === 'validation_error' && err.field.startsWith('campaign'),
    )
  })
})
