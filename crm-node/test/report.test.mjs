// The visual report over the camelCase API: reportHtml / writeReport (Promise and …Sync)
// draw every chart, in English and Chinese, add the what-if section only when given
// (as an object or as the JSON text the whatif example prints), and bad options are
// Errors with a stable code and field.

import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, test } from 'node:test'

const require = createRequire(import.meta.url)
const { Engine, Program } = require('..')

const here = path.dirname(fileURLToPath(import.meta.url))
const demo = path.resolve(here, '..', '..', 'examples', 'programs', 'demo.toml')
const at = new Date('2024-04-01T00:00:00Z')
const CHARTS = ['tiers', 'stages', 'flows', 'liability', 'cohorts', 'rfm', 'rfm_groups', 'channel_members', 'channel_spend']

function engine() {
  const e = Engine.inMemory(Program.fromFile(demo))
  const t0 = Date.parse('2023-01-05T10:00:00Z')
  for (let m = 0; m < 20; m++) {
    for (let k = 0; k <= m % 4; k++) {
      const placedAt = new Date(t0 + (((m * 37 + k * 71) % 400) * 86400000))
      e.recordOrderSync(
        { id: `o${m}-${k}`, memberId: `m${m}`, placedAt, amount: String(10 + m * 7 + k), channel: (m + k) % 3 ? 'web' : 'store' },
        { now: placedAt },
      )
    }
  }
  return e
}

const charts = (html) => [...html.matchAll(/<svg [^>]*data-chart="([a-z_]+)"/g)].map((m) => m[1])

function comparison() {
  const figures = (label, issued) => ({
    label, programme: label, currency: 'USD', orders: 50, orders_rejected: 0, refunds: 0, refunds_rejected: 0,
    members: 20, points_issued: issued, issued_by_type: { reward: issued }, points_clawed_back: 0,
    points_redeemed: 0, redemptions: 0, redemptions_short: 0, redemption_shortfall: 0, points_expired: 10,
    outstanding: { reward: issued - 10 }, points_outstanding: issued - 10, liability_value: '9.90',
    tier_distribution: null, stage_distribution: { active: 20 }, tier_changes: 0, stage_changes: 0,
    outreach: {}, outreach_suppressed: 0, coupon_cost: '0', run_due_runs: 16,
  })
  return {
    until: '2024-04-01T00:00:00Z',
    history: { orders: 50, refunds: 0, redemptions: 0 },
    programmes: [figures('base', 1000), figures('double', 2000)],
    movers: [],
    notes: [],
  }
}

describe('report', () => {
  test('reportHtml draws every chart, the same as reportHtmlSync', async () => {
    const e = engine()
    const html = await e.reportHtml({ at })
    assert.ok(html.startsWith('<!DOCTYPE html>\n<html lang="en">'))
    assert.deepEqual(charts(html), CHARTS)
    assert.equal(e.reportHtmlSync({ at }), html)
    assert.ok(!html.includes('<script'))
    const zh = await e.reportHtml({ at, lang: 'zh', flowsFrom: '2023-10-01T00:00:00Z' })
    assert.ok(zh.includes('lang="zh-CN"') && zh.includes('会员数') && zh.includes('2023年10月1日'))
  })

  test('the what-if section appears only when given, from an object or JSON text', async () => {
    const e = engine()
    assert.ok(!charts(await e.reportHtml({ at })).includes('whatif'))
    const withObject = await e.reportHtml({ at, whatif: comparison() })
    assert.deepEqual(charts(withObject), [...CHARTS, 'whatif'])
    assert.ok(withObject.includes('>double</th>'))
    const stdout = `what-if replay …\n${JSON.stringify({ ...comparison(), elapsed_ms: 3.5 })}\n`
    assert.equal(await e.reportHtml({ at, whatif: stdout }), withObject)
  })

  test('writeReport writes the page', async () => {
    const e = engine()
    const dir = mkdtempSync(path.join(tmpdir(), 'crm-report-'))
    const file = path.join(dir, 'report.html')
    await e.writeReport(file, { at, lang: 'zh' })
    assert.equal(readFileSync(file, 'utf8'), await e.reportHtml({ at, lang: 'zh' }))
    assert.equal(e.writeReportSync(file, { at }), undefined)
    assert.deepEqual(charts(readFileSync(file, 'utf8')), CHARTS)
    await assert.rejects(e.writeReport(path.join(dir, 'missing', 'x.html'), { at }), (err) => {
      assert.equal(err.code, 'io_error')
      assert.equal(err.field, 'path')
      return true
    })
  })

  test('bad options are errors naming the field', async () => {
    const e = engine()
    const check = (field) => (err) => {
      assert.equal(err.code, 'validation_error')
      assert.equal(err.field, field)
      return true
    }
    await assert.rejects(e.reportHtml({ at, lang: 'fr' }), check('lang'))
    await assert.rejects(e.reportHtml({ at, flowsFrom: at, flowsTo: '2024-03-01T00:00:00Z' }), check('flows_to'))
    await assert.rejects(e.reportHtml({ at, whatif: 'not json' }), check('whatif'))
    assert.throws(() => e.reportHtmlSync({ at: 'yesterday' }), check('at'))
    await assert.rejects(e.reportHtml({ at, whatif: { until: 'nope' } }), (err) => err.code === 'validation_error')
  })
})
