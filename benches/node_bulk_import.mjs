// Bulk import from Node: orders/s for recording an array of synthetic orders
// into the in-memory engine through `recordOrdersSync` (one atomic batch per
// chunk), including the JS -> Rust conversion of every order.
//
//   cd crm-node && npm install && npm run build     # release build
//   node benches/node_bulk_import.mjs [--orders 200000] [--batch 100] [--members 20000]
//
// Defaults match benches/python_bulk_import.py (200,000 orders over 20,000
// members, 100 orders per atomic commit); the pure-Rust figure for the same
// call is `cargo bench --bench ledger -- record_order/memory/batch_100`.
//
// Note: crm-core's Engine::record_orders currently costs O(batch²) (its
// per-order checkpoint copies every member touched so far), so very large
// batches are slower per order than batches of ~100-1000.
//
// Prints one JSON line:
//   {"bench":"node_bulk_import","orders":200000,"seconds":…,"orders_per_s":…,…}

import { createRequire } from 'node:module'
import { parseArgs } from 'node:util'

const require = createRequire(import.meta.url)
const { Engine, Program, version } = require('../crm-node')

const { values } = parseArgs({
  options: {
    orders: { type: 'string', default: '200000' },
    batch: { type: 'string', default: '100' },
    members: { type: 'string', default: '20000' },
  },
})
const N = Number(values.orders)
const BATCH = Number(values.batch)
const MEMBERS = Number(values.members)

// Synthetic orders: deterministic amounts (decimal strings), one per hour.
const start = Date.UTC(2024, 0, 1)
const orders = new Array(N)
let seed = 42
const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648)
for (let i = 0; i < N; i++) {
  const cents = 100 + Math.floor(rand() * 50_000)
  orders[i] = {
    id: `o${i}`,
    memberId: `m${i % MEMBERS}`,
    placedAt: new Date(start + i * 60_000).toISOString(),
    amount: `${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')}`,
  }
}
const now = new Date(start + N * 60_000 + 1000)

const engine = Engine.inMemory(Program.defaultDemo())
let ok = 0
let points = 0
const t0 = process.hrtime.bigint()
for (let i = 0; i < N; i += BATCH) {
  for (const r of engine.recordOrdersSync(orders.slice(i, i + BATCH), { now })) {
    if (!r.ok) throw new Error(`order rejected: ${r.error.message}`)
    ok++
    points += r.outcome.earned.reward ?? 0
  }
}
const seconds = Number(process.hrtime.bigint() - t0) / 1e9

// Second pass: every order is already recorded, so the core only looks up its
// receipt; this bounds the cost of the JS -> Rust conversion per order.
const t1 = process.hrtime.bigint()
for (let i = 0; i < N; i += BATCH) engine.recordOrdersSync(orders.slice(i, i + BATCH), { now })
const replaySeconds = Number(process.hrtime.bigint() - t1) / 1e9
const liability = engine.liabilitySync({ at: now })
if (liability.pointTypes[0].outstanding !== points) throw new Error('liability does not match the points issued')

console.log(
  JSON.stringify({
    bench: 'node_bulk_import',
    binding: `crm-node ${version()}`,
    node: process.version,
    store: 'memory',
    orders: ok,
    batch: BATCH,
    members: MEMBERS,
    seconds: Number(seconds.toFixed(3)),
    orders_per_s: Math.round(ok / seconds),
    points_issued: points,
    idempotent_replay_orders_per_s: Math.round(N / replaySeconds),
  }),
)
