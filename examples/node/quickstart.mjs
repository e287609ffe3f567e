// Quick start for Node.js: replay the CDNOW sample through the loyalty engine,
// month by month — the same run as the Rust demo (`cargo run --release --example demo`).
//
//   cd crm-node && npm install && npm run build   # once: builds the native addon
//   node examples/node/quickstart.mjs [path/to/CDNOW_sample.txt] [path/to/demo.db]
//
// Reads examples/data/CDNOW_sample.txt (2,357 CDNOW customers, 6,919 purchases,
// January 1997 to June 1998) into an embedded SQLite database under
// Program.defaultDemo(): one reward point per full 1.00 USD of order amount,
// rounded down per order, each lot valid for 365 days.
//
// At each month end it
//   1. records the month's orders in one atomic batch (engine.recordOrders),
//   2. runs what is due (engine.runDue: lots older than 365 days expire),
//   3. lets every member holding at least 200 available points redeem 100 of
//      them, with an idempotency key per member and month,
// then prints members, orders, points issued / redeemed / expired, the
// outstanding liability and the top members by spend.
//
// Every store-backed call uses the Promise API, as a server would.

import { mkdirSync, readFileSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
/** `crm-node` when installed (npm install <repo>/crm-node), else the sibling folder of this repository. */
function loadCrm() {
  try {
    return require('crm-node')
  } catch (e) {
    if (e.code !== 'MODULE_NOT_FOUND') throw e
    return require('../../crm-node')
  }
}
const { Engine, Program } = loadCrm()

const here = dirname(fileURLToPath(import.meta.url))
const dataFile = process.argv[2] ?? join(here, '..', 'data', 'CDNOW_sample.txt')
const POINT_TYPE = 'reward'
const REDEEM_THRESHOLD = 200
const REDEEM_POINTS = 100

/** `master_id sample_id YYYYMMDD n_cds dollar_value`; each purchase is a paid order at noon UTC. */
function readOrders(path) {
  const orders = []
  readFileSync(path, 'utf8')
    .split(/\r?\n/)
    .forEach((line, i) => {
      const f = line.trim().split(/\s+/)
      if (f.length === 1 && f[0] === '') return
      if (f.length !== 5) throw new Error(`${path}:${i + 1}: expected 5 columns, got ${f.length}`)
      const [member, , date, , value] = f
      const placedAt = `${date.slice(0, 4)}-${date.slice(4, 6)}-${date.slice(6, 8)}T12:00:00Z`
      // Money stays a decimal string end to end.
      orders.push({ id: `cdnow-${i + 1}`, memberId: member, placedAt, amount: value })
    })
  return orders
}

/** First instant of the month after the one containing `t`. */
function monthEnd(t) {
  const d = new Date(t)
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1))
}

const pad = (v, n) => String(v).padStart(n)
const outstandingPoints = (l) => l.pointTypes.filter((t) => t.spendable).reduce((s, t) => s + t.outstanding, 0)

async function main() {
  const started = performance.now()
  const orders = readOrders(dataFile).sort((a, b) => (a.placedAt < b.placedAt ? -1 : a.placedAt > b.placedAt ? 1 : 0))
  if (orders.length === 0) throw new Error('the sample file has no orders')

  const dbDir = join(tmpdir(), 'crm-demo-node')
  rmSync(dbDir, { recursive: true, force: true })
  mkdirSync(dbDir, { recursive: true })
  const db = process.argv[3] ?? join(dbDir, 'demo.db')
  const program = Program.defaultDemo()
  const engine = Engine.openSqlite(program, db)

  const first = orders[0].placedAt
  const last = orders[orders.length - 1].placedAt
  console.log(`CDNOW sample: ${orders.length} purchases, ${first.slice(0, 10)} to ${last.slice(0, 10)}`)
  console.log(
    `Programme "${program.name}": 1 ${POINT_TYPE} point per full 1.00 ${program.currency}, ` +
      'rounded down per order, lots expire after 365 days',
  )
  console.log(`Store: SQLite at ${db}`)
  console.log()
  console.log('month      orders  issued  redeemed  expired  outstanding')

  const totals = { orders: 0, rejected: 0, issued: 0, redeemed: 0, redemptions: 0, expired: 0 }
  const members = new Set()
  let rest = 0
  let end = monthEnd(first)
  for (;;) {
    // 1. The month's orders, in one atomic batch.
    let n = 0
    while (rest + n < orders.length && new Date(orders[rest + n].placedAt) < end) n++
    const month = orders.slice(rest, rest + n)
    rest += n
    let issued = 0
    let redeemed = 0
    if (month.length > 0) {
      const results = await engine.recordOrders(month, { now: end })
      results.forEach((r, i) => {
        if (r.ok) {
          totals.orders++
          issued += r.outcome.earned[POINT_TYPE] ?? 0
          members.add(month[i].memberId)
        } else {
          totals.rejected++
          console.error(`quickstart: order ${month[i].id} rejected: ${r.error.message}`)
        }
      })
    }

    // 2. Expire what is due at the month end.
    const due = await engine.runDue(end)

    // 3. Members with enough points redeem some, once per month (the key says which month).
    const label = new Date(end.getTime() - 86_400_000).toISOString().slice(0, 7)
    const ids = [...members].sort()
    const balances = await Promise.all(ids.map((id) => engine.balance(id, POINT_TYPE, { at: end })))
    for (const [i, id] of ids.entries()) {
      if (balances[i].available < REDEEM_THRESHOLD) continue
      const r = await engine.redeem(id, REDEEM_POINTS, {
        now: end,
        pointType: POINT_TYPE,
        idempotencyKey: `demo-redeem:${id}:${label}`,
      })
      redeemed += r.points
      totals.redemptions++
    }

    totals.issued += issued
    totals.redeemed += redeemed
    totals.expired += due.expired
    const outstanding = outstandingPoints(await engine.liability({ at: end }))
    console.log(
      `${label}  ${pad(month.length, 8)}  ${pad(issued, 6)}  ${pad(redeemed, 8)}  ${pad(due.expired, 7)}  ${pad(outstanding, 11)}`,
    )
    if (rest >= orders.length) break
    end = monthEnd(end)
  }

  // Summary.
  const liability = await engine.liability({ at: end })
  const outstanding = outstandingPoints(liability)
  const ids = [...members].sort()
  const states = await Promise.all(ids.map((id) => engine.member(id)))
  const balances = await Promise.all(ids.map((id) => engine.balance(id, POINT_TYPE, { at: end })))
  // Money is summed in integer cents: decimal strings never pass through floats.
  const cents = (s) => {
    const [i, f = ''] = s.split('.')
    return BigInt(i) * 100n + BigInt((f + '00').slice(0, 2)) * (s.startsWith('-') ? -1n : 1n)
  }
  const money = (c) => `${c / 100n}.${String(c % 100n).padStart(2, '0')}`
  let spend = 0n
  let repeat = 0
  const top = states.map((m, i) => {
    spend += cents(m.stats.spend)
    if (m.stats.orders >= 2) repeat++
    return { id: m.id, orders: m.stats.orders, spend: cents(m.stats.spend), available: balances[i].available }
  })
  top.sort((a, b) => (a.spend === b.spend ? (a.id < b.id ? -1 : 1) : a.spend > b.spend ? -1 : 1))

  console.log()
  console.log(`Summary at ${end.toISOString()}`)
  console.log(`  members              ${pad(liability.members, 10)}   (${repeat} bought more than once)`)
  console.log(`  orders               ${pad(totals.orders, 10)}   (${totals.rejected} rejected)`)
  console.log(`  spend                ${pad(money(spend), 10)}   ${program.currency}`)
  console.log(`  points issued        ${pad(totals.issued, 10)}`)
  console.log(`  points redeemed      ${pad(totals.redeemed, 10)}   (${totals.redemptions} redemptions of ${REDEEM_POINTS})`)
  console.log(`  points expired       ${pad(totals.expired, 10)}`)
  const vpp = program.toJSON().value_per_point
  console.log(
    `  outstanding          ${pad(outstanding, 10)}   points, worth ${liability.value} ${program.currency} at ${vpp} per point`,
  )
  const balanced = totals.issued === totals.redeemed + totals.expired + outstanding
  console.log(`  check                issued = redeemed + expired + outstanding: ${balanced ? 'ok' : 'MISMATCH'}`)
  console.log()
  console.log('Top 5 members by spend')
  console.log('  member   orders       spend  available points')
  for (const m of top.slice(0, 5)) {
    console.log(`  ${m.id.padEnd(7)} ${pad(m.orders, 7)} ${pad(money(m.spend), 11)} ${pad(m.available, 17)}`)
  }
  console.log()
  console.log(`Done in ${((performance.now() - started) / 1000).toFixed(2)} s.`)
  if (!balanced) throw new Error('the ledger does not balance')
}

main().catch((e) => {
  console.error(`quickstart: ${e.code ? `[${e.code}${e.field ? ` ${e.field}` : ''}] ` : ''}${e.message}`)
  process.exit(1)
})
