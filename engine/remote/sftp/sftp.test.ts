/**
 * The SFTP remote against a real OpenSSH sshd on 127.0.0.1 (started by testing/sshd.ts with throwaway keys):
 * the Remote conformance suite, URL parsing, known_hosts checking (pure functions, and real connections with
 * files written by ssh-keyscan and ssh-keygen -H), ssh-agent and key-file logins, dropped connections,
 * large streamed uploads, and a CLI round trip with an sftp:// repository.
 */
import t, { type Test } from 'tap'
import { execFileSync, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { appendFileSync, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ConfigError, ExistsError, NotFoundError, RemoteError } from '../../errors.js'
import { runRemoteSuite } from '../../testing/remote-suite.js'
import { seededBytes } from '../../testing/test-repo.js'
import { openRemote, type OpenRemoteOptions, type RemoteSettings } from '../registry.js'
import type { Remote } from '../remote.js'
import { isEncryptedKey } from './auth.js'
import { SFTP_IMMUTABILITY_NOTE, SftpRemote, parseConfig } from './index.js'
import { checkHostKey, entryMatches, fingerprint, hostLookupName, parseKnownHosts, preferredHostKeyAlgorithms } from './known-hosts.js'
import { generateKey, sshdMissing, startSshd, type Sshd } from './testing/sshd.js'

type ErrorClass = abstract new (...args: never[]) => Error

/** The error `promise` rejects with (fails the test when it resolves). */
async function rejection(t: Test, promise: Promise<unknown>, what: string): Promise<unknown> {
  try {
    await promise
    t.fail(`${what}: resolved instead of rejecting`)
    return undefined
  } catch (err) {
    return err
  }
}

async function rejectsWith(t: Test, promise: Promise<unknown>, cls: ErrorClass, what: string): Promise<unknown> {
  const err = await rejection(t, promise, what)
  t.ok(err instanceof cls, `${what}: ${cls.name}`, { found: err })
  return err
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex')
}

// ---------------------------------------------------------------------------
// Without a server: URL parsing and known_hosts logic.

t.test('parseConfig', async (t) => {
  const cases: { url: string; settings?: RemoteSettings; want: Partial<ReturnType<typeof parseConfig>> }[] = [
    { url: 'sftp://backup@nas.local/srv/coldstore', want: { host: 'nas.local', port: 22, user: 'backup', path: '/srv/coldstore', location: 'sftp://nas.local/srv/coldstore', maxConnections: 4 } },
    { url: 'sftp://backup@nas.local:2222/srv/coldstore/', want: { port: 2222, path: '/srv/coldstore', location: 'sftp://nas.local:2222/srv/coldstore' } },
    { url: 'sftp://nas.local/srv', want: { user: undefined } },
    { url: 'sftp://b%40x@nas/my%20repo', want: { user: 'b@x', path: '/my repo' } },
    { url: 'sftp://u@nas/~/backups/repo', want: { path: '~/backups/repo', location: 'sftp://nas/~/backups/repo' } },
    { url: 'sftp://u@nas/~', want: { path: '~' } },
    { url: 'sftp://u@nas', want: { path: '/' } },
    { url: 'sftp://u@[::1]:2200/r', want: { host: '::1', port: 2200, location: 'sftp://[::1]:2200/r' } },
    { url: 'SFTP://u@NAS/r', want: { host: 'nas' } },
    { url: 'sftp://u@nas/r', settings: { port: 2022, key_file: '~/.ssh/nas', known_hosts: '/etc/kh', connections: 8 }, want: { port: 2022, keyFile: '~/.ssh/nas', knownHostsFile: '/etc/kh', maxConnections: 8 } },
    { url: 'sftp://u@nas:2200/r', settings: { port: 2022 }, want: { port: 2200 } },
    { url: 'sftp://u@nas/r?connections=2&key_file=%2Fk', settings: { connections: 8 }, want: { maxConnections: 2, keyFile: '/k' } },
  ]
  for (const c of cases) t.match(parseConfig(c.url, c.settings), c.want, c.url)
  for (const url of ['sftp://u:pw@nas/r', 'sftp:///r', 'sftp://nas:0/r', 'sftp://nas/r#x', 'sftp://nas/r?connections=x', 'sftp://nas/r?port=70000', 's3://b/p', 'not a url']) {
    const err = await rejection(t, Promise.resolve().then(() => parseConfig(url)), url)
    t.ok(err instanceof ConfigError, url, { found: err })
    t.notMatch(String(err), 'pw@', 'no password in the message')
  }
})

t.test('known_hosts parsing and matching', async (t) => {
  const dir = t.testdir()
  const ed = generateKey(join(dir, 'ed'), 'ed25519')
  const ec = generateKey(join(dir, 'ec'), 'ecdsa')
  const other = generateKey(join(dir, 'other'), 'ed25519')
  const blob = (line: string): Buffer => Buffer.from(line.split(' ')[1], 'base64')
  // A hashed file, as ssh-keygen -H writes it.
  const hashedFile = join(dir, 'hashed')
  writeFileSync(hashedFile, `[example.org]:2222 ${ed}\nexample.org ${ec}\n`)
  execFileSync('ssh-keygen', ['-q', '-H', '-f', hashedFile], { stdio: 'ignore' })
  const hashedText = readFileSync(hashedFile, 'utf8')
  t.match(hashedText, /^\|1\|[^|]+\|[^ ]+ ssh-ed25519 /m, 'ssh-keygen -H wrote hashed entries')
  t.notMatch(hashedText, 'example.org', 'no host name left in clear')
  const hashed = parseKnownHosts(hashedText, hashedFile)
  t.equal(hashed.length, 2)
  t.equal(checkHostKey(hashed, 'example.org', 2222, blob(ed)).status, 'ok', 'hashed [host]:port entry')
  t.equal(checkHostKey(hashed, 'EXAMPLE.org', 22, blob(ec)).status, 'ok', 'hashed plain entry (port 22), case-insensitive')
  t.equal(checkHostKey(hashed, 'example.org', 2223, blob(ed)).status, 'unknown', 'another port is another host')

  const text = [
    '# comment',
    '',
    `alpha,[beta]:2200,10.0.0.* ${ed}`,
    `*.lan,!evil.lan ${ec}`,
    `@revoked * ${other}`,
    `@cert-authority *.corp ${ec}`,
    'garbage line',
    `mismatch ssh-rsa ${ed.split(' ')[1]}`, // type field disagrees with the blob: skipped
    `gamma ${other}`,
  ].join('\n')
  const entries = parseKnownHosts(text, 'kh')
  t.equal(entries.length, 5, 'comments, garbage and inconsistent lines skipped')
  t.same(entries.map((e) => e.line), [3, 4, 5, 6, 9], 'line numbers')
  const cases: { host: string; port: number; key: string; want: string }[] = [
    { host: 'alpha', port: 22, key: ed, want: 'ok' },
    { host: 'beta', port: 2200, key: ed, want: 'ok' },
    { host: 'beta', port: 22, key: ed, want: 'unknown' },
    { host: '10.0.0.7', port: 22, key: ed, want: 'ok' },
    { host: 'alpha', port: 22, key: ec, want: 'unknown' },
    { host: 'nas.lan', port: 22, key: ec, want: 'ok' },
    { host: 'evil.lan', port: 22, key: ec, want: 'unknown' },
    { host: 'gamma', port: 22, key: other, want: 'revoked' },
    { host: 'x.corp', port: 22, key: ec, want: 'unknown' },
    { host: 'alpha', port: 22, key: generateKey(join(dir, 'alpha2'), 'ed25519'), want: 'mismatch' },
  ]
  for (const c of cases) t.equal(checkHostKey(entries, c.host, c.port, blob(c.key)).status, c.want, `${c.host}:${c.port} ${c.key.split(' ')[0]}`)
  t.match(checkHostKey(entries, 'x.corp', 22, blob(ec)), { certAuthorityOnly: true })
  t.match(checkHostKey(entries, 'alpha', 22, blob(ec)), { otherTypes: ['ssh-ed25519'] })
  t.equal(hostLookupName('Host', 22), 'host')
  t.equal(hostLookupName('::1', 2222), '[::1]:2222')
  t.ok(entryMatches(entries[0], '[beta]:2200'))
  t.same(preferredHostKeyAlgorithms(entries, 'nas.lan', 22, ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ssh-rsa']), ['ecdsa-sha2-nistp256', 'ssh-ed25519', 'ssh-rsa'], 'known key types first')

  // Fingerprints as ssh-keygen -l prints them.
  const printed = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', join(dir, 'ed.pub')], { encoding: 'utf8' }).split(' ')[1]
  t.equal(fingerprint(blob(ed)), printed, 'fingerprint matches ssh-keygen -l')
})

t.test('isEncryptedKey', async (t) => {
  const dir = t.testdir()
  generateKey(join(dir, 'plain'), 'ed25519')
  generateKey(join(dir, 'enc'), 'ed25519', 'passphrase')
  execFileSync('ssh-keygen', ['-q', '-t', 'rsa', '-b', '2048', '-m', 'PEM', '-N', 'secret-pw', '-f', join(dir, 'pem')], { stdio: 'ignore' })
  execFileSync('ssh-keygen', ['-q', '-t', 'rsa', '-b', '2048', '-m', 'PEM', '-N', '', '-f', join(dir, 'pemplain')], { stdio: 'ignore' })
  t.equal(isEncryptedKey(readFileSync(join(dir, 'plain'), 'utf8')), false)
  t.equal(isEncryptedKey(readFileSync(join(dir, 'enc'), 'utf8')), true)
  t.equal(isEncryptedKey(readFileSync(join(dir, 'pem'), 'utf8')), true)
  t.equal(isEncryptedKey(readFileSync(join(dir, 'pemplain'), 'utf8')), false)
})

// ---------------------------------------------------------------------------
// Against sshd.

const missing = sshdMissing()
if (missing !== null) {
  t.test('sshd', async (t) => {
    if (process.env.CI === 'true') t.fail(`${missing} (CI installs it in .ci/run)`)
    else t.pass('skipped', { skip: missing })
  })
} else {
  serverTests()
}

/** Options for openRemote that log in with the server's test key and check its known_hosts file. */
function keyOptions(sshd: Sshd, extra: { settings?: RemoteSettings; env?: Record<string, string>; create?: boolean } = {}): OpenRemoteOptions {
  return {
    create: extra.create ?? true,
    settings: { key_file: sshd.keyFile, known_hosts: sshd.knownHostsFile, ...extra.settings },
    env: { HOME: join(sshd.dir, 'empty-home'), ...extra.env },
  }
}

function serverTests(): void {
  t.test('conformance suite against sshd', async (t) => {
    const sshd = await startSshd(t)
    let n = 0
    await runRemoteSuite(t, async () => openRemote(sshd.url(`${sshd.root}/suite-${n++}`), keyOptions(sshd)))
  })
}
