/**
 * `coldstore cost` and `coldstore notify` through the built CLI, on a real local repository and a
 * coldstore.yaml, with a recording HTTP server on 127.0.0.1 as the webhook.
 */
import { once } from 'node:events'
import { readdirSync, statSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { backup, closeRepository, listSnapshots, packsOfSnapshot } from '../engine/index.js'
import { makeTestRepo, seededBytes, writeTree } from '../engine/testing/test-repo.js'
import { cli, ensureBuilt, PASSWORD } from '../server/testing/fixture.js'

ensureBuilt(t)

function sizes(dir: string, sub = ''): Map<string, number> {
  const out = new Map<string, number>()
  for (const e of readdirSync(join(dir, sub), { withFileTypes: true })) {
    const rel = sub ? `${sub}/${e.name}` : e.name
    if (e.isDirectory()) for (const [k, v] of sizes(dir, rel)) out.set(k, v)
    else out.set(rel, statSync(join(dir, rel)).size)
  }
  return out
}

async function hookServer(t: Test): Promise<{ url: string; bodies: Record<string, unknown>[]; paths: string[] }> {
  const bodies: Record<string, unknown>[] = []
  const paths: string[] = []
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      paths.push(req.url ?? '')
      bodies.push(JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown>)
      res.writeHead(req.url?.startsWith('/bad/') ? 403 : 200).end(req.url?.startsWith('/bad/') ? `invalid_token ${req.url}` : 'ok')
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise<void>((r) => server.close(() => r())))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, bodies, paths }
}

t.test('cost and notify from coldstore.yaml', async (t) => {
  const dir = t.testdir()
  const tr = await makeTestRepo(dir, { password: PASSWORD })
  const src = join(dir, 'photos')
  writeTree(src, { 'a.jpg': seededBytes('a', 2 << 20) })
  await backup(tr.repo, { paths: [src], job: 'photos', hostname: 'h', username: 'u', now: () => new Date('2026-01-01T00:00:00Z'), program: 'test' })
  writeTree(src, { 'b.jpg': seededBytes('b', 1 << 20) })
  await backup(tr.repo, { paths: [src], job: 'photos', hostname: 'h', username: 'u', now: () => new Date('2026-02-01T00:00:00Z'), program: 'test' })
  const snaps = (await listSnapshots(tr.repo)).sort((a, b) => a.time.localeCompare(b.time))
  const p0 = await packsOfSnapshot(tr.repo, snaps[0])
  const p1 = await packsOfSnapshot(tr.repo, snaps[1])
  await closeRepository(tr.repo)
  const hook = await hookServer(t)
  writeFileSync(join(dir, 'hook-url'), `${hook.url}/hooks/T1/B2/tok-abcdef123456\n`)
  writeFileSync(join(dir, 'pw'), PASSWORD)
  const yaml = (extra = ''): string => `jobs:
  photos: { sources: [${src}], repo: ${tr.repoDir}, password_file: pw, schedule: daily }
  media: { sources: [/srv/media], repo: ${tr.repoDir}, schedule: weekly }
prices:
  local: { classes: { STANDARD: { storage_per_gb_month: 1000 } } }
notify:
  cost_threshold_usd: 0.5
  webhook:
    - { name: ops, url_file: hook-url }
${extra}`
  const cfg = join(dir, 'coldstore.yaml')
  writeFileSync(cfg, yaml())
  const env = { PATH: process.env.PATH, HOME: dir, COLDSTORE_CACHE_DIR: join(dir, 'cli-cache') }
  const all = sizes(tr.repoDir)
  const total = [...all.values()].reduce((a, b) => a + b, 0)

  // cost --config --json: both jobs' repository once, priced with the override.
  let r = await cli(['cost', '--config', cfg, '--json'], env)
  t.equal(r.code, 0, r.stderr)
  const doc = JSON.parse(r.stdout.toString()) as {
    total_monthly_usd: number; threshold_usd: number; above_threshold: boolean
    repositories: { provider: string; stored: { objects: number; bytes: number; monthly_usd: number }; jobs: { job: string; snapshots: number; restore: { files: number; tiers: { tier: string }[] } }[]; config_jobs_without_snapshots: string[]; notes: string[] }[]
  }
  t.equal(doc.repositories.length, 1, 'two jobs in one repository: estimated once')
  const rep = doc.repositories[0]
  t.equal(rep.provider, 'local')
  t.same([rep.stored.objects, rep.stored.bytes], [all.size, total])
  t.ok(Math.abs(doc.total_monthly_usd - (total / 1e9) * 1000) < 1e-8, 'priced at the overridden $1000/GB-month')
  t.same(rep.jobs.map((j) => [j.job, j.snapshots, j.restore.files]), [['photos', 2, 2]])
  t.same(rep.config_jobs_without_snapshots, ['media'])
  t.equal(doc.threshold_usd, 0.5)
  t.equal(doc.above_threshold, doc.total_monthly_usd > 0.5)
  t.equal(hook.bodies.length, 0, 'no notification without --notify')

  // Text.
  r = await cli(['cost', '--config', cfg], env)
  t.equal(r.code, 0, r.stderr)
  const text = r.stdout.toString()
  t.match(text, /^repository .*\(prices: local disk \(your own hardware\), with overrides from coldstore\.yaml\)$/m)
  t.match(text, /^ {2}job photos: 2 snapshots, latest 2026-02-01 00:00 UTC$/m)
  t.match(text, /^ {2}job media: no snapshots yet$/m)
  t.match(text, /^ {6}instant +at once +~\$/m)
  t.match(text, /^total: \$\d+\.\d\d\/month .*; threshold \$0\.50(: ABOVE)?$/m)

  // --forget: what removing the first snapshot would free.
  r = await cli(['cost', '--repo', tr.repoDir, '--forget', snaps[0].id.slice(0, 10), '--json'], { ...env, COLDSTORE_PASSWORD: PASSWORD })
  t.equal(r.code, 0, r.stderr)
  const ret = (JSON.parse(r.stdout.toString()) as { repositories: { retention: { remove: string[]; freed: { objects: number; bytes: number }; shared: { objects: number } } }[] }).repositories[0].retention
  const freed = [...p0].filter((n) => !p1.has(n))
  t.same(ret.remove, [snaps[0].id], 'a prefix resolves to the full id')
  t.same([ret.freed.objects, ret.freed.bytes], [freed.length, freed.reduce((s, n) => s + (all.get(n) ?? 0), 0)])
  t.equal(ret.shared.objects, [...p0].filter((n) => p1.has(n)).length, 'a.jpg stays: the second snapshot has it too')
  r = await cli(['cost', '--repo', tr.repoDir, '--forget', 'abcdef0123'], { ...env, COLDSTORE_PASSWORD: PASSWORD })
  t.equal(r.code, 2)
  t.match(r.stderr, /--forget: no snapshot abcdef0123/)
  // --keep-...: forget's rules pick the snapshots (keep the newest one: the first one goes).
  r = await cli(['cost', '--repo', tr.repoDir, '--keep-last', '1', '--json'], { ...env, COLDSTORE_PASSWORD: PASSWORD })
  t.equal(r.code, 0, r.stderr)
  const kept = (JSON.parse(r.stdout.toString()) as { repositories: { retention: { remove: string[]; freed: { objects: number; bytes: number } } }[] }).repositories[0].retention
  t.same(kept.remove, [snaps[0].id], '--keep-last 1 removes the older snapshot')
  t.same(kept.freed, ret.freed, 'and frees what --forget of it frees')
  r = await cli(['cost', '--repo', tr.repoDir, '--keep-within', '3w'], { ...env, COLDSTORE_PASSWORD: PASSWORD })
  t.equal(r.code, 2, 'a bad duration is a usage error')

  // cost --notify: above the threshold, the webhook gets cost_threshold.
  writeFileSync(cfg, yaml().replace('cost_threshold_usd: 0.5', 'cost_threshold_usd: 0.000001'))
  r = await cli(['cost', '--config', cfg, '--notify', '--json'], env)
  t.equal(r.code, 0, r.stderr)
  t.match(JSON.parse(r.stdout.toString()), { above_threshold: true, notification: { sent: true, reason: null } })
  t.equal(hook.bodies.length, 1)
  t.match(hook.bodies[0], { kind: 'cost_threshold', job: null, title: /estimated monthly cost is above the threshold/ })
  t.match((hook.bodies[0].details as Record<string, string>)['job photos'], /^\$\d+\.\d\d\/month$/)

  // notify --test: every channel, one line each; exit 1 when one fails; no token printed.
  writeFileSync(join(dir, 'bad-url'), `${hook.url}/bad/tok-zyxw98765432`)
  writeFileSync(cfg, yaml('    - { name: broken, format: discord, url_file: bad-url }\n'))
  r = await cli(['notify', '--test', '--config', cfg], env)
  t.equal(r.code, 1, 'a failed channel fails the command')
  const lines = r.stdout.toString()
  t.match(lines, /^ok +ops +json +http:\/\/127\.0\.0\.1:\d+\/… \(url from file .*hook-url\)$/m)
  t.match(lines, /^FAIL  broken  discord  http:\/\/127\.0\.0\.1:\d+\/… \(url from file .*bad-url\)\n {6}HTTP 403: invalid_token \[redacted\]$/m)
  t.match(lines, /1 of 2 channels failed/)
  t.notOk(/tok-abcdef|tok-zyxw/.test(lines + r.stderr), 'no token on the screen')
  t.equal(hook.bodies.at(-2)!.kind, 'test')
  writeFileSync(cfg, yaml())
  r = await cli(['notify', '--test', '--config', cfg, '--json'], env)
  t.equal(r.code, 0, r.stderr)
  t.match(JSON.parse(r.stdout.toString()), { results: [{ channel: 'ops', ok: true, format: 'json', error: null }] })

  // notify --event: rate-limited across processes through the cache folder's state file.
  r = await cli(['notify', '--event', 'failure', '--job', 'photos', '--message', 'disk full', '--config', cfg, '--json'], env)
  t.match(JSON.parse(r.stdout.toString()), { sent: true, suppressed: 0 })
  r = await cli(['notify', '--event', 'failure', '--job', 'photos', '--message', 'disk full', '--config', cfg], env)
  t.equal(r.code, 0)
  t.match(r.stdout.toString(), /not sent: rate-limited \(1 held back/)
  r = await cli(['notify', '--event', 'success', '--job', 'photos', '--message', 'ok', '--config', cfg], env)
  t.match(r.stdout.toString(), /not sent: success is not in notify\.on/)

  // Validation errors name the key; exit 2.
  writeFileSync(cfg, yaml('  smtp: { host: mail.example.com, username: me, password: hunter22, from: a@b.c, to: me@b.c }\n'))
  r = await cli(['notify', '--test', '--config', cfg], env)
  t.equal(r.code, 2)
  t.match(r.stderr, /coldstore\.yaml: notify\.smtp\.password: secrets are not written inline/)
  writeFileSync(cfg, yaml().replace('storage_per_gb_month: 1000', 'storage_per_gb_month: cheap'))
  r = await cli(['cost', '--config', cfg], env)
  t.equal(r.code, 2)
  t.match(r.stderr, /prices\.local\.classes\.STANDARD\.storage_per_gb_month: expected an amount/)
})
