// Opens the HTML report in headless Chromium (Debian's /usr/bin/chromium) and checks that it
// renders offline: no console error or warning, no page error, no request other than the file
// itself (file: and data: URLs; anything else is blocked and fails the test), and every chart
// (`svg[data-chart]`) has drawn: a non-empty box and at least one visible shape. Saves a
// full-page screenshot of each report next to it (report.html -> report.png).
//
//   REPORTS="target/report.html target/report-zh.html" node --test report.test.mjs
//
// `make test-browser` builds the reports from the demo database first.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { chromium } from 'playwright-core'

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.resolve(here, '..', '..')
const reports = (process.env.REPORTS || 'target/report.html target/report-zh.html')
  .split(/\s+/)
  .filter(Boolean)
  .map((p) => path.resolve(root, p))
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium'
// Every chart the report draws for the demo (the what-if one only when given).
const CHARTS = ['tiers', 'stages', 'flows', 'liability', 'cohorts', 'rfm', 'rfm_groups', 'channel_members', 'channel_spend']

for (const file of reports) {
  test(`${path.relative(root, file)} renders offline with every chart drawn`, async () => {
    assert.ok(existsSync(file), `${file} is missing: run the report example first`)
    assert.ok(existsSync(executablePath), `${executablePath} is missing: apt-get install -y chromium`)
    const browser = await chromium.launch({ executablePath, args: ['--no-sandbox'], headless: true })
    try {
      const page = await browser.newPage({ viewport: { width: 1200, height: 900 } })
      const problems = []
      page.on('console', (m) => {
        if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`)
      })
      page.on('pageerror', (e) => problems.push(`page error: ${e.message}`))
      page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText ?? ''}`))
      await page.route('**/*', (route) => {
        const url = route.request().url()
        if (url.startsWith('file:') || url.startsWith('data:')) return route.continue()
        problems.push(`network request: ${url}`)
        return route.abort()
      })
      const response = await page.goto(pathToFileURL(file).href, { waitUntil: 'load' })
      assert.ok(response === null || response.ok(), 'the file loads')

      const charts = await page.evaluate(() =>
        [...document.querySelectorAll('svg[data-chart]')].map((svg) => {
          const box = svg.getBoundingClientRect()
          const shapes = [...svg.querySelectorAll('rect, line, path, circle, polygon, polyline')].filter((s) => {
            const b = s.getBBox()
            return b.width > 0 || b.height > 0
          })
          return {
            name: svg.dataset.chart,
            width: box.width,
            height: box.height,
            shapes: shapes.length,
            texts: svg.querySelectorAll('text').length,
            title: svg.querySelector('title')?.textContent ?? '',
          }
        }),
      )
      const names = charts.map((c) => c.name)
      for (const name of CHARTS) assert.ok(names.includes(name), `chart ${name} is on the page (found ${names})`)
      for (const c of charts) {
        assert.ok(c.width > 0 && c.height > 0, `chart ${c.name} has a box (${c.width}x${c.height})`)
        assert.ok(c.shapes > 1, `chart ${c.name} drew shapes (${c.shapes})`)
        assert.ok(c.texts > 2 && c.title.length > 0, `chart ${c.name} has a title and labels`)
      }
      const png = file.replace(/\.html$/, '.png')
      await page.screenshot({ path: png, fullPage: true })
      assert.deepEqual(problems, [], problems.join('\n'))
      console.log(`${path.relative(root, file)}: ${charts.length} charts drawn (${names.join(', ')}); screenshot ${path.relative(root, png)}`)
    } finally {
      await browser.close()
    }
  })
}
