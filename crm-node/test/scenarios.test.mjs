// Runs every shared scenario (../../scenarios/*.json) through the native
// camelCase API (see scenario_runner.mjs): once on the in-memory engine with
// the …Sync methods, once on a SQLite file engine with the Promise methods.
// The same scenarios run on PostgreSQL in postgres.test.mjs.

import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'

import { camelize, dir, files, matches, runScenario } from './scenario_runner.mjs'

const require = createRequire(import.meta.url)
const { Engine } = require('..')

const tmp = mkdtempSync(join(tmpdir(), 'crm-node-scenarios-'))
after(() => rmSync(tmp, { recursive: true, force: true }))

test('the scenarios folder holds scenarios', () => {
  assert.ok(files.length > 0, `no scenarios in ${dir}`)
})

for (const file of files) {
  describe(file, () => {
    test('in-memory engine, sync methods', async () => {
      assert.ok((await runScenario(file, (program) => Engine.inMemory(program), { isAsync: false })) > 0)
    })

    test('SQLite file engine, Promise methods', async () => {
      // The programme goes through the JSON text path here.
      const open = (program) => Engine.openSqlite(program, join(tmp, `${file}.sqlite`))
      assert.ok((await runScenario(file, open, { isAsync: true, programFrom: 'json' })) > 0)
    })
  })
}

describe('the runner itself', () => {
  test('subset match: decimal strings, arrays, missing keys', () => {
    matches({ a: '12.5' }, { a: '12.50', b: 1 })
    matches({ a: '-0.0' }, { a: '0' })
    matches({ a: [1, { b: 2 }] }, { a: [1, { b: 2, c: 3 }] })
    matches({ a: null }, {})
    assert.throws(() => matches({ a: '12.5' }, { a: '12.51' }), /expected "12.5"/)
    assert.throws(() => matches({ a: [1] }, { a: [1, 2] }), /expected 1 elements, got 2/)
    assert.throws(() => matches({ a: 1 }, {}), /expected 1, got null/)
    assert.throws(() => matches({ a: 'x' }, { a: 'y' }))
    assert.throws(() => matches({ a: { b: 1 } }, { a: 5 }))
    assert.throws(() => matches({ a: 1 }, { a: '1' }))
  })
  test('camelize keeps data-keyed maps', () => {
    assert.deepEqual(
      camelize({
        member_id: 'm',
        earned: { growth_pts: 1 },
        orders: { order_1: { refunded: '0', order: { placed_at: 't' } } },
        profile: { attributes: { shoe_size: 1 }, join_channel: 'x' },
        clear: ['join_channel'],
      }),
      {
        memberId: 'm',
        earned: { growth_pts: 1 },
        orders: { order_1: { refunded: '0', order: { placedAt: 't' } } },
        profile: { attributes: { shoe_size: 1 }, joinChannel: 'x' },
        clear: ['joinChannel'],
      },
    )
  })
})
