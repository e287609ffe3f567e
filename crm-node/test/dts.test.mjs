// index.d.ts is complete and accurate: it declares exactly the runtime
// surface, uses no `any`, and type-checks against a usage sample with tsc.
// (`npm run check:dts` additionally rebuilds it and diffs against the
// committed file.)

import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
const crm = require('..')
const root = fileURLToPath(new URL('..', import.meta.url))
const dts = readFileSync(join(root, 'index.d.ts'), 'utf8')

/** Member names declared in `export declare class <name> { … }`. */
function declaredMembers(cls) {
  const start = dts.indexOf(`export declare class ${cls} {`)
  assert.ok(start >= 0, `class ${cls} is declared`)
  const body = dts.slice(start, dts.indexOf('\n}\n', start))
  const names = new Set()
  for (const m of body.matchAll(/^ {2}(?:static )?(?:get )?([A-Za-z_$][\w$]*)\(/gm)) names.add(m[1])
  return names
}

function runtimeMembers(cls) {
  const names = new Set()
  const own = { static: ['length', 'name', 'prototype', 'arguments', 'caller'], proto: ['constructor'] }
  for (const n of Object.getOwnPropertyNames(cls)) if (!own.static.includes(n)) names.add(n)
  for (const n of Object.getOwnPropertyNames(cls.prototype)) if (!own.proto.includes(n)) names.add(n)
  return names
}

test('every runtime export is declared, and nothing else', () => {
  const declared = new Set([...dts.matchAll(/^export declare (?:class|function|const) ([\w$]+)/gm)].map((m) => m[1]))
  assert.deepEqual([...declared].sort(), Object.keys(crm).sort())
})

for (const cls of ['Engine', 'Program']) {
  test(`${cls}: declared members match the runtime members`, () => {
    assert.deepEqual([...declaredMembers(cls)].sort(), [...runtimeMembers(crm[cls])].sort())
  })
}

test('every Promise method has a Sync twin with the same arguments', () => {
  const members = declaredMembers('Engine')
  const sig = (name) => dts.match(new RegExp(`^  (?:static )?${name}\\((.*)\\): (.*)$`, 'm'))
  for (const name of members) {
    if (name.endsWith('Sync') || ['inMemory', 'openSqlite', 'program', 'withProgram'].includes(name)) continue
    assert.ok(members.has(`${name}Sync`), `${name}Sync exists`)
    const [, args, ret] = sig(name)
    const [, syncArgs, syncRet] = sig(`${name}Sync`)
    assert.equal(syncArgs, args, name)
    assert.equal(ret, `Promise<${syncRet}>`, name)
  }
})

test('no `any` in the declarations', () => {
  const code = dts.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '')
  assert.doesNotMatch(code, /\bany\b/)
})

test('the declarations type-check against a usage sample (tsc --strict)', { timeout: 120_000 }, () => {
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
  try {
    execFileSync(process.execPath, [tsc, '-p', join(root, 'test', 'types', 'tsconfig.json')], { encoding: 'utf8' })
  } catch (e) {
    assert.fail(`tsc failed:\n${e.stdout}${e.stderr}`)
  }
})
