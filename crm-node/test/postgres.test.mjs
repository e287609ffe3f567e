// The PostgreSQL store from Node: every shared scenario (Promise methods on
// an engine from `await Engine.openPostgres`), persistence across engines,
// and errors. Tests that need a server run only when CRM_TEST_POSTGRES_URL is
// set (e.g. postgresql://postgres@127.0.0.1:5432/test); each uses a fresh
// schema `crm_test_node_<pid>_<n>` and drops it afterwards. The error tests
// that need no server always run.

import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { describe, test } from 'node:test'

import { files, runScenario } from './scenario_runner.mjs'

const require = createRequire(import.meta.url)
const { Engine, Program, isCrmError } = require('..')

const URL_ = process.env.CRM_TEST_POSTGRES_URL ?? ''
const pg = URL_ ? {} : { skip: 'CRM_TEST_POSTGRES_URL not set' }
const UNREACHABLE = 'postgresql://postgres@127.0.0.1:1/test'
const now = '2024-03-01T10:00:00Z'

let n = 0
const freshSchema = () => `crm_test_node_${process.pid}_${++n}`

/** Assert `promise` rejects with a CrmError with `code` (and `field` when given). */
async function rejectsCrm(promise, code, field) {
  assert.ok(promise instanceof Promise, 'returns a Promise')
  await assert.rejects(promise, (e) => {
    assert.ok(isCrmError(e), `a CrmError, got ${e?.stack ?? e}`)
    assert.equal(e.code, code, e.message)
    if (field !== undefined) assert.equal(e.field, field, e.message)
    return true
  })
}

describe('shared scenarios on PostgreSQL', () => {
  for (const file of files) {
    test(file, pg, async () => {
      let engine
      const open = async (program) => {
        engine = await Engine.openPostgres(program, URL_, { schema: freshSchema(), poolSize: 2 })
        return engine
      }
      try {
        assert.ok((await runScenario(file, open, { isAsync: true })) > 0)
      } finally {
        if (engine) await engine.dropStoreSchema()
      }
    })
  }
})

describe('PostgreSQL engines', () => {
  test('state persists across engines; dropStoreSchema removes it', pg, async () => {
    const program = Program.defaultDemo()
    const schema = freshSchema()
    const first = await Engine.openPostgres(program, URL_, { schema })
    try {
      await first.createMember('m1', { now })
      await first.recordOrder({ id: 'o1', memberId: 'm1', amount: '100', placedAt: now }, { now })
      const at = '2024-06-01T00:00:00Z'
      const balance = await first.balance('m1', 'reward', { at })
      // A second engine (its own pool), opened synchronously, sees the same state.
      const second = Engine.openPostgresSync(program, URL_, { schema, poolSize: 1, connectTimeoutMs: 5000 })
      assert.deepEqual(second.balanceSync('m1', 'reward', { at }), balance)
      assert.equal((await second.member('m1')).stats.orders, 1)
    } finally {
      await first.dropStoreSchema()
    }
    const again = Engine.openPostgresSync(program, URL_, { schema })
    try {
      await rejectsCrm(again.member('m1'), 'not_found')
    } finally {
      again.dropStoreSchemaSync()
    }
  })

  test('concurrent Promise calls share the pool', pg, async () => {
    const engine = await Engine.openPostgres(Program.defaultDemo(), URL_, { schema: freshSchema(), poolSize: 4 })
    try {
      const members = Array.from({ length: 40 }, (_, i) => `m${i}`)
      await Promise.all(members.map((m) => engine.createMember(m, { now })))
      await Promise.all(
        members.map((m) => engine.recordOrder({ id: `${m}-o`, memberId: m, amount: '10', placedAt: now }, { now })),
      )
      const counts = await Promise.all(members.map((m) => engine.member(m).then((r) => r.stats.orders)))
      assert.equal(
        counts.reduce((a, b) => a + b, 0),
        40,
      )
    } finally {
      await engine.dropStoreSchema()
    }
  })
})

describe('PostgreSQL errors (no server needed)', () => {
  const program = Program.defaultDemo()

  test('an unreachable server rejects with store_error', async () => {
    await rejectsCrm(Engine.openPostgres(program, UNREACHABLE, { connectTimeoutMs: 5000 }), 'store_error', null)
    assert.throws(
      () => Engine.openPostgresSync(program, UNREACHABLE),
      (e) => isCrmError(e) && e.code === 'store_error' && /connect/.test(e.message),
    )
  })

  test('a malformed URL rejects with store_error', async () => {
    await rejectsCrm(Engine.openPostgres(program, 'postgresql://[::1'), 'store_error')
  })

  for (const [options, field] of [
    [{ schema: '1starts_with_digit' }, 'schema'],
    [{ schema: 'crm"; DROP SCHEMA public; --' }, 'schema'],
    [{ schema: '' }, 'schema'],
    [{ schema: 7 }, 'schema'],
    [{ poolSize: 0 }, 'pool_size'],
    [{ poolSize: 1.5 }, 'pool_size'],
    [{ connectTimeoutMs: -1 }, 'connect_timeout_ms'],
  ]) {
    test(`bad option ${JSON.stringify(options)} is a validation_error on ${field}`, async () => {
      // Options are checked before any connection is attempted.
      await rejectsCrm(Engine.openPostgres(program, UNREACHABLE, options), 'validation_error', field)
      assert.throws(
        () => Engine.openPostgresSync(program, UNREACHABLE, options),
        (e) => isCrmError(e) && e.code === 'validation_error' && e.field === field,
      )
    })
  }

  test('program and url are checked', async () => {
    assert.throws(
      () => Engine.openPostgres({}, UNREACHABLE),
      (e) => isCrmError(e) && e.field === 'program',
    )
    await rejectsCrm(Engine.openPostgres(program, 42), 'validation_error', 'url')
    await rejectsCrm(Engine.openPostgres(program, UNREACHABLE, 'crm'), 'validation_error', 'options')
  })

  test('dropStoreSchema needs a PostgreSQL engine', async () => {
    const engine = Engine.inMemory(program)
    await rejectsCrm(engine.dropStoreSchema(), 'conflict')
    assert.throws(
      () => engine.dropStoreSchemaSync(),
      (e) => isCrmError(e) && e.code === 'conflict',
    )
  })
})

// Debian's PostgreSQL serves this certificate (CN=localhost) when `ssl = on`.
const SNAKEOIL = '/etc/ssl/certs/ssl-cert-snakeoil.pem'
const withParams = (url, params) => `${url}${url.includes('?') ? '&' : '?'}${params}`

describe('PostgreSQL over TLS', () => {
  const program = Program.defaultDemo()

  for (const [params, field] of [
    ['sslmode=allow', 'sslmode'],
    ['sslmode=verify-full', 'sslrootcert'],
    ['sslmode=verify-ca&sslrootcert=/nonexistent/root.pem', 'sslrootcert'],
    ['sslmode=require&sslcert=/etc/client.pem', 'sslkey'],
    ['sslcert=/nonexistent/client.pem&sslkey=/nonexistent/client.key', 'sslcert'],
  ]) {
    test(`${params} is a validation_error on ${field} (no server needed)`, async () => {
      await rejectsCrm(Engine.openPostgres(program, withParams(UNREACHABLE, params)), 'validation_error', field)
    })
  }

  const tls = URL_ && existsSync(SNAKEOIL) ? {} : { skip: `CRM_TEST_POSTGRES_URL not set or ${SNAKEOIL} missing` }
  test('the certificate is checked as sslmode says', tls, async (t) => {
    const schema = freshSchema()
    let engine
    try {
      engine = await Engine.openPostgres(program, withParams(URL_, `sslmode=verify-ca&sslrootcert=${SNAKEOIL}`), {
        schema,
      })
    } catch (e) {
      if (String(e.message).includes('does not support TLS')) return t.skip('the test server does not offer TLS')
      throw e
    }
    try {
      await engine.createMember('m1', { now })
      assert.equal((await engine.member('m1')).id, 'm1')
      if (URL_.includes('127.0.0.1')) {
        // The certificate names `localhost`, not the address connected to.
        const full = `sslmode=verify-full&sslrootcert=${SNAKEOIL}`
        await assert.rejects(Engine.openPostgres(program, withParams(URL_, full)), (e) => {
          assert.ok(isCrmError(e) && e.code === 'store_error', e.message)
          assert.match(e.message, /certificate/)
          return true
        })
        const byName = await Engine.openPostgres(program, withParams(URL_.replace('127.0.0.1', 'localhost'), full), {
          schema,
        })
        assert.equal((await byName.member('m1')).id, 'm1')
      }
    } finally {
      await engine.dropStoreSchema()
    }
  })
})
