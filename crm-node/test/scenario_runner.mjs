// The shared-scenario runner (../../scenarios/*.json, format in
// scenarios/README.md) over the native camelCase API, used by
// scenarios.test.mjs (in-memory and SQLite engines) and postgres.test.mjs.
// Mirrors crm-core/tests/it/scenarios.rs: each command `type` maps onto its
// own method with the step's key as idempotency key, and `expect` is a subset
// match with decimal-aware string equality.

import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
const { Program, isCrmError } = require('..')

export const dir = fileURLToPath(new URL('../../scenarios/', import.meta.url))
export const files = readdirSync(dir)
  .filter((f) => f.endsWith('.json'))
  .sort()

// ----- key conversion (mirrors crm-node/src/convert.rs) ---------------------

/** Maps keyed by data whose whole subtree keeps its keys. */
const VERBATIM = new Set([
  'attributes',
  'earned',
  'awarded',
  'moved',
  'debts',
  'shortfalls',
  'bonus_counts',
  'rule_days',
  'last_activity',
  'returned',
  'clawed',
  'bonus',
  'expired',
  'bonus_expired',
  'custom',
  'payload',
  'counts',
])
/** Maps keyed by data (ids, channels) whose values are structured. */
const KEYED = new Set(['orders', 'redemptions', 'consents', 'contacts', 'tickets', 'reviews', 'surveys'])

const camel = (k) => k.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase())

/** The camelCase form of a core JSON value, as the binding reads and writes it. */
export function camelize(value, mode = 'fields') {
  if (Array.isArray(value)) return value.map((v) => camelize(v, mode))
  if (value === null || typeof value !== 'object') return value
  const out = {}
  for (const [k, v] of Object.entries(value)) {
    if (mode === 'verbatim') out[k] = v
    else if (mode === 'keyed') out[k] = camelize(v, 'fields')
    else if (VERBATIM.has(k)) out[camel(k)] = v
    else if (KEYED.has(k)) out[camel(k)] = camelize(v, 'keyed')
    else if (k === 'clear' && Array.isArray(v)) out[k] = v.map((f) => (typeof f === 'string' ? camel(f) : f))
    else out[camel(k)] = camelize(v, 'fields')
  }
  return out
}

// ----- subset match (mirrors `matches` in the Rust runner) --------------------

const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)$/

function normDecimal(s) {
  let t = s.trim()
  let neg = false
  if (t[0] === '+' || t[0] === '-') {
    neg = t[0] === '-'
    t = t.slice(1)
  }
  let [int, frac = ''] = t.split('.')
  int = int.replace(/^0+/, '') || '0'
  frac = frac.replace(/0+$/, '')
  const body = frac ? `${int}.${frac}` : int
  return body === '0' ? '0' : (neg ? '-' : '') + body
}

export function matches(expected, actual, path = '$') {
  if (actual === undefined) actual = null
  if (expected !== null && typeof expected === 'object' && !Array.isArray(expected)) {
    if (actual === null || typeof actual !== 'object' || Array.isArray(actual)) {
      throw new Error(`${path}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`)
    }
    for (const [k, ev] of Object.entries(expected)) matches(ev, actual[k], `${path}.${k}`)
    return
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual) || actual.length !== expected.length) {
      const n = Array.isArray(actual) ? actual.length : 'no array'
      throw new Error(`${path}: expected ${expected.length} elements, got ${n}: ${JSON.stringify(actual)}`)
    }
    expected.forEach((ev, i) => matches(ev, actual[i], `${path}[${i}]`))
    return
  }
  if (typeof expected === 'string' && typeof actual === 'string' && expected !== actual) {
    if (DECIMAL.test(expected) && DECIMAL.test(actual) && normDecimal(expected) === normDecimal(actual)) return
    throw new Error(`${path}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`)
  }
  if (expected !== actual) {
    throw new Error(`${path}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`)
  }
}

// ----- commands and queries onto the native API --------------------------------

/** Call `name` (Promise variant) or `nameSync`. */
async function call(engine, isAsync, name, ...args) {
  if (isAsync) {
    const p = engine[name](...args)
    assert.ok(p instanceof Promise, `${name} returns a Promise`)
    return await p
  }
  return engine[`${name}Sync`](...args)
}

const COMMANDS = {
  create_member: (c, o) => [
    'createMember',
    c.member_id,
    {
      ...o,
      profile: camelize(c.profile),
      identities: camelize(c.identities),
      tags: c.tags,
      consents: c.consents,
    },
  ],
  update_profile: (c, o) => ['updateProfile', c.member_id, camelize(c.patch), o],
  link_identity: (c, o) => ['linkIdentity', c.member_id, camelize(c.identity), o],
  unlink_identity: (c, o) => ['unlinkIdentity', c.member_id, camelize(c.identity), o],
  add_tag: (c, o) => ['addTag', c.member_id, c.tag, o],
  remove_tag: (c, o) => ['removeTag', c.member_id, c.tag, o],
  set_consent: (c, o) => ['setConsent', c.member_id, c.channel, c.granted, o],
  record_order: (c, o) => ['recordOrder', camelize(c.order), o],
  set_order_status: (c, o) => ['setOrderStatus', c.order_id, c.status, { ...o, at: c.at }],
  record_refund: (c, o) => ['recordRefund', camelize(c.refund), o],
  record_action: (c, o) => ['recordAction', c.member_id, c.action, c.reference, o],
  redeem: (c, o) => ['redeem', c.member_id, c.points, { ...o, pointType: c.point_type, reason: c.reason }],
  reverse_redemption: (c, o) => ['reverseRedemption', c.member_id, c.redemption_id, o],
  adjust: (c, o) => [
    'adjust',
    c.member_id,
    c.delta,
    { ...o, pointType: c.point_type, reason: c.reason, actor: c.actor },
  ],
  merge: (c, o) => ['merge', c.survivor, c.merged, o],
  erase: (c, o) => ['erase', c.member_id, o],
  run_due: (c, o) => ['runDue', o.now, { idempotencyKey: o.idempotencyKey }],
  assign_tier: (c, o) => [
    'assignTier',
    c.member_id,
    c.tier,
    { ...o, until: c.until, reason: c.reason, actor: c.actor },
  ],
  record_engagement: (c, o) => [
    'recordEngagement',
    c.member_id,
    c.kind,
    { ...o, at: c.at, sku: c.sku, reference: c.reference },
  ],
  // The scenario fixes the code; the native `issueCoupon` draws a random one.
  issue_coupon: (c, o) => ['execute', o.idempotencyKey, c, o.now],
  redeem_coupon: (c, o) => ['redeemCoupon', c.member_id, c.code, c.order_id, o],
  revoke_coupon: (c, o) => ['revokeCoupon', c.member_id, c.code, { ...o, reason: c.reason }],
  record_contact: (c, o) => [
    'recordContact',
    c.member_id,
    c.contact_id,
    { ...o, channel: c.channel, topic: c.topic, startedAt: c.started_at, endedAt: c.ended_at },
  ],
  open_ticket: (c, o) => [
    'openTicket',
    c.member_id,
    c.ticket_id,
    c.kind,
    { ...o, at: c.at, orderId: c.order_id, subject: c.subject },
  ],
  update_ticket: (c, o) => ['updateTicket', c.member_id, c.ticket_id, c.status, { ...o, at: c.at }],
  record_review: (c, o) => [
    'recordReview',
    c.member_id,
    c.review_id,
    c.rating,
    { ...o, text: c.text, sku: c.sku, orderId: c.order_id, at: c.at },
  ],
  record_survey: (c, o) => [
    'recordSurvey',
    c.member_id,
    c.survey_id,
    c.kind,
    c.score,
    { ...o, at: c.at, ticketId: c.ticket_id, comment: c.comment },
  ],
}

const QUERIES = {
  balance: (q, now) => ['balance', q.member_id, q.point_type, { at: q.at ?? now }],
  lots: (q) => (q.at ? ['lots', q.member_id, { at: q.at }] : ['lots', q.member_id]),
  statement: (q) => ['statement', q.member_id, q.point_type, { offset: q.offset, limit: q.limit }],
  expiring: (q, now) => ['expiring', q.member_id, q.point_type, { at: now, days: q.days }],
  liability: (q, now) => ['liability', { at: now }],
  member: (q) => ['member', q.member_id],
  find_by_identity: (q) => ['findByIdentity', q.channel, q.external_id],
  tier: (q, now) => ['tier', q.member_id, { at: q.at ?? now }],
  tier_history: (q) => ['tierHistory', q.member_id],
  tier_distribution: (q, now) => ['tierDistribution', { at: q.at ?? now }],
  stage: (q, now) => ['stage', q.member_id, { at: q.at ?? now }],
  stage_history: (q) => ['stageHistory', q.member_id],
  stage_distribution: (q, now) => ['stageDistribution', { at: q.at ?? now }],
  stage_transitions: (q) => ['stageTransitions', q.from, q.to],
  report: (q, now) => ['report', { at: q.at ?? now }],
  segment: (q, now) => ['segment', q.rule, { at: q.at ?? now }],
  matches: (q, now) => ['matches', q.member_id, q.rule, { at: q.at ?? now }],
  refresh_segment: (q, now) => ['refreshSegment', q.segment, { at: q.at ?? now }],
  reschedule: (q, now) => ['reschedule', now],
  campaign_members: (q) => ['campaignMembers', camelize(q.campaign)],
  campaign_report: (q, now) => ['campaignReport', camelize(q.campaign), { at: q.at ?? now }],
  coupons: (q, now) => ['coupons', q.member_id, { now: q.at ?? now }],
  quote: (q, now) => ['quote', q.member_id, camelize(q.cart), { now: q.at ?? now }],
  coupon_usage: (q) => ['couponUsage', q.template],
  feedback: (q) => ['feedback', q.member_id],
  feedback_report: (q, now) => [
    'feedbackReport',
    {
      at: q.at ?? now,
      from: q.from,
      segments: Object.fromEntries((q.segments ?? []).map((s) => [s.name, s.rule])),
    },
  ],
}

/** Queries whose result is a map keyed by data (tier ids, stages): keys unchanged. */
const VERBATIM_RESULTS = new Set(['tier_distribution', 'stage_distribution'])

/**
 * Run scenario `file` on the engine `engineFor(program)` returns (an `Engine`
 * or a Promise of one), with the Promise methods when `isAsync`, else the
 * …Sync ones. The programme is built from the scenario's object, or from its
 * JSON text when `programFrom` is `'json'`. Returns the number of steps.
 */
export async function runScenario(file, engineFor, { isAsync, programFrom = 'object' }) {
  const text = readFileSync(join(dir, file), 'utf8')
  const sc = JSON.parse(text)
  assert.ok(Array.isArray(sc.steps), 'steps must be an array')
  const programOf = (spec) =>
    programFrom === 'json' ? Program.fromJson(JSON.stringify(spec)) : Program.fromObject(spec)
  let engine = await engineFor(programOf(sc.program))
  for (const [i, step] of sc.steps.entries()) {
    const where = `step ${i}`
    if (step.program) {
      // The same store under a changed programme, as a host restarted with it.
      engine = engine.withProgram(programOf(step.program))
      continue
    }
    let result
    let error = null
    // Alternate Date objects and ISO strings so both input forms are exercised.
    const now = i % 2 === 0 ? step.now : new Date(step.now)
    let name
    let args
    let mode = 'fields'
    if (step.command) {
      assert.equal(typeof step.key, 'string', `${where}: command steps need a key`)
      const map = COMMANDS[step.command.type]
      assert.ok(map, `${where}: no Node mapping for command type ${JSON.stringify(step.command.type)}`)
      ;[name, ...args] = map(step.command, { now, idempotencyKey: step.key })
    } else if (step.query) {
      const map = QUERIES[step.query.type]
      assert.ok(map, `${where}: no Node mapping for query type ${JSON.stringify(step.query.type)}`)
      ;[name, ...args] = map(step.query, now)
      if (VERBATIM_RESULTS.has(step.query.type)) mode = 'verbatim'
    } else {
      assert.fail(`${where}: needs command or query`)
    }
    try {
      result = await call(engine, isAsync, name, ...args)
    } catch (e) {
      if (!isCrmError(e)) throw new Error(`${where}: ${name} threw a non-CrmError: ${e?.stack ?? e}`)
      error = e
    }
    if (step.error) {
      if (!error) assert.fail(`${where}: expected error ${JSON.stringify(step.error)}, got ${JSON.stringify(result)}`)
      assert.ok(error instanceof Error, `${where}: errors are Error objects`)
      matches(step.error, { code: error.code, field: error.field, message: error.message }, `${where}: error`)
    } else {
      if (error) assert.fail(`${where}: unexpected error ${error.message} (${error.code}, field ${error.field})`)
      if (step.expect !== undefined) matches(camelize(step.expect, mode), result, `${where}: $`)
    }
  }
  return sc.steps.length
}
