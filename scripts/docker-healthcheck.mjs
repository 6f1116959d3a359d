// Docker HEALTHCHECK of the coldstore image: healthy while the daemon answers HTTP(S) on its port. Any
// status below 500 counts: the check is that the process serves, not what it serves (the daemon's
// /healthz answers 200 without authentication). COLDSTORE_HEALTH_URL overrides the address; an http://
// address that does not answer plain HTTP is tried again over HTTPS (the daemon with tls_cert/tls_key),
// accepting the daemon's own certificate whatever signed it: this is a loopback probe, not a client.
import { request as httpRequest } from 'node:http'
import { request as httpsRequest } from 'node:https'

const url = process.env.COLDSTORE_HEALTH_URL || 'http://127.0.0.1:8088/healthz'

function probe(u) {
  return new Promise((resolve) => {
    const send = u.startsWith('https:') ? httpsRequest : httpRequest
    const req = send(u, { method: 'GET', timeout: 8000, rejectUnauthorized: false }, (res) => {
      res.resume()
      resolve(res.statusCode ?? 0)
    })
    req.on('timeout', () => req.destroy(new Error('timed out')))
    req.on('error', (err) => resolve(err))
    req.end()
  })
}

let answer = await probe(url)
if (answer instanceof Error && url.startsWith('http:')) {
  const again = await probe(url.replace(/^http:/, 'https:'))
  if (!(again instanceof Error)) answer = again
}
if (answer instanceof Error) {
  console.error(`coldstore health check: ${url}: ${answer.code ?? answer.message}`)
  process.exit(1)
}
process.exit(answer < 500 ? 0 : 1)
