// Runs examples/node/quickstart.mjs (the CDNOW replay on a SQLite file) as a
// child process and checks its summary.

import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const script = fileURLToPath(new URL('../../examples/node/quickstart.mjs', import.meta.url))
const data = fileURLToPath(new URL('../../examples/data/CDNOW_sample.txt', import.meta.url))

test('quickstart replays the CDNOW sample month by month', { timeout: 300_000 }, async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'crm-node-quickstart-'))
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [script, data, join(tmp, 'demo.db')], {
      maxBuffer: 1 << 24,
    })
    assert.equal(stderr, '')
    assert.match(stdout, /CDNOW sample: 6919 purchases, 1997-01-01 to 1998-06-30/)
    assert.match(stdout, /^1997-01 +885 +\d+/m)
    assert.match(stdout, /^1998-06 +\d+/m)
    assert.match(stdout, /members +2357 /)
    assert.match(stdout, /orders +6919 +\(0 rejected\)/)
    assert.match(stdout, /points issued +\d+/)
    assert.match(stdout, /points redeemed +\d+/)
    assert.match(stdout, /points expired +\d+/)
    assert.match(stdout, /outstanding +\d+ +points, worth \d+\.\d{2} USD/)
    assert.match(stdout, /issued = redeemed \+ expired \+ outstanding: ok/)
    assert.match(stdout, /Top 5 members by spend/)
  } finally {
    rmSync(tmp, { recursive: true, force: true })
  }
})
