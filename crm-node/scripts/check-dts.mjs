// Rebuild the addon's type declarations (and loader) into a temporary folder
// and fail when they differ from the committed index.d.ts / index.js
// (run: npm run check:dts).
// Uses the release profile, so after `npm run build` it only relinks.

import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const out = mkdtempSync(join(tmpdir(), 'crm-node-dts-'))
try {
  const napi = join(root, 'node_modules', '.bin', 'napi')
  execFileSync(napi, ['build', '--platform', '--release', '--output-dir', out], {
    cwd: root,
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  if (readFileSync(join(out, 'index.js'), 'utf8') !== readFileSync(join(root, 'index.js'), 'utf8')) {
    console.error('index.js (the generated loader) is out of date: run `npm run build` in crm-node and commit it.')
    process.exit(1)
  }
  const fresh = readFileSync(join(out, 'index.d.ts'), 'utf8')
  const committed = readFileSync(join(root, 'index.d.ts'), 'utf8')
  if (fresh !== committed) {
    const a = committed.split('\n')
    const b = fresh.split('\n')
    const i = a.findIndex((line, k) => line !== b[k])
    console.error(`index.d.ts is out of date (first difference at line ${i + 1}):`)
    console.error(`  committed: ${a[i]}`)
    console.error(`  generated: ${b[i]}`)
    console.error('Run `npm run build` in crm-node and commit index.d.ts.')
    process.exit(1)
  }
  console.log('index.d.ts is up to date')
} finally {
  rmSync(out, { recursive: true, force: true })
}
