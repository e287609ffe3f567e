// compareProgrammes: the default programme's column equals a replay of the
// same orders through an Engine, and the shared fixture
// (examples/data/whatif_small.json) gives the figures Rust and Python give.

import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
const { Engine, Program, compareProgrammes, isCrmError } = require('..')

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const fixture = JSON.parse(readFileSync(join(repo, 'examples', 'data', 'whatif_small.json'), 'utf8'))
const programs = Object.fromEntries(
  fixture.programs.map((n) => [n.replace('.toml', ''), Program.fromFile(join(repo, 'examples', 'programs', n))]),
)
const orders = fixture.orders.map((o) => ({ id: o.order_id, memberId: o.member_id, amount: o.amount, placedAt: o.placed_at }))
const refunds = fixture.refunds.map((r) => ({ id: r.id, orderId: r.order_id, at: r.at, scope: r.scope }))
const redemptions = fixture.redemptions.map((r) => ({ memberId: r.member_id, points: r.points, at: r.at }))
const camel = (k) => k.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase())

describe('compareProgrammes', () => {
  test('the default column equals an engine replay', async () => {
    const c = await compareProgrammes(orders, { default: programs.default }, { until: fixture.until })
    const f = c.programmes[0]
    const e = Engine.inMemory(Program.defaultDemo())
    for (const o of [...orders].sort((a, b) => a.placedAt.localeCompare(b.placedAt))) {
      e.recordOrderSync(o, { now: o.placedAt })
    }
    e.runDueSync(fixture.until)
    const liability = e.liabilitySync({ at: fixture.until })
    const issued = fixture.orders.reduce((s, o) => s + Math.floor(Number(o.amount)), 0)
    assert.equal(f.pointsIssued, issued)
    assert.equal(f.pointsOutstanding, liability.pointTypes[0].outstanding)
    assert.equal(Number(f.liabilityValue), Number(liability.value))
    assert.equal(f.members, liability.members)
  })

  test('the shared fixture gives the figures of Rust and Python', async () => {
    const c = await compareProgrammes(orders, programs, { refunds, redemptions, until: new Date(fixture.until) })
    assert.deepEqual(
      c.programmes.map((p) => p.label),
      ['default', 'double_points_tiers'],
    )
    for (const p of c.programmes) {
      for (const [k, v] of Object.entries(fixture.expected[p.label])) {
        assert.deepEqual(p[camel(k)], v, `${p.label}.${k}`)
      }
    }
    assert.equal(typeof c.programmes[1].stageDistribution.at_risk, 'number')
  })

  test('bad input names the field', async () => {
    await assert.rejects(compareProgrammes(orders, { default: 'nope' }), (e) => {
      assert.ok(isCrmError(e))
      return e.code === 'validation_error' && e.field === 'programs.default'
    })
    await assert.rejects(compareProgrammes(orders, {}), (e) => e.code === 'validation_error' && e.field === 'programs')
    await assert.rejects(
      compareProgrammes([{ ...orders[0], amount: 1.234 }], programs),
      (e) => e.code === 'validation_error' && e.field === 'orders[0].amount',
    )
    // An order the engine refuses is counted, as a replay would (not an error).
    const c = await compareProgrammes([{ ...orders[0], amount: '-1' }], programs)
    assert.equal(c.programmes[0].ordersRejected, 1)
  })
})
