/**
 * The two remote forms of issue 5's acceptance, as a user types them, against real servers on 127.0.0.1:
 * - the hand-off: `freeze --handoff "transfer-to-alice" --include-setup-docs --contact ... . sftp://...`
 *   over OpenSSH's sshd (engine/remote/sftp/testing/sshd.ts), which cannot enforce immutability and says so;
 * - the compliance form: `freeze --audit --compliance SOX --retention-years 7 --legal-hold . s3://...`
 *   against s3rver behind the project's S3 test gateway, which implements S3 Object Lock (retention,
 *   legal hold, refused deletes) as AWS does; no local S3 server honours Object Lock.
 */
import t, { type Test } from 'tap'
import { chmodSync, copyFileSync, mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { DeleteObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { parse as parseYaml } from 'yaml'
import { startGateway } from '../engine/remote/s3/testing/gateway.js'
import { haveServer } from '../engine/remote/s3/testing/s3-server.js'
import { s3rverMissing, startS3rver } from '../engine/remote/s3/testing/s3rver.js'
import { sshdMissing, startSshd } from '../engine/remote/sftp/testing/sshd.js'
import { seededText, writeTree } from '../engine/testing/test-repo.js'
import { ensureBuilt } from './testing/build.js'
import { exits, runCli, type CliResult } from './testing/harness.js'

ensureBuilt(t)

type Result = CliResult

function run(args: readonly string[], env: NodeJS.ProcessEnv, cwd: string): Promise<Result> {
  return runCli(args, { env, cwd, timeoutMs: 240_000 })
}

/** A small project (not a git repository: the golden path with git is cli/freeze.test.ts). */
function project(dir: string): string {
  const p = join(dir, 'project')
  writeTree(p, { 'README.md': '# handed over\n', 'analysis/run.py': seededText('py', 20_000), 'data/results.csv': seededText('csv', 50_000) })
  return p
}

t.test('hand-off over SFTP: freeze with SETUP.md, inspect, verify, restore', async (t) => {
  const missing = sshdMissing()
  if (missing !== null) {
    if (process.env.CI === 'true') t.fail(`${missing} (CI installs it in .ci/run)`)
    else t.pass('skipped', { skip: missing })
    return
  }
  const sshd = await startSshd(t)
  const home = join(sshd.dir, 'cli-home')
  mkdirSync(join(home, '.ssh'), { recursive: true })
  copyFileSync(sshd.keyFile, join(home, '.ssh', 'id_ed25519'))
  chmodSync(join(home, '.ssh', 'id_ed25519'), 0o600)
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, LANG: 'C.UTF-8', COLDSTORE_PASSWORD: 'hand-off password',
    COLDSTORE_SSH_KNOWN_HOSTS: sshd.knownHostsFile, XDG_CACHE_HOME: join(sshd.dir, 'cache'), XDG_CONFIG_HOME: join(sshd.dir, 'config'),
  }
  const p = project(sshd.dir)
  const dest = `sftp://${sshd.user}@127.0.0.1:${sshd.port}${join(sshd.root, 'handoff')}`
  const r = await run(['freeze', '--handoff', 'transfer-to-alice', '--include-setup-docs', '--contact', 'alice@university.edu', '--json', '.', dest], env, p)
  exits(t, r, 0, 'hand-off freeze')
  const j = JSON.parse(r.stdout)
  t.equal(j.event.type, 'handoff')
  t.equal(j.event.name, 'transfer-to-alice')
  t.equal(j.event.contact, 'alice@university.edu')
  const id: string = j.id
  const at = ['--repo', dest]

  const y = parseYaml((await run(['inspect', id, ...at], env, p)).stdout)
  t.same(y.event, { type: 'handoff', name: 'transfer-to-alice', deliverable: null, description: null, contact: 'alice@university.edu' })
  t.match(y.destination ?? y.source, /./, 'inspect shows where it came from')
  exits(t, await run(['verify', id, ...at], env, p), 0, 'verify the hand-off')

  const target = join(sshd.dir, 'alice')
  exits(t, await run(['restore', id, '--target', target, ...at], env, p), 0, 'restore')
  const setup = readFileSync(join(target, 'coldstore-freeze', 'SETUP.md'), 'utf8')
  t.match(setup, /alice@university\.edu/, 'SETUP.md names the contact')
  t.match(setup, /sftp:\/\/127\.0\.0\.1/, 'SETUP.md names where the freeze is, without credentials')
  t.notMatch(setup, /hand-off password/, 'and never the password')
  t.equal(readFileSync(join(target, 'project', 'README.md'), 'utf8'), '# handed over\n')

  // With a retention request, SFTP says plainly that it cannot enforce it.
  const held = await run(['freeze', '--handoff', 'with-hold', '--legal-hold', '--json', '.', dest], env, p)
  exits(t, held, 0, 'a freeze asking for a legal hold on SFTP')
  const hj = JSON.parse(held.stdout)
  t.equal(hj.immutability.enforced, false)
  t.match(hj.immutability.note, /SFTP server cannot enforce immutability/)
})

t.test('compliance over S3 with Object Lock: SOX, 7 years, legal hold, enforced by the store', async (t) => {
  if (!haveServer(t, s3rverMissing())) return
  const dir = t.testdir() // first: a later t.testdir() would empty the folder s3rver keeps its files in
  const upstream = await startS3rver(t)
  const gw = await startGateway(t, upstream)
  const bucket = await gw.createBucket()
  gw.enableObjectLock(bucket)
  const plain = await gw.createBucket()
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: join(dir, 'home'), LANG: 'C.UTF-8', COLDSTORE_PASSWORD: 'compliance password',
    XDG_CACHE_HOME: join(dir, 'cache'), XDG_CONFIG_HOME: join(dir, 'config'), ...gw.env(),
  }
  const p = project(dir)
  const dest = gw.url(bucket, 'fy2026')
  const args = ['freeze', '--audit', '--compliance', 'SOX', '--retention-years', '7', '--legal-hold', '--contact', 'cfo@corp.example', '--description', 'FY2026 year-end audit']
  const r = await run([...args, '--json', '.', dest], env, p)
  exits(t, r, 0, 'SOX freeze to S3')
  const j = JSON.parse(r.stdout)
  t.equal(j.immutability.enforced, true)
  t.match(j.immutability.mechanism, /Object Lock/)
  t.equal(j.immutability.retention_years, 7)
  t.ok(j.immutability.protected_objects >= 3, `${j.immutability.protected_objects} objects protected`)
  const snapKey = `fy2026/snapshots/${j.id}`
  const st = gw.objectState(bucket, snapKey)
  t.equal(st?.legalHold, true, 'the snapshot object has a legal hold')
  t.equal(st?.retention?.mode, 'COMPLIANCE', 'and COMPLIANCE-mode retention')
  const years = ((st?.retention?.until.getTime() ?? 0) - Date.now()) / (365.25 * 86_400_000)
  t.ok(years > 6.9 && years < 7.1, `retained for 7 years (${years.toFixed(2)})`)

  // The store itself refuses to delete it, whoever asks.
  const s3 = new S3Client({ endpoint: gw.endpoint, region: gw.region, forcePathStyle: true, credentials: { accessKeyId: gw.accessKeyId, secretAccessKey: gw.secretAccessKey } })
  t.teardown(() => s3.destroy())
  const del = await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: snapKey })).then(() => null, (e: unknown) => e)
  t.match(del, { name: 'AccessDenied' }, 'a delete of the protected snapshot object is refused by the store')

  const y = parseYaml((await run(['inspect', j.id, '--repo', dest], env, p)).stdout)
  t.equal(y.compliance.template, 'SOX')
  t.match(y.immutability.status, /^enforced: S3 Object Lock/)
  t.equal(y.immutability.snapshot_object_protected_now, true)
  exits(t, await run(['verify', j.id, '--repo', dest], env, p), 0, 'verify the compliance freeze')
  const audit = await run(['audit', '--verify', '--repo', dest], env, p)
  exits(t, audit, 0, 'audit --verify')

  // A bucket without Object Lock: the freeze fails clearly rather than pretending.
  const bad = await run([...args, '.', gw.url(plain, 'x')], env, p)
  t.not(bad.code, 0, 'a compliance freeze to a bucket without Object Lock fails')
  t.match(bad.stderr, /Object Lock/i, 'and says why')
})
