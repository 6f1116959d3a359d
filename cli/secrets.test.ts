/**
 * Secrets stay secret: a full CLI session (init, snapshot, ls, diff, restore, verify, serve, freeze with git
 * metadata, environment, reports and an export, export, audit, repair, status, inspect) with a distinctive
 * repository password and cloud and GitHub credentials in the environment, and a git remote URL holding a
 * token. Then every file the session produced (repository, cache, staging, operation records, config,
 * exports, restored files) and everything it printed is searched for each secret, raw and encoded (base64,
 * hex, URL-encoded), and the command lines the processes ran with (what `ps` shows) too. The same session
 * on an unencrypted repository shows that the secrets are absent, not merely encrypted.
 */
import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { request } from 'node:http'
import { join } from 'node:path'
import { writeTree } from '../engine/testing/test-repo.js'
import { LocalRemote } from '../engine/remote/index.js'
import { Repository } from '../engine/repo/index.js'
import { ensureBuilt, CLI } from './testing/build.js'
import { allFiles, secretForms } from './testing/secrets.js'
import { cliEnv, exits, randomData, runCli, sandbox, textData, type CliResult } from './testing/harness.js'

ensureBuilt(t)

const SECRETS = {
  password: 'Pw-9f3c2a7e-Distinctive-Passphrase',
  awsKeyId: 'AKIADISTINCTIVE7Q2Z',
  awsSecret: 'AwsSecret+9d8c7b6a5f4e3d2c1b0aDistinct',
  gcsKey: 'GcsPrivateKey-Distinctive-0xfeedface',
  github: 'ghp_Distinctive0123456789abcdefABCDEF',
  serveToken: 'ServeTok-distinctive-77889900',
  gitToken: 'GitCred-distinctive-44556677',
}

for (const encrypted of [true, false]) {
  t.test(`a full session on ${encrypted ? 'an encrypted' : 'an unencrypted'} repository leaves no secret behind`, async (t) => {
    const box = sandbox(t, `secrets-${encrypted ? 'enc' : 'plain'}`)
    const proj = join(box, 'proj')
    writeTree(proj, { 'data/a.bin': randomData('a', 400_000), 'notes.txt': textData('n', 30_000), 'package-lock.json': '{"lockfileVersion": 3}\n' })
    const git = (...args: string[]): void => {
      const r = spawnSync('git', args, { cwd: proj, env: { ...process.env, GIT_AUTHOR_NAME: 'A', GIT_AUTHOR_EMAIL: 'a@example.org', GIT_COMMITTER_NAME: 'A', GIT_COMMITTER_EMAIL: 'a@example.org', GIT_CONFIG_GLOBAL: '/dev/null' } })
      if (r.status !== 0) throw new Error(`git ${args.join(' ')}: ${r.stderr}`)
    }
    git('init', '-q', '-b', 'main')
    git('remote', 'add', 'origin', `https://oauth2:${SECRETS.gitToken}@git.example.org/lab/proj.git`)
    git('add', '-A')
    git('commit', '-q', '-m', 'first')
    git('tag', 'v1')
    const repo = join(box, 'repo')
    const env = cliEnv(box, encrypted ? SECRETS.password : '', {
      AWS_ACCESS_KEY_ID: SECRETS.awsKeyId, AWS_SECRET_ACCESS_KEY: SECRETS.awsSecret, AWS_SESSION_TOKEN: SECRETS.awsSecret,
      GOOGLE_APPLICATION_CREDENTIALS_JSON: SECRETS.gcsKey, GITHUB_TOKEN: SECRETS.github, COLDSTORE_SERVE_TOKEN: SECRETS.serveToken,
      COLDSTORE_PROGRESS_INTERVAL_MS: '0', // progress lines too
    })
    if (!encrypted) delete env.COLDSTORE_PASSWORD
    const outputs: CliResult[] = []
    const commandLines: string[] = []
    const run = async (args: string[], code = 0, cwd?: string): Promise<CliResult> => {
      const r = await runCli(args, { env, cwd, onSpawn: (pid) => {
        try {
          commandLines.push(readFileSync(`/proc/${pid}/cmdline`, 'utf8'))
        } catch {
          // exited already
        }
      } })
      outputs.push(r)
      exits(t, r, code, args.slice(0, 2).join(' '))
      return r
    }
    await run(['init', '--repo', repo, ...(encrypted ? [] : ['--no-encryption'])])
    // The project's .git holds the git token (in .git/config): the user's own data, left out so that any token
    // found in the repository would have come from coldstore's own metadata (the freeze leaves .git out itself).
    await run(['snapshot', proj, '--repo', repo, '--tag', 'first', '--exclude', '.git'])
    writeFileSync(join(proj, 'notes.txt'), textData('n2', 31_000))
    await run(['snapshot', proj, '--repo', repo, '--json', '--exclude', '.git'])
    await run(['snapshots', '--repo', repo, '--json'])
    await run(['ls', 'latest', '--recursive', '--long', '--repo', repo])
    const list = JSON.parse(outputs[2].stdout) as { id: string }
    await run(['diff', (JSON.parse(outputs[3].stdout) as { id: string }[])[0].id, list.id, '--repo', repo])
    await run(['restore', 'latest', '--repo', repo, '--target', join(box, 'restored')])
    await run(['verify', '--read-data', '--repo', repo])
    await run(['freeze', proj, repo, '--milestone', 'secret test', '--contact', 'a@example.org', '--include-git-metadata', '--include-environment',
      '--include-setup-docs', '--include-reports', '--export', join(box, 'freeze.tar.zst'), '--json'], 0, box)
    await run(['export', 'latest', '--repo', repo, '--output', join(box, 'export.tar')])
    await run(['verify', join(box, 'export.tar')])
    await run(['audit', '--verify', '--repo', repo])
    await run(['repair', 'snapshots', '--dry-run', '--repo', repo])
    await run(['status', '--json'])
    await run(['inspect', 'latest', '--repo', repo, '--json'])
    // serve: a few pages, with and without the token.
    const child = spawn(process.execPath, [CLI, 'serve', '--repo', repo, '--listen', '127.0.0.1:0', '--json'], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    let served = ''
    child.stdout.on('data', (d: Buffer) => (served += d))
    child.stderr.on('data', (d: Buffer) => (served += d))
    const closed = new Promise<void>((r) => child.on('close', () => r()))
    t.teardown(() => {
      child.kill('SIGKILL')
    })
    const t0 = performance.now()
    while (!/"port":\s*\d+/.test(served) && child.exitCode === null && performance.now() - t0 < 60_000) await new Promise((r) => setTimeout(r, 50))
    const port = Number(/"port":\s*(\d+)/.exec(served)?.[1] ?? 0)
    commandLines.push(readFileSync(`/proc/${child.pid}/cmdline`, 'utf8'))
    const page = (path: string, token: boolean): Promise<string> => new Promise((resolve) => {
      const req = request({ host: '127.0.0.1', port, path, headers: token ? { Authorization: `Bearer ${SECRETS.serveToken}` } : {} }, (res) => {
        let body = ''
        res.on('data', (d: Buffer) => (body += d.toString('latin1')))
        res.on('end', () => resolve(`${res.statusCode} ${JSON.stringify(res.headers)}\n${body}`))
      })
      req.on('error', (e) => resolve(`error ${e.message}`))
      req.end()
    })
    const pages: string[] = []
    for (const p of ['/', '/freezes/', '/nope', '/?download=zip']) for (const tok of [true, false]) pages.push(await page(p, tok))
    t.ok(pages.some((p) => p.startsWith('200')), 'serve answered')
    child.kill('SIGTERM')
    await closed

    // Search everything the session wrote (the project itself holds the git token in .git/config: left out).
    const files = allFiles(box, [proj])
    t.ok(files.some((f) => f.startsWith(join(repo, 'data'))) && files.some((f) => f.includes('/cache/')), `${files.length} files written by the session, repository and cache among them`)
    const texts = [...outputs.flatMap((o) => [o.stdout, o.stderr]), served, ...pages]
    let searched = 0
    for (const [name, secret] of Object.entries(SECRETS)) {
      const needles = secretForms(secret)
      const hits: string[] = []
      for (const f of files) {
        const b = readFileSync(f)
        searched += b.length
        if (needles.some((n) => b.includes(n))) hits.push(f.slice(box.length))
      }
      for (const [i, text] of texts.entries()) if (needles.some((n) => text.includes(n.toString('latin1')))) hits.push(`output ${i}`)
      for (const c of commandLines) if (c.includes(secret)) hits.push(`command line ${c.replace(/\0/g, ' ').slice(0, 80)}`)
      t.same(hits, [], `${name}: in no file, output or command line`)
    }
    t.comment(`figures: secrets ${JSON.stringify({ encrypted, files: files.length, bytes_searched: searched, outputs: texts.length, secrets: Object.keys(SECRETS).length, forms: 5 })}`)
    // Inside the repository: every blob, snapshot object and audit entry opened and decompressed (so the search
    // is not defeated by encryption or compression), then searched the same way.
    const r = await Repository.open(await LocalRemote.open({ path: repo }), { password: encrypted ? SECRETS.password : null, cacheDir: join(box, 'inspect-cache') })
    t.teardown(() => r.close())
    await r.syncIndex()
    const plaintexts: Buffer[] = []
    for (const [id] of r.cache.allBlobs()) plaintexts.push(await r.loadBlob(id))
    for (const dir of ['snapshots', 'audit']) for await (const o of r.remote.list(`${dir}/`)) plaintexts.push(r.sealer.open(await r.remote.get(o.name), o.name))
    t.ok(plaintexts.length > 20, `${plaintexts.length} blobs and objects opened`)
    t.ok(plaintexts.some((p) => p.includes(Buffer.from('git.example.org/lab/proj.git'))), 'the freeze recorded the git remote (without its credentials)')
    for (const [name, secret] of Object.entries(SECRETS)) {
      t.notOk(plaintexts.some((p) => secretForms(secret).some((n) => p.includes(n))), `${name}: in no plaintext of the repository either`)
    }
    // The search finds a secret where one is: the project's own .git/config holds the git token.
    t.ok(allFiles(proj, []).some((f) => secretForms(SECRETS.gitToken).some((n) => readFileSync(f).includes(n))), 'the search finds the git token in the project\'s .git/config')
  })
}
