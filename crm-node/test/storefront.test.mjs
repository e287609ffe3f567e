// Starts examples/node/storefront.mjs as a child process on an ephemeral
// loopback port (SQLite file in a temp folder) and drives it over HTTP.

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'

const script = fileURLToPath(new URL('../../examples/node/storefront.mjs', import.meta.url))
const tmp = mkdtempSync(join(tmpdir(), 'crm-node-storefront-'))
const db = join(tmp, 'storefront.db')
let child
let base

before(async () => {
  child = spawn(process.execPath, [script, '--port', '0', '--host', '127.0.0.1', '--db', db], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stderr = ''
  child.stderr.on('data', (d) => (stderr += d))
  base = await new Promise((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => reject(new Error(`storefront did not start: ${stderr}`)), 20_000)
    child.stdout.on('data', (d) => {
      out += d
      const m = out.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/)
      if (m) {
        clearTimeout(timer)
        resolve(m[1])
      }
    })
    child.on('exit', (code) => reject(new Error(`storefront exited with ${code}: ${stderr}`)))
  })
})

after(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child.on('exit', r))
    child.kill('SIGTERM')
    await exited
  }
  rmSync(tmp, { recursive: true, force: true })
})

async function http(method, path, body, headers = {}) {
  const init = { method, headers: { ...headers } }
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json'
    init.body = typeof body === 'string' ? body : JSON.stringify(body)
  }
  const res = await fetch(base + path, init)
  return { status: res.status, body: await res.json() }
}

const placedAt = new Date().toISOString()

describe('storefront over loopback', () => {
  test('health', async () => {
    assert.deepEqual(await http('GET', '/health'), { status: 200, body: { ok: true } })
  })

  test('record an order, then read the balance', async () => {
    const r = await http('POST', '/orders', { id: 'o1', memberId: 'alice', placedAt, amount: '250.40' })
    assert.equal(r.status, 201, JSON.stringify(r.body))
    assert.equal(r.body.type, 'order')
    assert.deepEqual(r.body.earned, { reward: 250 })
    const b = await http('GET', '/members/alice/balance')
    assert.deepEqual(b, { status: 200, body: { available: 250, pending: 0, debt: 0 } })
    assert.ok(statSync(db).size > 0, 'the SQLite file holds the data')
  })

  test('recording the same order again is idempotent', async () => {
    const r = await http('POST', '/orders', { id: 'o1', memberId: 'alice', placedAt, amount: '250.40' })
    assert.equal(r.status, 201)
    const b = await http('GET', '/members/alice/balance?pointType=reward')
    assert.equal(b.body.available, 250)
  })

  test('redeem with an Idempotency-Key header; a retry returns the first result', async () => {
    const first = await http('POST', '/members/alice/redeem', { points: 100 }, { 'idempotency-key': 'checkout-1' })
    assert.equal(first.status, 201, JSON.stringify(first.body))
    assert.equal(first.body.type, 'redemption')
    assert.equal(first.body.points, 100)
    const retry = await http('POST', '/members/alice/redeem', { points: 100 }, { 'idempotency-key': 'checkout-1' })
    assert.deepEqual(retry, first)
    const b = await http('GET', '/members/alice/balance')
    assert.equal(b.body.available, 150)
  })

  test('redeem with the key in the body', async () => {
    const r = await http('POST', '/members/alice/redeem', { points: 50, pointType: 'reward', idempotencyKey: 'checkout-2' })
    assert.equal(r.status, 201)
    assert.equal((await http('GET', '/members/alice/balance')).body.available, 100)
  })

  test('400: validation errors carry code and field', async () => {
    let r = await http('POST', '/orders', { id: 'o2', memberId: 'alice', placedAt, amount: '-3' })
    assert.equal(r.status, 400)
    assert.deepEqual([r.body.error.code, r.body.error.field], ['validation_error', 'order.amount'])
    r = await http('POST', '/orders', { id: 'o3', memberId: 'alice', placedAt, amount: 0.1 + 0.2 })
    assert.deepEqual([r.status, r.body.error.field], [400, 'order.amount'])
    r = await http('POST', '/members/alice/redeem', { points: 'lots' }, { 'idempotency-key': 'bad-1' })
    assert.deepEqual([r.status, r.body.error.code, r.body.error.field], [400, 'validation_error', 'points'])
    r = await http('POST', '/members/alice/redeem', { points: 5 })
    assert.deepEqual([r.status, r.body.error.field], [400, 'idempotency_key'])
    r = await http('GET', '/members/alice/balance?at=yesterday')
    assert.deepEqual([r.status, r.body.error.field], [400, 'at'])
    r = await http('POST', '/orders', '{"id": ')
    assert.deepEqual([r.status, r.body.error.code], [400, 'invalid_json'])
  })

  test('404: unknown member and unknown route', async () => {
    let r = await http('GET', '/members/ghost/balance')
    assert.deepEqual([r.status, r.body.error.code], [404, 'not_found'])
    r = await http('POST', '/members/ghost/redeem', { points: 1 }, { 'idempotency-key': 'g-1' })
    assert.deepEqual([r.status, r.body.error.code], [404, 'not_found'])
    r = await http('GET', '/nowhere')
    assert.equal(r.status, 404)
  })

  test('409: insufficient points and a key reused for another command', async () => {
    let r = await http('POST', '/members/alice/redeem', { points: 10_000 }, { 'idempotency-key': 'big-1' })
    assert.deepEqual([r.status, r.body.error.code], [409, 'insufficient_points'])
    r = await http('POST', '/members/alice/redeem', { points: 7 }, { 'idempotency-key': 'checkout-1' })
    assert.deepEqual([r.status, r.body.error.code], [409, 'conflict'])
    assert.equal((await http('GET', '/members/alice/balance')).body.available, 100)
  })

  test('405 on a wrong method', async () => {
    const r = await http('GET', '/orders')
    assert.equal(r.status, 405)
  })

  test('concurrent redemptions never overspend', async () => {
    await http('POST', '/orders', { id: 'o-bob', memberId: 'bob', placedAt, amount: '100.00' })
    const rs = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        http('POST', '/members/bob/redeem', { points: 10 }, { 'idempotency-key': `bob-${i}` }),
      ),
    )
    const ok = rs.filter((r) => r.status === 201).length
    assert.equal(ok, 10)
    assert.ok(rs.every((r) => r.status === 201 || r.body.error.code === 'insufficient_points'))
    assert.equal((await http('GET', '/members/bob/balance')).body.available, 0)
  })
})
