// Recommendations through the Node bindings: the shared fixture
// (scenarios/recommend/basic.json, also run by cargo test and pytest), the
// batch, edge cases (new member, everything bought, k = 0) and errors.

import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { describe, test } from 'node:test'

const require = createRequire(import.meta.url)
const { Recommender, isCrmError } = require('..')

const fixture = JSON.parse(readFileSync(new URL('../../scenarios/recommend/basic.json', import.meta.url), 'utf8'))
const lines = fixture.purchases.map((p) => ({ memberId: p.member_id, sku: p.sku, category: p.category, qty: p.qty }))
const engagements = fixture.engagements.map((e) => ({ memberId: e.member_id, sku: e.sku, kind: e.kind }))
const round4 = (x) => Math.round(x * 1e4) / 1e4

describe('Recommender', () => {
  test('matches the shared fixture (Rust and Python run it too)', async () => {
    for (const c of fixture.cases) {
      const model = await Recommender.fit(lines, engagements, {
        neighbours: c.neighbours,
        excludeBought: c.exclude_bought,
        onePerCategory: c.one_per_category,
      })
      for (const [member, expected] of Object.entries(c.expected)) {
        const got = model.recommend(member, c.k).map((r) => [r.sku, round4(r.score)])
        assert.deepEqual(got, expected, `${c.name} ${member}`)
      }
    }
  })

  test('recommendAll is a Promise of rows in member order', async () => {
    const model = Recommender.fitSync(lines, engagements)
    assert.equal(model.members, 6)
    const rows = await model.recommendAll(2)
    assert.deepEqual(rows.slice(0, 2).map((r) => [r.memberId, r.rank, r.sku]), [
      ['ann', 1, 'lemon'],
      ['ann', 2, 'coffee'],
    ])
    assert.equal(rows.length, 12)
  })

  test('new member, everything bought, k = 0', () => {
    const model = Recommender.fitSync([
      { memberId: 'a', sku: 'x' },
      { memberId: 'a', sku: 'y' },
      { memberId: 'b', sku: 'x' },
      { memberId: 'b', sku: 'y' },
      { memberId: 'c', sku: 'z' },
    ])
    assert.deepEqual(model.recommend('newcomer', 3).map((r) => r.sku), ['x', 'y', 'z'])
    assert.deepEqual(model.recommend('a', 3), [{ sku: 'z', score: 0 }])
    assert.deepEqual(model.recommend('a', 0), [])
    const all = Recommender.fitSync([{ memberId: 'a', sku: 'x' }, { memberId: 'a', sku: 'y' }])
    assert.deepEqual(all.recommend('a', 5), [])
    assert.equal(model.similar('x', 5)[0].sku, 'y')
  })

  test('bad input is a CrmError naming the row or option', async () => {
    const check = (fn, field) => {
      try {
        fn()
        assert.fail('no error')
      } catch (e) {
        assert.ok(isCrmError(e), String(e))
        assert.equal(e.code, 'validation_error')
        assert.equal(e.field, field)
      }
    }
    check(() => Recommender.fitSync([{ memberId: 'a', sku: 'x', qty: 0 }]), 'lines[0].qty')
    check(() => Recommender.fitSync([{ memberId: '', sku: 'x' }]), 'lines[0].memberId')
    check(() => Recommender.fitSync([], [{ memberId: 'a', sku: 'x', kind: 'stare' }]), 'engagements[0].kind')
    check(() => Recommender.fitSync([], [], { neighbours: 0 }), 'neighbours')
    check(() => Recommender.fitSync([], [], { purchaseWeight: 'weird' }), 'purchaseWeight')
    check(() => Recommender.fitSync([], [], { engagementWeights: { browse: -1 } }), 'engagementWeights.browse')
    await assert.rejects(Recommender.fit([{ memberId: 'a', sku: '' }]), (e) => e.code === 'validation_error' && e.field === 'lines[0].sku')
  })
})
