// `npm install <repo>/crm-node` in a fresh folder elsewhere, then require()
// and import from there (needs the addon built first: `npm run build`).

import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

const pkg = fileURLToPath(new URL('..', import.meta.url))
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'

test('installs by path into another folder; require and import work there', { timeout: 120_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'crm-node-install-'))
  try {
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'host-app', version: '1.0.0', private: true }))
    execFileSync(npm, ['install', '--offline', '--no-audit', '--no-fund', pkg], { cwd: dir, stdio: 'pipe' })
    writeFileSync(
      join(dir, 'a.cjs'),
      `const { Engine, Program } = require('crm-node')
const e = Engine.inMemory(Program.defaultDemo())
const o = e.recordOrderSync({ id: 'o1', memberId: 'm1', placedAt: '2024-01-01T00:00:00Z', amount: '25.50' }, { now: '2024-01-01T00:00:00Z' })
process.stdout.write(JSON.stringify(o.earned))`,
    )
    writeFileSync(
      join(dir, 'b.mjs'),
      `import { Engine, Program, isCrmError } from 'crm-node'
const e = Engine.openSqlite(Program.defaultDemo(), ':memory:')
try { await e.member('ghost') } catch (err) { process.stdout.write(String(isCrmError(err)) + ' ' + err.code) }`,
    )
    assert.equal(execFileSync(process.execPath, ['a.cjs'], { cwd: dir, encoding: 'utf8' }), '{"reward":25}')
    assert.equal(execFileSync(process.execPath, ['b.mjs'], { cwd: dir, encoding: 'utf8' }), 'true not_found')
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
