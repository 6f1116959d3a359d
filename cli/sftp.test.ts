/**
 * The built CLI with an sftp:// repository on a real OpenSSH sshd (engine/remote/sftp/testing/sshd.ts):
 * init, snapshot, restore (byte-identical), verify --read-data, with the SSH key and known_hosts file given
 * to the child process only through its environment (HOME/.ssh/id_ed25519, COLDSTORE_SSH_KNOWN_HOSTS);
 * and the message of a refused host key.
 */
import t, { type Test } from 'tap'
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fingerprint } from '../engine/remote/sftp/known-hosts.js'
import { sshdMissing, startSshd } from '../engine/remote/sftp/testing/sshd.js'
import { seededBytes, seededText, writeTree } from '../engine/testing/test-repo.js'
import { ROOT, ensureBuilt } from './testing/build.js'
import { exits, runCli, type CliResult } from './testing/harness.js'

type Result = CliResult

function run(args: readonly string[], env: NodeJS.ProcessEnv): Promise<Result> {
  return runCli(args, { env, cwd: ROOT, timeoutMs: 120_000 })
}

/** Every regular file under `dir`, relative path → bytes. */
function files(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>()
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name)
      if (statSync(p).isDirectory()) walk(p)
      else out.set(relative(dir, p), readFileSync(p))
    }
  }
  walk(dir)
  return out
}

const missing = sshdMissing()
if (missing !== null) {
  t.test('sshd', async (t) => {
    if (process.env.CI === 'true') t.fail(`${missing} (CI installs it in .ci/run)`)
    else t.pass('skipped', { skip: missing })
  })
} else {
  t.test('init, snapshot, restore and verify --read-data on an sftp:// repository', async (t) => {
    ensureBuilt(t)
    const sshd = await startSshd(t)
    const base = sshd.dir
    const home = join(base, 'cli-home')
    mkdirSync(join(home, '.ssh'), { recursive: true })
    copyFileSync(sshd.keyFile, join(home, '.ssh', 'id_ed25519'))
    chmodSync(join(home, '.ssh', 'id_ed25519'), 0o600)
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: home,
      LANG: 'C.UTF-8',
      COLDSTORE_PASSWORD: 'correct horse battery staple',
      COLDSTORE_SSH_KNOWN_HOSTS: sshd.knownHostsFile,
    }
    const repoDir = join(sshd.root, 'repo')
    const repo = `sftp://${sshd.user}@127.0.0.1:${sshd.port}${repoDir}`
    const cache = join(base, 'cache')
    const cs = (args: readonly string[], extra: NodeJS.ProcessEnv = {}): Promise<Result> => run([...args, '--repo', repo, '--cache-dir', cache], { ...env, ...extra })

    const src = join(base, 'src')
    writeTree(src, {
      'big.bin': seededBytes('big', 3 * 1024 * 1024 + 17),
      'text/log.txt': seededText('log', 512 * 1024),
      'sub/deep/b.dat': seededBytes('b', 100_000),
      'empty': '',
    })

    const init = await cs(['init', '--json'])
    exits(t, init, 0, 'init')
    t.match(JSON.parse(init.stdout || '{}'), { location: `sftp://127.0.0.1:${sshd.port}${repoDir}` }, 'location without the user')
    t.ok(existsSync(join(repoDir, 'config')), 'config written on the server')

    const snap = await cs(['snapshot', src, '--json'])
    exits(t, snap, 0, 'snapshot')
    t.ok(readdirSync(join(repoDir, 'snapshots')).length === 1, 'one snapshot object on the server')
    t.ok(existsSync(join(repoDir, 'data')), 'data packs on the server')

    const target = join(base, 'restored')
    exits(t, await cs(['restore', 'latest', '--target', target]), 0, 'restore')
    const want = files(src)
    const got = files(join(target, 'src'))
    t.same([...got.keys()], [...want.keys()], 'same files restored')
    t.ok([...want].every(([rel, data]) => got.get(rel)?.equals(data)), 'every file byte-identical')

    const verify = await cs(['verify', '--read-data', '--json'])
    exits(t, verify, 0, 'verify --read-data')

    // A host the known_hosts file does not list: a clear refusal that names the file and the fingerprint.
    const emptyKnownHosts = join(base, 'empty_known_hosts')
    writeFileSync(emptyKnownHosts, '')
    const refused = await cs(['snapshots'], { COLDSTORE_SSH_KNOWN_HOSTS: emptyKnownHosts })
    t.not(refused.code, 0, 'snapshots with an unknown host key fails')
    const fp = fingerprint(Buffer.from(sshd.hostKeys[0].split(' ')[1], 'base64'))
    t.match(refused.stderr, 'host key', 'says it is about the host key')
    t.match(refused.stderr, emptyKnownHosts, 'names the file it checked')
    t.match(refused.stderr, fp, 'shows the key fingerprint')
    t.equal(refused.stdout, '', 'nothing on stdout')
  })
}
