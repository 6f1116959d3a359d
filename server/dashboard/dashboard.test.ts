/**
 * The dashboard's pieces without a daemon: sessions (cookie flags, expiry on the injected clock, logout,
 * the failed-login limit), the login redirect target (no open redirect), the chart (escaping, one line
 * per job, nothing to draw), money and wait formatting, and the retention policy a job's page previews.
 * The pages themselves are tested in Chromium against the real daemon (cli/dashboard.test.ts).
 */
import t from 'tap'
import type { IncomingMessage } from 'node:http'
import type { JobDefinition, RunSummary } from '../../engine/index.js'
import { retentionPolicy, safeNext } from './dashboard.js'
import { addedBytesSeries, renderChart } from './chart.js'
import { esc, hours, usd } from './render.js'
import { FAILURE_WINDOW_MS, MAX_FAILURES, SessionStore, parseCookies } from './sessions.js'

const req = (cookie?: string): IncomingMessage => ({ headers: cookie ? { cookie } : {} }) as IncomingMessage

t.test('sessions: cookie, expiry, logout, failed logins', async (t) => {
  let now = 1_000_000
  const s = new SessionStore({ timeoutMs: 3_600_000, secure: false, now: () => now })
  const set = s.create('token')
  t.match(set, /^coldstore_session=[\w-]{43}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=3600$/, 'HttpOnly, SameSite=Strict, not Secure over HTTP')
  const cookie = set.split(';')[0]
  t.same(s.get(req(`other=1; ${cookie}`)), { user: 'token', expires: new Date(now + 3_600_000) })
  t.equal(s.get(req('coldstore_session=forged')), null, 'an unknown id is no session')
  t.equal(s.get(req()), null)
  now += 3_599_999
  t.ok(s.get(req(cookie)), 'valid until the timeout')
  now += 1
  t.equal(s.get(req(cookie)), null, 'expired at the timeout')
  t.ok(s.hasCookie(req(cookie)), 'the browser still sends it (its answers must not invite a Basic prompt)')
  const again = s.create('admin').split(';')[0]
  t.equal(s.size, 1)
  t.match(s.destroy(req(again)), /^coldstore_session=; Path=\/; HttpOnly; SameSite=Strict; Max-Age=0$/, 'logout clears the cookie')
  t.equal(s.get(req(again)), null, 'and forgets the session')

  const secure = new SessionStore({ timeoutMs: 60_000, secure: true, now: () => now })
  t.match(secure.create('x'), /^__Host-coldstore_session=[\w-]+; Path=\/; HttpOnly; SameSite=Strict; Max-Age=60; Secure$/, 'over HTTPS: Secure, __Host- prefix')

  for (let i = 0; i < MAX_FAILURES; i++) {
    t.ok(s.mayTry('10.0.0.9'), `attempt ${i + 1} allowed`)
    s.failed('10.0.0.9')
  }
  t.notOk(s.mayTry('10.0.0.9'), `refused after ${MAX_FAILURES} failures`)
  t.ok(s.mayTry('10.0.0.10'), 'other clients are not affected')
  now += FAILURE_WINDOW_MS
  t.ok(s.mayTry('10.0.0.9'), 'allowed again after the window')
  t.same([...parseCookies(req('a=1; b = 2;c=3=4; a=5')).entries()], [['a', '1'], ['b', '2'], ['c', '3=4']], 'cookies: first value of each name')
})

t.test('the login page sends browsers back only to this server', async (t) => {
  const cases: [string | null, string][] = [
    [null, '/-/'], ['/-/jobs/photos', '/-/jobs/photos'], ['/photos/latest/?browse', '/photos/latest/?browse'],
    ['//evil.example/', '/-/'], ['https://evil.example/', '/-/'], ['/\\evil.example', '/-/'], ['/-/\r\nSet-Cookie: x', '/-/'], ['relative', '/-/'],
  ]
  for (const [next, want] of cases) t.equal(safeNext(next), want, JSON.stringify(next))
})

t.test('chart: one line per job, escaped, nothing to draw', async (t) => {
  t.match(renderChart({ title: 'x', series: [] }), /No successful backup yet/)
  const run = (job: string, t0: string, added: number, result: RunSummary['result'] = 'success'): RunSummary => ({
    id: `${t0}-000000`, job, kind: 'backup', trigger: 'schedule', scheduled_for: null, started: t0, finished: t0, state: 'finished', result, phase: null,
    attempt: 1, retry_at: null, error: null, duration_ms: 1, snapshot: 's', stats: { files: 1, dirs: 0, bytes: 10, new_files: 1, changed_files: 0, unchanged_files: 0, added_bytes: added, unreadable: 0, duration_s: 1 },
    retention: null, check: null, progress: null, exit_code: 0, process: null,
  })
  const runs = [run('a', '2026-07-02T00:00:00Z', 500), run('a', '2026-07-01T00:00:00Z', 1000), run('a', '2026-07-03T00:00:00Z', 9999, 'failed'), run('b<x>', '2026-07-02T00:00:00Z', 300)]
  const a = addedBytesSeries('a', runs)
  t.same(a.points.map((p) => p.v), [1000, 1500], 'cumulative, oldest first, failed runs left out')
  const svg = renderChart({ title: 'stored <bytes>', series: [a, addedBytesSeries('b<x>', runs)], storedNow: 1200 })
  t.equal((svg.match(/<polyline /g) ?? []).length, 2, 'two lines')
  t.equal((svg.match(/<circle /g) ?? []).length, 3, 'a dot per run')
  t.match(svg, /b&#60;x&#62;/, 'names escaped')
  t.notMatch(svg, /<x>|<bytes>/)
  t.match(svg, /class="now"/, 'the line of what is stored now')
})

t.test('formatting', async (t) => {
  t.same([usd(null), usd(0), usd(2.7e-8), usd(0.0000084), usd(0.0099), usd(12.345)], ['–', '$0.00', '$0.000000027', '$0.0000084', '$0.0099', '$12.35'])
  t.same([hours([0, 0]), hours([1 / 60, 5 / 60]), hours([9, 12])], ['at once', '1–5 minutes', '9–12 hours'])
  t.equal(esc(`<a href="x">'&'</a>`), '&#60;a href=&#34;x&#34;&#62;&#39;&#38;&#39;&#60;/a&#62;')
})

t.test("a job's retention as forget's policy", async (t) => {
  const job = (retention: JobDefinition['retention']): JobDefinition => ({ retention } as JobDefinition)
  t.equal(retentionPolicy(job(null)), null)
  t.same(retentionPolicy(job({ keep_daily: 7, keep_weekly: 8, keep_within: '1y2m', keep_tag: ['a,b', 'c'] })), {
    last: undefined, hourly: undefined, daily: 7, weekly: 8, monthly: undefined, yearly: undefined,
    within: { years: 1, months: 2, days: 0, hours: 0 }, tags: [['a', 'b'], ['c']],
  })
})
