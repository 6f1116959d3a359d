/**
 * The SFTP remote against a real OpenSSH sshd on 127.0.0.1 (started by testing/sshd.ts with throwaway keys):
 * the Remote conformance suite, URL parsing, known_hosts checking (pure functions, and real connections with
 * files written by ssh-keyscan and ssh-keygen -H), ssh-agent and key-file logins, dropped connections,
 * large streamed uploads, and a CLI round trip with an sftp:// repository.
 */
import t, { type Test } from 'tap'
import { execFileSync, spawn } from 'node:child_process'
import { createCipheriv, createHash } from 'node:crypto'
import { appendFileSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, watch, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ConfigError, ExistsError, NotFoundError, RemoteError } from '../../errors.js'
import { runRemoteSuite } from '../../testing/remote-suite.js'
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

async function names(remote: Remote, prefix: string): Promise<string[]> {
  const out: string[] = []
  for await (const info of remote.list(prefix)) out.push(info.name)
  return out.sort()
}

/** Deterministic pseudo-random bytes, fast enough for tens of MiB (AES-256-CTR keyed by the seed). */
function bigBytes(seed: string, size: number): Buffer {
  const key = createHash('sha256').update(seed).digest()
  return createCipheriv('aes-256-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(size))
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

/** Starts `ssh-agent -D` on a socket in a fresh /tmp directory (socket paths are short) holding `keys`. */
async function startAgent(t: Test, keys: readonly string[]): Promise<string> {
  const dir = mkdtempSync('/tmp/coldstore-agent-')
  const sock = join(dir, 'agent.sock')
  const agent = spawn('ssh-agent', ['-D', '-a', sock], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(async () => {
    if (agent.exitCode === null && agent.signalCode === null) {
      const exited = new Promise((resolve) => agent.once('exit', resolve))
      agent.kill()
      await exited
    }
    rmSync(dir, { recursive: true, force: true })
  })
  // With -D it prints the SSH_AUTH_SOCK line once the socket is bound.
  await new Promise<void>((resolve, reject) => {
    let out = ''
    agent.stdout.setEncoding('utf8')
    agent.stdout.on('data', (d: string) => {
      out += d
      if (out.includes('SSH_AUTH_SOCK')) resolve()
    })
    agent.on('exit', (code) => reject(new Error(`ssh-agent exited (${code}): ${out}`)))
  })
  for (const key of keys) execFileSync('ssh-add', ['-q', key], { env: { PATH: process.env.PATH, SSH_AUTH_SOCK: sock }, stdio: 'ignore' })
  return sock
}

/** The server's ed25519 host key blob and fingerprint. */
function hostKey(sshd: Sshd, i = 0): { blob: Buffer; fp: string; line: string } {
  const line = sshd.hostKeys[i]
  const blob = Buffer.from(line.split(' ')[1], 'base64')
  return { blob, fp: fingerprint(blob), line }
}

function serverTests(): void {
  t.test('conformance suite against sshd', async (t) => {
    const sshd = await startSshd(t)
    let n = 0
    await runRemoteSuite(t, async () => openRemote(sshd.url(`${sshd.root}/suite-${n++}`), keyOptions(sshd)))
  })

  t.test('host key checking', async (t) => {
    // Two host keys, so that the client must negotiate the type known_hosts lists.
    const sshd = await startSshd(t, { hostKeyTypes: ['ed25519', 'ecdsa'] })
    const ed = hostKey(sshd, 0)
    const ec = hostKey(sshd, 1)
    const hp = `[127.0.0.1]:${sshd.port}`
    const printed = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', join(sshd.dir, 'host_ed25519.pub')], { encoding: 'utf8' }).split(' ')[1]
    t.equal(ed.fp, printed, 'our fingerprint is the one ssh-keygen -l prints')
    const stranger = generateKey(join(sshd.dir, 'stranger'), 'ed25519')
    const rsa = generateKey(join(sshd.dir, 'rsa-other'), 'rsa')
    let n = 0
    const file = (text: string): string => {
      const f = join(sshd.dir, `kh-${n++}`)
      writeFileSync(f, text)
      return f
    }
    const hashed = file(`${hp} ${ed.line}\n`)
    execFileSync('ssh-keygen', ['-q', '-H', '-f', hashed], { stdio: 'ignore' })
    t.match(readFileSync(hashed, 'utf8'), /^\|1\|/, 'hashed by ssh-keygen -H')
    const scanned = execFileSync('ssh-keyscan', ['-p', String(sshd.port), '-t', 'ed25519', '127.0.0.1'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
    t.match(scanned, `${hp} ssh-ed25519 `, 'ssh-keyscan writes [host]:port entries')
    const open = (knownHosts: string): Promise<Remote> => openRemote(sshd.url(), keyOptions(sshd, { settings: { known_hosts: knownHosts } }))

    const accepted: { name: string; file: string }[] = [
      { name: '[host]:port entries (the starter\'s file)', file: sshd.knownHostsFile },
      { name: 'ssh-keyscan output', file: file(scanned) },
      { name: 'a hashed entry', file: hashed },
      { name: 'a comma list with a wildcard, after comments', file: file(`# nas\nnas.lan,[127.0.0.*]:${sshd.port},other ${ed.line}\n`) },
      { name: 'only the ecdsa key known: the client asks for that type', file: file(`${hp} ${ec.line}\n`) },
      { name: 'a stale key of another type beside the right one', file: file(`${hp} ${rsa}\n${hp} ${ec.line}\n`) },
    ]
    for (const c of accepted) {
      const remote = await open(c.file)
      t.ok(remote instanceof SftpRemote, `accepted: ${c.name}`)
      await remote.put('probe', Buffer.from('x'))
      await remote.close()
    }

    const refused: { name: string; file: string; message: (string | RegExp)[] }[] = [
      { name: 'a missing file', file: join(sshd.dir, 'no-such-file'), message: ['not known', `${join(sshd.dir, 'no-such-file')} (does not exist)`, ed.fp, `ssh-keyscan -p ${sshd.port} 127.0.0.1`] },
      { name: 'no entry for the host', file: file(`other.host ${ed.line}\n`), message: ['not known', ed.fp, 'ssh-ed25519'] },
      { name: 'a plain entry, which means port 22', file: file(`127.0.0.1 ${ed.line}\n`), message: ['not known', hp] },
      { name: 'a different key of the same type', file: file(`# old\n${hp} ${stranger}\n`), message: ['HOST KEY MISMATCH', ed.fp, 'line 2', 'man-in-the-middle', `ssh-keygen -R '${hp}'`] },
      { name: 'the right key, revoked', file: file(`${hp} ${ed.line}\n@revoked * ${ed.line}\n`), message: ['@revoked', ed.fp, 'line 2'] },
      { name: 'only a key type the server does not have', file: file(`${hp} ${rsa}\n`), message: ['not known', 'only lists ssh-rsa'] },
      { name: 'only a @cert-authority line', file: file(`@cert-authority ${hp} ${ed.line}\n`), message: ['not known', 'host certificates are not supported'] },
    ]
    for (const c of refused) {
      const err = await rejectsWith(t, open(c.file), RemoteError, `refused: ${c.name}`)
      t.equal((err as RemoteError).transient, false, `${c.name}: not transient`)
      for (const m of c.message) t.match((err as Error).message, m, `${c.name}: message says ${m}`)
    }

    // Where the file comes from: setting, else COLDSTORE_SSH_KNOWN_HOSTS, else $HOME/.ssh/known_hosts.
    const home = join(sshd.dir, 'home-with-known-hosts')
    mkdirSync(join(home, '.ssh'), { recursive: true })
    copyFileSync(sshd.knownHostsFile, join(home, '.ssh', 'known_hosts'))
    const bare = join(sshd.dir, 'bare-home')
    mkdirSync(bare)
    const viaEnv = await openRemote(sshd.url(), { settings: { key_file: sshd.keyFile }, env: { HOME: bare, COLDSTORE_SSH_KNOWN_HOSTS: sshd.knownHostsFile } })
    t.ok(viaEnv instanceof SftpRemote, 'COLDSTORE_SSH_KNOWN_HOSTS names the file')
    await viaEnv.close()
    const viaHome = await openRemote(sshd.url(), { settings: { key_file: sshd.keyFile }, env: { HOME: home } })
    t.ok(viaHome instanceof SftpRemote, '$HOME/.ssh/known_hosts by default')
    await viaHome.close()
    const none = await rejectsWith(t, openRemote(sshd.url(), { settings: { key_file: sshd.keyFile }, env: { HOME: bare } }), RemoteError, 'no known_hosts anywhere')
    t.match((none as Error).message, `${join(bare, '.ssh', 'known_hosts')} (does not exist)`, 'the message names the default file')
    const settingWins = await openRemote(sshd.url(), { settings: { key_file: sshd.keyFile, known_hosts: sshd.knownHostsFile }, env: { HOME: bare, COLDSTORE_SSH_KNOWN_HOSTS: join(sshd.dir, 'no-such-file') } })
    t.ok(settingWins instanceof SftpRemote, 'the known_hosts setting wins over COLDSTORE_SSH_KNOWN_HOSTS')
    await settingWins.close()
  })

  t.test('logins', async (t) => {
    const sshd = await startSshd(t)
    const kh = { known_hosts: sshd.knownHostsFile }
    const emptyHome = join(sshd.dir, 'empty-home')
    mkdirSync(emptyHome, { recursive: true })
    const works = async (what: string, url: string, o: OpenRemoteOptions): Promise<void> => {
      const remote = await openRemote(url, o)
      await remote.put(`logins/${what.replace(/[^a-z0-9]+/gi, '-')}`, Buffer.from(what))
      t.equal((await remote.get(`logins/${what.replace(/[^a-z0-9]+/gi, '-')}`)).toString(), what, `${what}: logged in, put and get`)
      await remote.close()
    }

    await works('key_file setting', sshd.url(), { settings: { ...kh, key_file: sshd.keyFile }, env: { HOME: emptyHome } })

    const home = join(sshd.dir, 'home')
    mkdirSync(join(home, '.ssh'), { recursive: true })
    copyFileSync(sshd.keyFile, join(home, '.ssh', 'id_ed25519'))
    await works('~/.ssh/id_ed25519 by default', sshd.url(), { settings: kh, env: { HOME: home } })
    await works('key_file relative to ~', sshd.url(), { settings: { ...kh, key_file: '~/.ssh/id_ed25519' }, env: { HOME: home } })

    const sock = await startAgent(t, [sshd.keyFile])
    await works('ssh-agent', sshd.url(), { settings: kh, env: { HOME: emptyHome, SSH_AUTH_SOCK: sock } })
    await works('user from USER', sshd.url().replace(`${sshd.user}@`, ''), { settings: { ...kh, key_file: sshd.keyFile }, env: { HOME: emptyHome, USER: sshd.user } })
    const noUser = await rejectsWith(t, openRemote(sshd.url().replace(`${sshd.user}@`, ''), { settings: { ...kh, key_file: sshd.keyFile }, env: { HOME: emptyHome } }), ConfigError, 'no user anywhere')
    t.match((noUser as Error).message, 'no user name')

    // An encrypted key: the passphrase comes from COLDSTORE_SSH_KEY_PASSPHRASE and never shows in messages.
    const passphrase = 'correct-horse-7'
    const encrypted = join(sshd.dir, 'encrypted_ed25519')
    appendFileSync(sshd.authorizedKeysFile, `${generateKey(encrypted, 'ed25519', passphrase)}\n`)
    await works('encrypted key file with the passphrase', sshd.url(), { settings: { ...kh, key_file: encrypted }, env: { HOME: emptyHome, COLDSTORE_SSH_KEY_PASSPHRASE: passphrase } })
    const noPass = await rejectsWith(t, openRemote(sshd.url(), { settings: { ...kh, key_file: encrypted }, env: { HOME: emptyHome } }), ConfigError, 'encrypted key without passphrase')
    t.match((noPass as Error).message, /is encrypted and COLDSTORE_SSH_KEY_PASSPHRASE is not set/)
    const wrong = await rejectsWith(t, openRemote(sshd.url(), { settings: { ...kh, key_file: encrypted }, env: { HOME: emptyHome, COLDSTORE_SSH_KEY_PASSPHRASE: 'not-it-at-all' } }), ConfigError, 'wrong passphrase')
    t.match((wrong as Error).message, /cannot decrypt/)
    t.notMatch((wrong as Error).message, 'not-it-at-all', 'the passphrase is not in the message')
    // An encrypted default key without a passphrase is skipped, and the message says why.
    const encHome = join(sshd.dir, 'enc-home')
    mkdirSync(join(encHome, '.ssh'), { recursive: true })
    copyFileSync(encrypted, join(encHome, '.ssh', 'id_ed25519'))
    const skipped = await rejectsWith(t, openRemote(sshd.url(), { settings: kh, env: { HOME: encHome } }), ConfigError, 'only an encrypted default key')
    t.match((skipped as Error).message, /no SSH credentials.*id_ed25519 is encrypted/)
    await works('encrypted default key with the passphrase', sshd.url(), { settings: kh, env: { HOME: encHome, COLDSTORE_SSH_KEY_PASSPHRASE: passphrase } })

    const none = await rejectsWith(t, openRemote(sshd.url(), { settings: kh, env: { HOME: emptyHome } }), ConfigError, 'no credentials at all')
    t.match((none as Error).message, /SSH_AUTH_SOCK is not set.*id_ed25519/)
    const missingKey = await rejectsWith(t, openRemote(sshd.url(), { settings: { ...kh, key_file: join(sshd.dir, 'nope') } }), ConfigError, 'a key_file that does not exist')
    t.match((missingKey as Error).message, 'ENOENT')

    // A key the server does not accept: not transient, and the message lists what was tried.
    const stranger = join(sshd.dir, 'stranger_ed25519')
    generateKey(stranger)
    const refused = await rejectsWith(t, openRemote(sshd.url(), { settings: { ...kh, key_file: stranger }, env: { HOME: emptyHome } }), RemoteError, 'unauthorized key')
    t.equal((refused as RemoteError).transient, false, 'authentication failure is not transient')
    t.match((refused as Error).message, `authentication as ${sshd.user}@[127.0.0.1]:${sshd.port} failed`)
    t.match((refused as Error).message, `key file ${stranger}`)
    // The agent is tried besides a refused key file.
    await works('agent after a refused key_file', sshd.url(), { settings: { ...kh, key_file: stranger }, env: { HOME: emptyHome, SSH_AUTH_SOCK: sock } })
  })

  t.test('root paths', async (t) => {
    const sshd = await startSshd(t, { testHome: true })
    const home = sshd.home!
    const opts = keyOptions(sshd)
    const rel = await openRemote(`sftp://${sshd.user}@127.0.0.1:${sshd.port}/~/backups/repo`, opts)
    await rel.put('config', Buffer.from('home-relative'))
    t.equal(readFileSync(join(home, 'backups', 'repo', 'config'), 'utf8'), 'home-relative', '~/ is the directory the session starts in; missing parents created')
    t.equal((rel as SftpRemote).root, join(home, 'backups', 'repo'))
    t.equal(rel.properties.location, `sftp://127.0.0.1:${sshd.port}/~/backups/repo`, 'location without the user')
    t.equal((rel.properties as { immutabilityNote?: string }).immutabilityNote, SFTP_IMMUTABILITY_NOTE, 'the note freezes can show')
    t.equal(rel.protection, undefined, 'no protection capability')
    await rel.close()
    const escaped = await openRemote(sshd.url(`${sshd.root}/with%20space`), opts)
    await escaped.put('x', Buffer.from('1'))
    t.ok(existsSync(join(sshd.root, 'with space', 'x')), 'percent-escapes decoded')
    await escaped.close()

    await rejectsWith(t, openRemote(sshd.url(`${sshd.root}/absent`), { ...opts, create: false }), NotFoundError, 'a missing root without create')
    writeFileSync(join(sshd.root, 'a-file'), 'x')
    await rejectsWith(t, openRemote(sshd.url(`${sshd.root}/a-file`), opts), ConfigError, 'a root that is a file')
  })

  t.test('dropped connections fail calls in flight with transient errors, and the next call reconnects', async (t) => {
    const sshd = await startSshd(t)
    const remote = await openRemote(sshd.url(`${sshd.root}/drop`), keyOptions(sshd)) as SftpRemote
    t.teardown(() => remote.close())
    const big = bigBytes('drop', 16 * 1024 * 1024)
    await remote.put('data/big', big)

    // Several calls issued, then every session process killed before they are answered.
    const calls = [
      remote.get('data/big'),
      remote.get('data/big', { offset: 1000, length: 4 * 1024 * 1024 }),
      remote.put('data/other', bigBytes('other', 4 * 1024 * 1024)),
      remote.stat('data/big'),
      remote.delete('data/none'),
    ]
    t.ok(sshd.killSessions() > 0, 'killed the session processes')
    for (const [i, r] of (await Promise.allSettled(calls)).entries()) {
      const err = r.status === 'rejected' ? r.reason : null
      t.ok(err instanceof RemoteError && err.transient, `call ${i}: transient RemoteError`, { found: err ?? r })
    }
    t.ok((await remote.get('data/big')).equals(big), 'the next get reconnects and reads the object')
    t.same(await remote.stat('data/big'), { name: 'data/big', size: big.length })

    // Killed in the middle of an upload: watch the server's directory for the temporary file to grow.
    const dataDir = join(sshd.root, 'drop', 'data')
    const upload = bigBytes('upload', 48 * 1024 * 1024)
    const killedMidway = new Promise<void>((resolve) => {
      const watcher = watch(dataDir, () => {
        const temp = readdirSync(dataDir).find((n) => n.startsWith('.tmp-'))
        if (temp !== undefined && statSync(join(dataDir, temp), { throwIfNoEntry: false })?.size) {
          watcher.close()
          sshd.killSessions()
          resolve()
        }
      })
    })
    const put = remote.put('data/upload', upload)
    await killedMidway
    const err = await rejection(t, put, 'put killed mid-transfer')
    t.ok(err instanceof RemoteError && err.transient, 'the interrupted put is transient', { found: err })
    await rejectsWith(t, remote.stat('data/upload'), NotFoundError, 'no partial object')
    t.notOk((await names(remote, '')).some((n) => n.includes('.tmp-')), 'list never yields the leftover temporary file')
    t.ok(readdirSync(dataDir).some((n) => n.startsWith('.tmp-')), 'the leftover temporary file is there on the server')
    await remote.put('data/upload', upload)
    t.ok((await remote.get('data/upload')).equals(upload), 'the put done again lands whole')

    // The server down: connecting fails transiently; back up: calls work again.
    await sshd.stop()
    const down = await rejection(t, remote.get('data/big', { offset: 0, length: 10 }), 'get while sshd is down')
    t.ok(down instanceof RemoteError && down.transient, 'transient while the server is down', { found: down })
    const refusedAgain = await rejection(t, remote.stat('data/big'), 'stat while sshd is down')
    t.match(refusedAgain, { transient: true, message: /ECONNREFUSED/ }, 'connection refused, transient')
    await sshd.start()
    t.ok((await remote.get('data/big', { offset: 5, length: 10 })).equals(big.subarray(5, 15)), 'works again once the server is back')
  })

  t.test('large putFile, exclusive races and the connection pool', async (t) => {
    const sshd = await startSshd(t)
    const remote = await openRemote(sshd.url(`${sshd.root}/large`), keyOptions(sshd, { settings: { connections: 4 } })) as SftpRemote
    t.teardown(() => remote.close())
    t.equal(remote.properties.maxConnections, 4)

    const local = join(sshd.dir, 'large.bin')
    const chunk = bigBytes('large', 8 * 1024 * 1024)
    writeFileSync(local, '')
    for (let i = 0; i < 12; i++) {
      chunk[0] = i // 12 different 8 MiB pieces: 96 MiB plus a tail that is not a whole request
      appendFileSync(local, chunk)
    }
    appendFileSync(local, chunk.subarray(0, 12345))
    const want = readFileSync(local)
    await remote.putFile('data/la/large', local)
    const onServer = readFileSync(join(sshd.root, 'large', 'data', 'la', 'large'))
    t.equal(sha256(onServer), sha256(want), 'the file on the server is byte-identical')
    t.equal(sha256(await remote.get('data/la/large')), sha256(want), 'and reads back byte-identical')
    t.same(await remote.stat('data/la/large'), { name: 'data/la/large', size: want.length })
    t.ok((await remote.get('data/la/large', { offset: 50_000_000, length: 3_000_000 })).equals(want.subarray(50_000_000, 53_000_000)), 'a range of it')
    t.same(readdirSync(join(sshd.root, 'large', 'data', 'la')), ['large'], 'no temporary file left')
    await rejectsWith(t, remote.putFile('data/la/large', local, { exclusive: true }), ExistsError, 'putFile exclusive over an existing name')
    const noLocal = await rejectsWith(t, remote.putFile('data/la/none', join(sshd.dir, 'absent.bin')), RemoteError, 'putFile of a missing local file')
    t.equal((noLocal as RemoteError).transient, false, 'not transient')

    // Exclusive puts racing on the server (over several connections): exactly one wins, atomically.
    for (let round = 0; round < 3; round++) {
      const contents = Array.from({ length: 8 }, (_, i) => bigBytes(`race-${round}-${i}`, 64 * 1024 + i))
      const results = await Promise.allSettled(contents.map((c) => remote.put(`race/${round}`, c, { exclusive: true })))
      const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []))
      t.equal(won.length, 1, `round ${round}: one exclusive put wins`)
      t.ok(results.every((r) => r.status === 'fulfilled' || r.reason instanceof ExistsError), `round ${round}: the others fail with ExistsError`)
      t.ok(readFileSync(join(sshd.root, 'large', 'race', String(round))).equals(contents[won[0]]), `round ${round}: the object is the winner's`)
    }
    t.same(readdirSync(join(sshd.root, 'large', 'race')).sort(), ['0', '1', '2'], 'the losers leave no temporary files')

    // Parallel calls open more connections, up to the limit.
    await Promise.all(Array.from({ length: 24 }, (_, i) => remote.put(`data/p/${i}`, bigBytes(`p${i}`, 2 * 1024 * 1024))))
    t.ok(remote.connections >= 2 && remote.connections <= 4, `parallel puts used ${remote.connections} connections (2..4)`)
  })
}
