// Docker HEALTHCHECK of the coldstore image: healthy while the daemon answers HTTP on its port. Any status
// below 500 counts (401 when authentication is on; 404 from a daemon without /healthz): the check is that
// the process serves, not what it serves. COLDSTORE_HEALTH_URL overrides the address.
const url = process.env.COLDSTORE_HEALTH_URL || 'http://127.0.0.1:8088/healthz'
try {
  const res = await fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(8000) })
  process.exit(res.status < 500 ? 0 : 1)
} catch (err) {
  console.error(`coldstore health check: ${url}: ${err.cause?.code ?? err.message}`)
  process.exit(1)
}
