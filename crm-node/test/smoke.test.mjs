import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'

const require = createRequire(import.meta.url)
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'))

test('package loads through its main entry', () => {
  const crm = require('..')
  assert.equal(typeof crm.version, 'function')
})

test('version() returns the crate version', () => {
  const { version } = require('..')
  const v = version()
  assert.equal(typeof v, 'string')
  assert.match(v, /^\d+\.\d+\.\d+/)
  assert.equal(v, pkg.version)
})
