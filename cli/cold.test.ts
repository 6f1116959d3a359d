/**
 * The cold-storage workflow end to end, as a user runs it, against S3: a snapshot whose data packs go to
 * DEEP_ARCHIVE; listing and browsing without any retrieval; `restore` planning the retrieval (objects,
 * bytes, tiers with typical wait and estimated cost) and exiting 4; `--request-retrieval --tier Bulk`;
 * re-running while the retrieval is pending; and the restore once the packs are readable.
 *
 * The server is s3rver behind the project's S3 test gateway (engine/remote/s3/testing/gateway.ts): storage
 * classes and Glacier restore states are the gateway's (no local S3 server honours them), every other
 * request is forwarded to s3rver, which stores the bytes. The gateway's request log shows which objects
 * each command touched.
 */
import { createHash } from 'node:crypto'
import { readFileSync, readdirSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import t, { type Test } from 'tap'
import { seededBytes, seededText, writeTree } from '../engine/testing/test-repo.js'
import { startGateway } from '../engine/remote/s3/testing/gateway.js'
import { haveServer, newBucketName } from '../engine/remote/s3/testing/s3-server.js'
import { s3rverMissing, startS3rver } from '../engine/remote/s3/testing/s3rver.js'
import { ROOT, ensureBuilt } from './testing/build.js'
import { exits, runCli, type CliResult } from './testing/harness.js'

ensureBuilt(t)

type Run = CliResult

function cli(args: readonly string[], env: Record<string, string>): Promise<Run> {
  return runCli(args, { env, cwd: ROOT, timeoutMs: 300_000 })
}

function digests(root: string): Record<string, string> {
  const out: Record<string, string> = {}
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name)
      if (statSync(p).isDirectory()) walk(p)
      else out[relative(root, p)] = createHash('sha256').update(readFileSync(p)).digest('hex')
    }
  }
  walk(root)
  return out
}

t.test('cold workflow: snapshot to DEEP_ARCHIVE, browse, plan, request, wait, restore', async (t) => {
  if (!haveServer(t, s3rverMissing())) return
  const dir = t.testdir() // first: a later t.testdir() would empty the folder s3rver keeps its files in
  const upstream = await startS3rver(t)
  const gw = await startGateway(t, upstream)
  const bucket = await gw.createBucket()
  const src = join(dir, 'thesis')
  writeTree(src, {
    'data/run1.bin': seededBytes('run1', 3 << 20),
    'data/run2.bin': seededBytes('run2', 2 << 20),
    'paper/main.tex': seededText('tex', 200_000),
    'paper/fig1.pdf': seededBytes('fig', 150_000),
  })
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: join(dir, 'home'), LANG: 'C.UTF-8', COLDSTORE_PASSWORD: 'cold storage test', ...gw.env() }
  const repo = `${gw.url(bucket, 'archive')}&storage_class=DEEP_ARCHIVE`
  const at = (cache: string): string[] => ['--repo', repo, '--cache-dir', join(dir, cache)]

  exits(t, await cli(['init', ...at('cache')], env), 0, 'init')
  exits(t, await cli(['snapshot', src, ...at('cache')], env), 0, 'snapshot')
  const cold = [...new Set(gw.log.filter((e) => e.key.includes('/data/') && e.method === 'PUT').map((e) => e.key))]
  t.ok(cold.length >= 1, `the snapshot wrote ${cold.length} data packs`)
  for (const k of cold) t.equal(gw.objectState(bucket, k)?.storageClass, 'DEEP_ARCHIVE', `${k} is in DEEP_ARCHIVE`)

  // Listing and browsing, from an empty cache (nothing local to lean on), touch no cold object.
  const mark = gw.log.length
  const list = await cli(['snapshots', '--json', ...at('cache-2')], env)
  exits(t, list, 0, 'snapshots')
  const ls = await cli(['ls', 'latest', '--recursive', '--json', ...at('cache-2')], env)
  exits(t, ls, 0, 'ls --recursive')
  t.match(ls.stdout, /main\.tex/)
  t.same(gw.log.slice(mark).filter((e) => e.objectClass === 'DEEP_ARCHIVE'), [], 'listing and browsing touched no DEEP_ARCHIVE object')

  // restore: the plan, and exit 4 (nothing is written before the data is readable).
  const target = join(dir, 'restored')
  const plan = await cli(['restore', 'latest', '--target', target, '--json', ...at('cache-2')], env)
  exits(t, plan, 4, 'restore before retrieval')
  const doc = JSON.parse(plan.stdout) as { retrieval: { status: string; total: { objects: number; bytes: number }; archived: { objects: number }; options: { storage_class: string; options: { tier: string; hours: number[]; cost_usd: number }[] }[] } }
  t.equal(doc.retrieval.status, 'retrieval-needed')
  t.equal(doc.retrieval.total.objects, cold.length, 'the plan names every data pack the restore reads')
  t.equal(doc.retrieval.archived.objects, cold.length)
  t.ok(doc.retrieval.total.bytes > 5 << 20, 'and their bytes')
  const tiers = doc.retrieval.options[0].options
  t.same(tiers.map((x) => x.tier), ['Standard', 'Bulk'], 'Deep Archive tiers')
  t.same(tiers.map((x) => x.hours), [[9, 12], [24, 48]], 'with the typical wait')
  t.ok(tiers.every((x) => x.cost_usd >= 0), 'and an estimated cost')
  const text = await cli(['restore', 'latest', '--target', target, ...at('cache-2')], env)
  exits(t, text, 4, 'restore before retrieval (text)')
  t.match(text.stderr, /in archive storage not yet requested/)
  t.match(text.stderr, /DEEP_ARCHIVE Standard\s+9–12 hours\s+~\$\d+\.\d\d/)
  t.match(text.stderr, /--request-retrieval \[--tier Standard\|Bulk\]/)
  t.throws(() => statSync(target), 'nothing was restored')

  // verify --read-data does not read archived packs either: it says so and exits 4.
  const v0 = await cli(['verify', '--read-data', '--json', ...at('cache-2')], env)
  exits(t, v0, 4, 'verify --read-data before retrieval')
  t.match(JSON.parse(v0.stdout), { ok: true, findings: [{ kind: 'archived_packs_unread' }], retrieval: { status: 'retrieval-needed' } })

  // Request, Bulk tier.
  const req = await cli(['restore', 'latest', '--target', target, '--request-retrieval', '--tier', 'Bulk', ...at('cache-2')], env)
  exits(t, req, 4, 'request retrieval')
  t.match(req.stderr, new RegExp(`requested retrieval of ${cold.length} packs .*tier Bulk, typically readable 24–48 hours from now`))
  for (const k of cold) t.match(gw.objectState(bucket, k), { restore: 'requested', restoreTier: 'Bulk', restoreDays: 7 }, `${k}: restore requested`)

  // Re-running while pending: nothing requested twice.
  const restoresBefore = gw.log.filter((e) => e.subresource === 'restore').length
  const pending = await cli(['restore', 'latest', '--target', target, '--request-retrieval', '--tier', 'Bulk', ...at('cache-2')], env)
  exits(t, pending, 4, 'still pending')
  t.match(pending.stderr, /being retrieved|waiting for the retrieval/)
  t.equal(gw.log.filter((e) => e.subresource === 'restore').length, restoresBefore, 'no second restore request')

  // The provider is done: the same command restores, byte-identical.
  t.equal(gw.completeRestores(), cold.length)
  const done = await cli(['restore', 'latest', '--target', target, ...at('cache-2')], env)
  exits(t, done, 0, 'restore once readable')
  t.same(digests(join(target, 'thesis')), digests(src), 'restored files are byte-identical')
  exits(t, await cli(['verify', '--read-data', ...at('cache-2')], env), 0, 'verify --read-data once readable')
})
