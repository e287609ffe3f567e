// A minimal storefront backend on Node's own `http` module (no framework),
// backed by the SQLite store through the engine's Promise methods, so the
// event loop never waits on the database.
//
//   cd crm-node && npm install && npm run build   # once
//   node examples/node/storefront.mjs [--port 8080] [--host 127.0.0.1] [--db ./storefront.db] [--program programme.json]
//
// Endpoints (JSON in and out, money as decimal strings):
//   POST /orders                       record an order           -> 201 OrderOutcome
//        {"id":"o1","memberId":"alice","placedAt":"2024-06-01T10:00:00Z","amount":"59.90"}
//   POST /members/:id/redeem           spend points              -> 201 RedemptionOutcome
//        {"points":100,"pointType":"reward"} with an `Idempotency-Key` header
//        (or an "idempotencyKey" body field); a retry with the same key returns the first result
//   GET  /members/:id/balance[?pointType=reward&at=ISO]            -> 200 Balance
//   GET  /health                                                   -> 200 {"ok":true}
//
// Errors are `{"error":{"code","field","message"}}` with the status from the
// CrmError code: validation_error 400, not_found 404, insufficient_points and
// conflict 409, config_error 500, store_error 503, anything else 500.
// The server's clock is the `now` of every command.

import { createServer } from 'node:http'
import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'

const require = createRequire(import.meta.url)
function loadCrm() {
  try {
    return require('crm-node')
  } catch (e) {
    if (e.code !== 'MODULE_NOT_FOUND') throw e
    return require('../../crm-node')
  }
}
const { Engine, Program, isCrmError } = loadCrm()

const MAX_BODY = 1 << 20

/** HTTP status for each stable CrmError code. */
export const STATUS = {
  validation_error: 400,
  not_found: 404,
  insufficient_points: 409,
  conflict: 409,
  config_error: 500,
  store_error: 503,
  internal_error: 500,
}

class HttpError extends Error {
  constructor(status, code, message, field = null) {
    super(message)
    this.status = status
    this.code = code
    this.field = field
  }
}

function send(res, status, body) {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

async function readJson(req) {
  const type = req.headers['content-type'] ?? ''
  if (!type.startsWith('application/json')) {
    throw new HttpError(415, 'unsupported_media_type', 'send a JSON body (content-type: application/json)')
  }
  const chunks = []
  let size = 0
  for await (const chunk of req) {
    size += chunk.length
    if (size > MAX_BODY) throw new HttpError(413, 'payload_too_large', `body larger than ${MAX_BODY} bytes`)
    chunks.push(chunk)
  }
  try {
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8'))
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new Error('not an object')
    return body
  } catch (e) {
    throw new HttpError(400, 'invalid_json', `body is not a JSON object: ${e.message}`)
  }
}

/** The request handler over `engine` (exported for embedding in other servers). */
export function storefront(engine) {
  const defaultPointType = engine.program.pointTypes[0]
  return async function handle(req, res) {
    try {
      const url = new URL(req.url, 'http://localhost')
      const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent)
      const route = `${req.method} /${parts.map((p, i) => (parts[0] === 'members' && i === 1 ? ':id' : p)).join('/')}`
      switch (route) {
        case 'GET /health':
          return send(res, 200, { ok: true })
        case 'POST /orders': {
          const order = await readJson(req)
          const key = req.headers['idempotency-key']
          const outcome = await engine.recordOrder(order, { now: new Date(), idempotencyKey: key })
          return send(res, 201, outcome)
        }
        case 'POST /members/:id/redeem': {
          const body = await readJson(req)
          const idempotencyKey = req.headers['idempotency-key'] ?? body.idempotencyKey
          if (idempotencyKey === undefined) {
            throw new HttpError(400, 'validation_error', 'an Idempotency-Key header or idempotencyKey field is required', 'idempotency_key')
          }
          const outcome = await engine.redeem(parts[1], body.points, {
            now: new Date(),
            idempotencyKey,
            pointType: body.pointType ?? defaultPointType,
            reason: body.reason,
          })
          return send(res, 201, outcome)
        }
        case 'GET /members/:id/balance': {
          const pointType = url.searchParams.get('pointType') ?? defaultPointType
          const at = url.searchParams.get('at') ?? new Date()
          return send(res, 200, await engine.balance(parts[1], pointType, { at }))
        }
        default: {
          const known = ['/health', '/orders', '/members/:id/redeem', '/members/:id/balance']
          const path = route.slice(route.indexOf(' ') + 1)
          if (known.includes(path)) throw new HttpError(405, 'method_not_allowed', `${req.method} is not allowed on ${path}`)
          throw new HttpError(404, 'not_found', `no route for ${req.method} ${url.pathname}`)
        }
      }
    } catch (e) {
      if (e instanceof HttpError) {
        return send(res, e.status, { error: { code: e.code, field: e.field, message: e.message } })
      }
      if (isCrmError(e)) {
        return send(res, STATUS[e.code] ?? 500, { error: { code: e.code, field: e.field, message: e.message } })
      }
      console.error('storefront: unexpected error', e)
      return send(res, 500, { error: { code: 'internal_error', field: null, message: 'internal error' } })
    }
  }
}

async function main() {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: process.env.PORT ?? '8080' },
      host: { type: 'string', default: '127.0.0.1' },
      db: { type: 'string', default: 'storefront.db' },
      program: { type: 'string' },
    },
  })
  const program = values.program ? Program.fromFile(values.program) : Program.defaultDemo()
  const engine = Engine.openSqlite(program, values.db)
  const server = createServer(storefront(engine))
  server.listen(Number(values.port), values.host, () => {
    const { address, port } = server.address()
    console.log(`storefront listening on http://${address}:${port} (programme "${program.name}", db ${values.db})`)
  })
  const stop = () => server.close(() => process.exit(0))
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e) => {
    console.error(`storefront: ${e.message}`)
    process.exit(1)
  })
}
