// Service and feedback records over the camelCase API: contacts, tickets (the
// status table, resolution minutes), reviews with the review bonus, CSAT and
// NPS surveys, the rule fields, the triggers and the report; Promise and
// …Sync variants and typed errors. The rules live in crm-core; this checks
// the conversions.

import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { test } from 'node:test'

const require = createRequire(import.meta.url)
const { Engine, Program } = require('..')

const doc = {
  version: 1,
  name: 'Feedback',
  timezone: 'Asia/Shanghai',
  currency: 'CNY',
  point_types: [{ id: 'reward' }],
  earn: {
    rules: [{ id: 'base', point_type: 'reward', points_per_unit: '1' }],
    bonuses: [{ id: 'rv', action: 'review', point_type: 'reward', points: 10, max_per_member: 1 }],
  },
  tiers: { window: { type: 'calendar_year' }, levels: [{ id: 'member' }, { id: 'gold', entry: { spend: '500' } }] },
  outreach: {
    triggers: [
      { id: 'recovery', when: { type: 'low_rating', max_rating: 2, max_nps: 6 }, channels: ['sms'], marketing: false },
      { id: 'ask', when: { type: 'ticket_closed', delay_minutes: 30 }, channels: ['app'] },
    ],
  },
}

const t = (day, hour = 0, minute = 0) => new Date(Date.UTC(2024, 2, day, hour, minute))

function engine() {
  const e = Engine.inMemory(Program.fromObject(doc))
  e.createMemberSync('ann', { now: t(1), consents: { app: true } })
  e.createMemberSync('bob', { now: t(1) })
  return e
}

test('tickets move along the status table with typed errors', async () => {
  const e = engine()
  const opened = await e.openTicket('ann', 't1', 'return', { now: t(2, 1), subject: 'Zip broken', orderId: 'o-9' })
  assert.deepEqual(opened, { type: 'ticket', memberId: 'ann', ticketId: 't1', status: 'open', resolutionMinutes: null })
  await e.updateTicket('ann', 't1', 'in_progress', { now: t(2, 2) })
  const done = e.updateTicketSync('ann', 't1', 'resolved', { now: t(2, 5), at: t(2, 4, 30) })
  assert.equal(done.resolutionMinutes, 210)
  assert.throws(
    () => e.updateTicketSync('ann', 't1', 'waiting_customer', { now: t(2, 6) }),
    (err) => err.code === 'validation_error' && err.field === 'status' && /resolved to waiting_customer/.test(err.message),
  )
  await assert.rejects(e.updateTicket('ann', 't1', 'done', { now: t(2, 6) }), { code: 'validation_error', field: 'status' })
  assert.throws(() => e.updateTicketSync('ann', 't1', 'closed', { now: t(2, 6), at: t(2, 4) }), { field: 'at' })
  assert.throws(() => e.updateTicketSync('ann', 'nope', 'closed', { now: t(2, 6) }), { code: 'not_found' })
  e.updateTicketSync('ann', 't1', 'closed', { now: t(2, 6) })
  const ticket = (await e.feedback('ann')).tickets.t1
  assert.equal(ticket.orderId, 'o-9')
  assert.equal(ticket.resolvedAt, '2024-03-02T04:30:00Z')
  assert.deepEqual(
    ticket.history.map((c) => [c.from, c.to]),
    [
      ['open', 'in_progress'],
      ['in_progress', 'resolved'],
      ['resolved', 'closed'],
    ],
  )
  const due = await e.runDue(t(2, 7))
  assert.deepEqual(
    due.outreach.map((o) => [o.trigger, o.occurrence, o.payload.resolution_minutes]),
    [['ask', 't1', 210]],
  )
})

test('reviews and surveys are idempotent by id and checked with the field', async () => {
  const e = engine()
  const first = await e.recordReview('ann', 'r1', 2, { now: t(3), text: 'Too small', sku: 'sku-1' })
  assert.deepEqual(first.awarded, { reward: 10 })
  const again = e.recordReviewSync('ann', 'r1', 2, { now: t(3), text: 'Too small', sku: 'sku-1', idempotencyKey: 'imp-1' })
  assert.deepEqual(again, first)
  assert.throws(() => e.recordReviewSync('ann', 'r1', 5, { now: t(3), idempotencyKey: 'imp-2' }), { code: 'conflict' })
  for (const rating of [0, 6, 2.5]) {
    assert.throws(() => e.recordReviewSync('ann', `bad${rating}`, rating, { now: t(3) }), { field: 'rating' })
  }
  const s = await e.recordSurvey('ann', 's1', 'nps', 0, { now: t(4), comment: 'never again' })
  assert.deepEqual([s.type, s.kind, s.score], ['survey_recorded', 'nps', 0])
  assert.throws(() => e.recordSurveySync('ann', 's2', 'csat', 6, { now: t(4) }), { field: 'score' })
  assert.throws(() => e.recordSurveySync('ann', 's3', 'ces', 3, { now: t(4) }), { field: 'kind' })
  const c = await e.recordContact('ann', 'c_1', { channel: 'chat', topic: 'sizing', startedAt: t(4, 1), endedAt: t(4, 2), now: t(4, 3) })
  assert.equal(c.contactId, 'c_1')
  assert.throws(
    () => e.recordContactSync('ann', 'c2', { channel: 'chat', topic: 'x', startedAt: t(4, 2), endedAt: t(4, 1), now: t(4, 3) }),
    { field: 'ended_at' },
  )
  const f = e.feedbackSync('ann')
  // Record ids are keys: kept as given (not camelCased).
  assert.deepEqual(Object.keys(f.contacts), ['c_1'])
  assert.equal(f.contacts.c_1.startedAt, '2024-03-04T01:00:00Z')
  assert.equal(f.reviews.r1.text, 'Too small')
  // The low review and the NPS of 0 each start recovery once.
  const due = e.runDueSync(t(4, 4))
  assert.deepEqual(due.outreach.map((o) => o.occurrence).sort(), ['review:r1', 'survey:s1'])
})

test('rule fields and the report', async () => {
  const e = engine()
  e.recordOrderSync({ id: 'o1', memberId: 'ann', amount: '600', placedAt: t(2) }, { now: t(2) })
  e.recordSurveySync('ann', 'a1', 'csat', 4, { now: t(5) })
  e.recordSurveySync('ann', 'a2', 'nps', 10, { now: t(5) })
  e.recordSurveySync('bob', 'b1', 'csat', 1, { now: t(5) })
  e.recordSurveySync('bob', 'b2', 'nps', 3, { now: t(5) })
  e.recordReviewSync('bob', 'rb', 3, { now: t(5) })
  e.openTicketSync('bob', 'tb', 'repair', { now: t(5, 1) })
  assert.deepEqual(await e.segment('csat(90d) < 3', { at: t(6) }), ['bob'])
  assert.deepEqual(e.segmentSync('open_tickets > 0 and nps_last <= 6', { at: t(6) }), ['bob'])
  assert.equal(e.matchesSync('ann', { field: 'csat', window: '90d', op: '>=', value: '4' }, { at: t(6) }), true)
  e.updateTicketSync('bob', 'tb', 'closed', { now: t(5, 3) })
  const report = await e.feedbackReport({ at: t(9), segments: { unhappy: 'csat(90d) < 3' } })
  assert.equal(report.at, '2024-03-09T00:00:00Z')
  assert.deepEqual(
    [report.overall.csatMean, report.overall.csatSatisfiedPct, report.overall.nps],
    ['2.50', '50.0', '0.0'],
  )
  assert.deepEqual(
    report.byTier.map((r) => [r.group, r.members, r.csatMean, r.nps]),
    [
      ['member', 1, '1.00', '-100.0'],
      ['gold', 1, '4.00', '100.0'],
    ],
  )
  assert.deepEqual(report.bySegment.map((r) => [r.group, r.members]), [['unhappy', 1]])
  assert.deepEqual(report.ticketsOverall, {
    kind: 'all',
    opened: 1,
    open: 0,
    resolved: 1,
    meanMinutes: '120.0',
    medianMinutes: '120.0',
    p90Minutes: 120,
  })
  const windowed = e.feedbackReportSync({ at: t(9), from: t(5, 2) })
  assert.equal(windowed.overall.csatResponses, 0)
  assert.throws(() => e.feedbackReportSync({ at: t(9), from: t(9) }), { code: 'validation_error', field: 'from' })
  assert.throws(() => e.feedbackReportSync({ at: t(9), segments: { x: 'csat(90d) <' } }), { code: 'rule_error' })
})

test('erasure keeps the scores and drops the text', async () => {
  const e = engine()
  e.recordReviewSync('bob', 'rb', 1, { now: t(3), text: 'private words' })
  e.recordSurveySync('bob', 'sb', 'csat', 2, { now: t(3), comment: 'call me' })
  e.eraseSync('bob', { now: t(4) })
  const f = await e.feedback('bob')
  assert.equal(f.reviews.rb.rating, 1)
  assert.equal(f.reviews.rb.text, undefined)
  assert.equal(f.surveys.sb.comment, undefined)
})
