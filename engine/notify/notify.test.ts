/**
 * Notifications against real local servers that record what they receive: an HTTP server (node:http on
 * 127.0.0.1) standing in for Slack, Discord and a generic JSON webhook, and an SMTP server (the smtp-server
 * library, STARTTLS with a throwaway certificate made by openssl, AUTH PLAIN/LOGIN). Rate limiting runs on
 * an injected clock.
 */
import { execFileSync } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { SMTPServer } from 'smtp-server'
import { parseConfigFile } from '../config/config.js'
import { parseNotify, type NotifyConfig } from '../config/notify.js'
import { ConfigError } from '../errors.js'
import { Notifier, costThresholdEvent } from './notifier.js'
import { FileRateLimitStore } from './rate-limit.js'

const FILE = '/etc/coldstore/coldstore.yaml'

function config(yaml: string, path = FILE): NotifyConfig {
  const n = parseNotify(parseConfigFile(yaml, path))
  if (!n) throw new Error('no notify section')
  return n
}

interface Hit {
  path: string
  headers: IncomingHttpHeaders
  body: Record<string, unknown>
}

/** An HTTP server that records every request; `/status/N/...` answers N, `/flaky/...` 500 on every other request. */
async function recordingServer(t: Test): Promise<{ url: string; hits: Hit[] }> {
  const hits: Hit[] = []
  let flaky = 0
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8')
      hits.push({ path: req.url ?? '', headers: req.headers, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} })
      const m = /^\/status\/(\d+)\//.exec(req.url ?? '')
      if (m) {
        // Echo the path, as some services do in their errors: the token in it must not reach a log.
        res.writeHead(Number(m[1]), { 'content-type': 'text/plain' }).end(`no such hook: ${req.url}`)
      } else if ((req.url ?? '').startsWith('/flaky/')) {
        res.writeHead(flaky++ % 2 === 0 ? 503 : 200).end()
      } else if ((req.url ?? '').startsWith('/api/webhooks/')) {
        res.writeHead(204).end() // Discord answers 204 No Content
      } else {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok') // Slack answers 200 "ok"
      }
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise<void>((r) => server.close(() => r())))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, hits }
}

interface Mail {
  from: string
  to: string[]
  user: string | undefined
  secure: boolean
  headers: Record<string, string>
  body: string
}

/** Decodes quoted-printable (soft breaks, =XX) for reading bodies. */
function decodeQp(s: string): string {
  return Buffer.from(s.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1').toString('utf8')
}

function parseMail(raw: string): { headers: Record<string, string>; body: string } {
  const i = raw.indexOf('\r\n\r\n')
  const headers: Record<string, string> = {}
  for (const line of raw.slice(0, i).replace(/\r\n[ \t]+/g, ' ').split('\r\n')) {
    const c = line.indexOf(':')
    headers[line.slice(0, c).toLowerCase()] = line.slice(c + 1).trim()
  }
  let body = raw.slice(i + 4)
  if (/quoted-printable/i.test(headers['content-transfer-encoding'] ?? '')) body = decodeQp(body)
  else if (/base64/i.test(headers['content-transfer-encoding'] ?? '')) body = Buffer.from(body, 'base64').toString('utf8')
  return { headers, body: body.replace(/\r\n/g, '\n') }
}

/** A throwaway certificate for 127.0.0.1, or null without openssl. */
function makeCert(dir: string): { key: string; cert: string } | null {
  if (!existsSync('/usr/bin/openssl')) return null
  const key = join(dir, 'key.pem')
  const cert = join(dir, 'cert.pem')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { stdio: 'ignore' })
  return { key, cert }
}

async function smtpServer(t: Test, o: { key: string; cert: string; noStartTls?: boolean }): Promise<{ port: number; mails: Mail[]; auths: string[] }> {
  const { readFileSync } = await import('node:fs')
  const mails: Mail[] = []
  const auths: string[] = []
  const server = new SMTPServer({
    secure: false, key: readFileSync(o.key), cert: readFileSync(o.cert), disabledCommands: o.noStartTls ? ['STARTTLS'] : [],
    authMethods: ['PLAIN', 'LOGIN'], logger: false,
    onAuth(auth, _session, cb) {
      auths.push(auth.username ?? '')
      if (auth.username === 'alerts@example.com' && auth.password === 'smtp-s3cret-pass') cb(null, { user: auth.username })
      else cb(new Error('Invalid username or password'))
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = []
      stream.on('data', (c: Buffer) => chunks.push(c))
      stream.on('end', () => {
        const { headers, body } = parseMail(Buffer.concat(chunks).toString('utf8'))
        const from = session.envelope.mailFrom
        mails.push({ from: from ? from.address : '', to: session.envelope.rcptTo.map((r) => r.address), user: session.user as string | undefined, secure: session.secure, headers, body })
        cb()
      })
    },
  })
  server.listen(0, '127.0.0.1')
  await once(server.server, 'listening')
  t.teardown(() => new Promise<void>((r) => server.close(() => r())))
  return { port: (server.server.address() as AddressInfo).port, mails, auths }
}

t.test('notify: validation names the key', async (t) => {
  const cases: { name: string; yaml: string; match: RegExp }[] = [
    { name: 'unknown key', yaml: 'notify: { webhooks: [] }', match: /coldstore\.yaml: notify\.webhooks: unknown key/ },
    { name: 'no channel', yaml: 'notify: { on: [failure] }', match: /notify: give at least one channel/ },
    { name: 'inline url string', yaml: 'notify: { webhook: ["https://hooks.slack.com/services/T/B/x"] }', match: /notify\.webhook\[0\]: a webhook URL carries its token/ },
    { name: 'inline url key', yaml: 'notify: { webhook: { url: "https://h/x" } }', match: /notify\.webhook\.url: secrets are not written inline/ },
    { name: 'no url', yaml: 'notify: { webhook: { format: slack } }', match: /notify\.webhook\.url_file: required/ },
    { name: 'two urls', yaml: 'notify: { webhook: { url_file: a, url_env: B } }', match: /notify\.webhook: give one of url_file, url_env/ },
    { name: 'bad format', yaml: 'notify: { webhook: { url_env: U, format: teams } }', match: /notify\.webhook\.format: expected one of json, slack, discord/ },
    { name: 'bad env name', yaml: 'notify: { webhook: { url_env: "A-B" } }', match: /notify\.webhook\.url_env: "A-B" is not an environment variable name/ },
    { name: 'token on slack', yaml: 'notify: { webhook: { url_env: U, format: slack, token_env: T } }', match: /notify\.webhook: token is for format: json/ },
    { name: 'bad event', yaml: 'notify: { on: [failed], webhook: { url_env: U } }', match: /notify\.on: "failed" is not an event/ },
    { name: 'channel event not in on', yaml: 'notify: { on: [failure], webhook: { url_env: U, on: [missed] } }', match: /notify\.webhook\.on: missed is not in notify\.on/ },
    { name: 'bad rate limit', yaml: 'notify: { rate_limit: often, webhook: { url_env: U } }', match: /notify\.rate_limit: expected a duration/ },
    { name: 'bad threshold', yaml: 'notify: { cost_threshold_usd: "$5", webhook: { url_env: U } }', match: /notify\.cost_threshold_usd: expected an amount/ },
    { name: 'smtp without host', yaml: 'notify: { smtp: { from: a@b.c, to: c@d.e } }', match: /notify\.smtp\.host: required/ },
    { name: 'smtp inline password', yaml: 'notify: { smtp: { host: h, username: u, password: p, from: a@b.c, to: c@d.e } }', match: /notify\.smtp\.password: secrets are not written inline/ },
    { name: 'smtp user without password', yaml: 'notify: { smtp: { host: h, username: u, from: a@b.c, to: c@d.e } }', match: /notify\.smtp\.password_file: required with username/ },
    { name: 'smtp plain with password', yaml: 'notify: { smtp: { host: mail.lan, tls: none, username: u, password_env: P, from: a@b.c, to: c@d.e } }', match: /notify\.smtp\.tls: none would send the password in the clear/ },
    { name: 'smtp bad recipient', yaml: 'notify: { smtp: { host: h, from: a@b.c, to: [me] } }', match: /notify\.smtp\.to: "me" is not an email address/ },
    { name: 'smtp bad from', yaml: 'notify: { smtp: { host: h, from: nobody, to: c@d.e } }', match: /notify\.smtp\.from: required: the sender/ },
    { name: 'smtp bad port', yaml: 'notify: { smtp: { host: h, port: 99999, from: a@b.c, to: c@d.e } }', match: /notify\.smtp\.port: expected a port number/ },
    { name: 'duplicate names', yaml: 'notify: { webhook: [{ name: x, url_env: A }, { name: x, url_env: B }] }', match: /notify\.webhook\[1\]\.name: another channel is named "x"/ },
  ]
  for (const c of cases) {
    t.throws(() => config(c.yaml), ConfigError, `${c.name}: ConfigError`)
    try {
      config(c.yaml)
    } catch (err) {
      t.match((err as Error).message, c.match, c.name)
    }
  }
  const n = config(`notify:
  webhook:
    - { name: team, format: slack, url_file: secrets/slack }
    - { format: json, url_env: NTFY_URL, token_file: /run/secrets/ntfy, on: [failure], timeout: 5s }
  smtp: { host: smtp.example.com, username: alerts@example.com, password_env: SMTP_PASSWORD, from: "coldstore <alerts@example.com>", to: me@example.com }
`)
  t.same(n.on, ['failure', 'missed', 'verify_failure', 'cost_threshold'], 'default events: every problem, no successes')
  t.equal(n.rateLimitMs, 3_600_000, 'default: one per hour')
  t.equal(n.costThresholdUSD, null)
  t.same(n.channels.map((c) => c.name), ['team', 'webhook[1]', 'smtp'])
  const [slack, json, smtp] = n.channels
  t.same(slack.type === 'webhook' && slack.url, { from: 'file', path: '/etc/coldstore/secrets/slack', key: 'notify.webhook[0].url_file' }, 'relative files are relative to the configuration file')
  t.same(json.type === 'webhook' && [json.token, json.on, json.timeoutMs], [{ from: 'file', path: '/run/secrets/ntfy', key: 'notify.webhook[1].token_file' }, ['failure'], 5000])
  t.same(smtp.type === 'smtp' && [smtp.port, smtp.tls, smtp.to], [587, 'starttls', ['me@example.com']], 'smtp defaults: 587 with STARTTLS required')
  const implicit = config('notify: { smtp: { host: h, port: 465, from: a@b.c, to: c@d.e } }').channels[0]
  t.equal(implicit.type === 'smtp' && implicit.tls, 'tls', 'port 465 is implicit TLS')
  const inline = config('allow_inline_secrets: true\nnotify: { rate_limit: 0, webhook: { url: "https://h/x" } }').channels[0]
  t.same(inline.type === 'webhook' && inline.url, { from: 'inline', value: 'https://h/x', key: 'notify.webhook.url' }, 'allow_inline_secrets lets an inline URL in')
  t.equal(parseNotify(parseConfigFile('jobs: {}', FILE)), null, 'no notify: section, no notifications')
})

t.test('webhooks in JSON, Slack and Discord formats, and email over STARTTLS', async (t) => {
  const dir = t.testdir()
  const http = await recordingServer(t)
  const cert = makeCert(dir)
  if (!cert) {
    if (process.env.CI === 'true') t.fail('openssl is missing: cannot make the SMTP server certificate')
    else t.skip('openssl is missing')
    return
  }
  const smtp = await smtpServer(t, cert)
  const slackToken = 'T0001/B0002/slack-token-xyz123'
  writeFileSync(join(dir, 'slack-url'), `${http.url}/services/${slackToken}\n`)
  writeFileSync(join(dir, 'smtp-password'), 'smtp-s3cret-pass\n')
  writeFileSync(join(dir, 'ntfy-token'), 'tk_bearer_0123456789')
  const n = config(
    `notify:
  webhook:
    - { name: slack, format: slack, url_file: slack-url }
    - { name: discord, format: discord, url_env: DISCORD_URL }
    - { name: generic, url_env: JSON_URL, token_file: ntfy-token }
  smtp: { name: mail, host: 127.0.0.1, port: ${smtp.port}, ca_file: cert.pem, username: alerts@example.com, password_file: smtp-password, from: "coldstore <alerts@example.com>", to: [ops@example.com, me@example.com] }
`,
    join(dir, 'coldstore.yaml'),
  )
  const env = { DISCORD_URL: `${http.url}/api/webhooks/123/discord-token-abc`, JSON_URL: `${http.url}/hook/json` }
  let now = new Date('2026-03-01T10:00:00Z')
  const notifier = new Notifier({ config: n, env, hostname: 'thinkcentre', now: () => now, retryDelayMs: 0 })

  const out = await notifier.notify({ kind: 'failure', job: 'photos', run: 'r-42', message: 'pre-hook failed: pg_dump exited with code 1\n@everyone <b>&', details: { 'exit code': 1, duration: '12 s' } })
  t.equal(out.sent, true)
  t.same(out.results.map((r) => [r.channel, r.ok, r.error]), [['slack', true, undefined], ['discord', true, undefined], ['generic', true, undefined], ['mail', true, undefined]])
  t.equal(http.hits.length, 3)

  const slack = http.hits.find((h) => h.path.startsWith('/services/'))!
  t.equal(slack.path, `/services/${slackToken}`, 'the URL from the file, newline trimmed')
  t.equal(slack.headers['content-type'], 'application/json')
  const blocks = slack.body.blocks as { type: string; text?: { type: string; text: string }; fields?: { text: string }[]; elements?: { text: string }[] }[]
  t.match(slack.body.text, /^coldstore on thinkcentre: job photos failed: pre-hook failed/, 'Slack: text is the fallback')
  t.same(blocks.map((b) => b.type), ['header', 'section', 'section', 'context'], 'Slack: header, message, fields, context')
  t.same(blocks[0].text, { type: 'plain_text', text: 'coldstore on thinkcentre: job photos failed', emoji: false })
  t.equal(blocks[1].text!.type, 'mrkdwn')
  t.match(blocks[1].text!.text, /@everyone &lt;b&gt;&amp;$/, 'Slack: &, < and > escaped in mrkdwn')
  t.same(blocks[2].fields!.map((f) => f.text), ['*job*\nphotos', '*run*\nr-42', '*host*\nthinkcentre', '*exit code*\n1', '*duration*\n12 s'])
  t.match(blocks[3].elements![0].text, /Sent by coldstore on thinkcentre at 2026-03-01T10:00:00.000Z/)

  const discord = http.hits.find((h) => h.path.startsWith('/api/webhooks/'))!
  t.equal(discord.path, '/api/webhooks/123/discord-token-abc', 'the URL from the environment')
  t.same(discord.body.allowed_mentions, { parse: [] }, 'Discord: @everyone in a log line pings nobody')
  t.equal(discord.body.username, 'coldstore')
  t.equal(discord.body.content, 'coldstore on thinkcentre: job photos failed')
  const [embed] = discord.body.embeds as { title: string; description: string; color: number; timestamp: string; fields: { name: string; value: string; inline: boolean }[] }[]
  t.equal(embed.title, 'coldstore on thinkcentre: job photos failed')
  t.equal(embed.description, 'pre-hook failed: pg_dump exited with code 1\n@everyone <b>&')
  t.equal(embed.color, 0xd93025, 'Discord: failures are red')
  t.equal(embed.timestamp, '2026-03-01T10:00:00.000Z')
  t.same(embed.fields[0], { name: 'job', value: 'photos', inline: true })

  const generic = http.hits.find((h) => h.path === '/hook/json')!
  t.equal(generic.headers.authorization, 'Bearer tk_bearer_0123456789', 'generic: bearer token from its file')
  t.same(generic.body, {
    source: 'coldstore', version: 1, kind: 'failure', job: 'photos', run: 'r-42', host: 'thinkcentre', time: '2026-03-01T10:00:00.000Z',
    title: 'coldstore on thinkcentre: job photos failed', message: 'pre-hook failed: pg_dump exited with code 1\n@everyone <b>&',
    suppressed: 0, suppressed_since: null, details: { 'exit code': '1', duration: '12 s' },
  })

  t.equal(smtp.mails.length, 1)
  const mail = smtp.mails[0]
  t.equal(mail.secure, true, 'the mail went over TLS (STARTTLS, certificate checked against ca_file)')
  t.equal(mail.user, 'alerts@example.com', 'authenticated with the password from its file')
  t.equal(mail.from, 'alerts@example.com')
  t.same(mail.to, ['ops@example.com', 'me@example.com'])
  t.equal(mail.headers.subject, 'coldstore on thinkcentre: job photos failed')
  t.equal(mail.headers['x-coldstore-event'], 'failure')
  t.equal(mail.headers['x-coldstore-job'], 'photos')
  t.match(mail.body, /^pre-hook failed: pg_dump exited with code 1\n@everyone <b>&\n\njob +photos\nrun +r-42\nhost +thinkcentre\nexit code +1\nduration +12 s\n/)

  // notify --test: every channel, whatever on: says.
  now = new Date('2026-03-01T10:01:00Z')
  const results = await notifier.test()
  t.same(results.map((r) => r.ok), [true, true, true, true], 'a test reaches every channel')
  t.equal(http.hits.length, 6)
  t.equal(http.hits.slice(3).find((h) => h.path === '/hook/json')?.body.kind, 'test', 'a message of kind test')
  t.equal(smtp.mails[1].headers.subject, 'coldstore on thinkcentre: test notification')
  t.match(results[0].target, /^http:\/\/127\.0\.0\.1:\d+\/… \(url from file .*slack-url\)$/, 'the target shows the origin only')
  t.notOk(JSON.stringify(results).includes('slack-token') || JSON.stringify(results).includes('discord-token'), 'no token in the results')
})

t.test('rate limit: one per kind and job per window, the next one counts the suppressed', async (t) => {
  const http = await recordingServer(t)
  const n = config('notify: { rate_limit: 1h, on: [failure, missed, success], webhook: { url_env: U } }')
  let now = new Date('2026-03-01T10:00:00Z')
  const store = new FileRateLimitStore(join(t.testdir(), 'state', 'notify.json'))
  const make = (): Notifier => new Notifier({ config: n, env: { U: `${http.url}/hook` }, hostname: 'h', now: () => now, store })
  const a = make()
  const ev = (kind: 'failure' | 'missed' | 'verify_failure', job: string) => ({ kind, job, message: `${kind} of ${job}` })

  t.match(await a.notify(ev('failure', 'photos')), { sent: true, suppressed: 0 })
  now = new Date('2026-03-01T10:10:00Z')
  t.match(await a.notify(ev('failure', 'photos')), { sent: false, reason: 'rate-limited', suppressed: 1 })
  now = new Date('2026-03-01T10:20:00Z')
  t.match(await make().notify(ev('failure', 'photos')), { sent: false, reason: 'rate-limited', suppressed: 2 }, 'the state is shared through the file (another process)')
  t.match(await a.notify(ev('failure', 'media')), { sent: true }, 'another job has its own window')
  t.match(await a.notify(ev('missed', 'photos')), { sent: true }, 'another kind has its own window')
  t.match(await a.notify(ev('verify_failure', 'photos')), { sent: false, reason: 'not-subscribed' }, 'kinds not in on: are not sent')
  t.equal(http.hits.length, 3)

  now = new Date('2026-03-01T11:00:00Z')
  const out = await a.notify(ev('failure', 'photos'))
  t.match(out, { sent: true, suppressed: 2 }, 'an hour after the last one: sent, with the count')
  const last = http.hits[http.hits.length - 1].body
  t.equal(last.suppressed, 2)
  t.equal(last.suppressed_since, '2026-03-01T10:10:00.000Z')
  now = new Date('2026-03-01T11:30:00Z')
  t.match(await a.notify(ev('failure', 'photos')), { sent: false, suppressed: 1 }, 'the window starts again at the last message')

  // Slack and Discord say it in words.
  const worded = config('notify: { rate_limit: 2h, webhook: [{ format: slack, url_env: S }, { format: discord, url_env: D }] }')
  const w = new Notifier({ config: worded, env: { S: `${http.url}/slack`, D: `${http.url}/api/webhooks/1/x` }, hostname: 'h', now: () => now })
  await w.notify(ev('failure', 'host'))
  await w.notify(ev('failure', 'host'))
  now = new Date('2026-03-01T13:30:00Z')
  await w.notify(ev('failure', 'host'))
  const [slack, discord] = http.hits.slice(-2)
  const text = ((slack.body.blocks as { text?: { text: string } }[])[1].text as { text: string }).text
  t.equal(text, 'failure of host\n_1 more failure notification for job host was suppressed since 2026-03-01T11:30:00.000Z (at most one per 2h)._')
  t.match((discord.body.embeds as { description: string }[])[0].description, /\*1 more failure notification for job host was suppressed since 2026-03-01T11:30:00\.000Z \(at most one per 2h\)\.\*$/)
})

t.test('failures: retried once, redacted, and the window does not start', async (t) => {
  const http = await recordingServer(t)
  const dir = t.testdir()
  const n = config(
    `notify:
  webhook:
    - { name: gone, url_env: GONE }
    - { name: flaky, url_env: FLAKY }
    - { name: missing-env, url_env: NOT_SET }
    - { name: missing-file, url_file: nowhere }
    - { name: refused, url_env: REFUSED, timeout: 2s }
`,
    join(dir, 'coldstore.yaml'),
  )
  // A port nothing listens on: bind one, note it, close it.
  const probe = createServer()
  probe.listen(0, '127.0.0.1')
  await once(probe, 'listening')
  const deadPort = (probe.address() as AddressInfo).port
  await new Promise<void>((r) => probe.close(() => r()))
  const env = { GONE: `${http.url}/status/404/secret-path-token-777`, FLAKY: `${http.url}/flaky/abc`, REFUSED: `http://127.0.0.1:${deadPort}/hook-token-555` }
  const sleeps: number[] = []
  const errors: string[] = []
  let now = new Date('2026-03-01T10:00:00Z')
  const notifier = new Notifier({ config: n, env, hostname: 'h', now: () => now, retryDelayMs: 1500, sleep: async (ms) => void sleeps.push(ms), onError: (m) => errors.push(m) })
  const out = await notifier.notify({ kind: 'failure', job: 'j', message: 'x' })
  const by = Object.fromEntries(out.results.map((r) => [r.channel, r]))
  t.equal(out.sent, true, 'one channel took it')
  t.match(by.gone, { ok: false, status: 404, attempts: 1 }, 'a 404 is not retried')
  t.match(by.gone.error, /^HTTP 404: no such hook: \/status\/404\/\[redacted\]|^HTTP 404/)
  t.notOk(by.gone.error!.includes('secret-path-token-777'), 'the token the server echoed is redacted')
  t.match(by.flaky, { ok: true, attempts: 2 }, 'a 503 is retried once')
  t.match(by['missing-env'], { ok: false, error: 'notify.webhook[2].url_env: the environment variable NOT_SET is not set' })
  t.match(by['missing-file'].error, /^notify\.webhook\[3\]\.url_file: cannot read .*nowhere: ENOENT$/)
  t.match(by.refused, { ok: false, attempts: 2 }, 'a refused connection is retried once')
  t.notOk(JSON.stringify(out).includes('hook-token-555'), 'no token anywhere in the outcome')
  t.same(sleeps, [1500, 1500], 'the retry waits through the injected sleep')

  // All channels failing: not counted as sent, so the next event goes out again.
  const dead = config('notify: { webhook: { url_env: GONE } }')
  const d = new Notifier({ config: dead, env, hostname: 'h', now: () => now, retryDelayMs: 0, onError: (m) => errors.push(m) })
  t.match(await d.notify({ kind: 'failure', job: 'j', message: 'x' }), { sent: false, reason: 'failed' })
  now = new Date('2026-03-01T10:05:00Z')
  const again = await d.notify({ kind: 'failure', job: 'j', message: 'x' })
  t.match(again, { sent: false, reason: 'failed' }, 'tried again rather than held back')
  t.equal(again.results.length, 1)

  // The daemon's seam: fire and forget, errors reported, flush waits.
  d.onEvent({ kind: 'missed', job: 'j', message: 'missed 03:00' })
  await d.flush()
  t.equal(errors.length, 1)
  t.match(errors[0], /^notification to webhook \(http:\/\/127\.0\.0\.1:\d+\/… \(url from env GONE\)\) failed: HTTP 404/)
  t.notOk(errors[0].includes('secret-path-token-777'), 'redacted in what the daemon logs')
})

t.test('SMTP: STARTTLS is required, and the password is never sent in the clear', async (t) => {
  const dir = t.testdir()
  const cert = makeCert(dir)
  if (!cert) {
    if (process.env.CI === 'true') t.fail('openssl is missing')
    else t.skip('openssl is missing')
    return
  }
  const plain = await smtpServer(t, { ...cert, noStartTls: true })
  const good = await smtpServer(t, cert)
  writeFileSync(join(dir, 'pw'), 'wrong-password')
  const n = config(
    `notify:
  smtp:
    - { name: no-tls, host: 127.0.0.1, port: ${plain.port}, ca_file: cert.pem, username: alerts@example.com, password_file: pw, from: a@example.com, to: b@example.com, timeout: 5s }
    - { name: bad-pass, host: 127.0.0.1, port: ${good.port}, ca_file: cert.pem, username: alerts@example.com, password_file: pw, from: a@example.com, to: b@example.com, timeout: 5s }
    - { name: untrusted, host: 127.0.0.1, port: ${good.port}, username: alerts@example.com, password_file: pw, from: a@example.com, to: b@example.com, timeout: 5s }
`,
    join(dir, 'coldstore.yaml'),
  )
  const results = await new Notifier({ config: n, env: {}, hostname: 'h' }).test()
  const by = Object.fromEntries(results.map((r) => [r.channel, r]))
  t.match(by['no-tls'], { ok: false }, 'a server without STARTTLS is refused')
  t.same(plain.auths, [], 'no credentials went to it')
  t.match(by['bad-pass'], { ok: false })
  t.match(by['bad-pass'].error, /Invalid username or password|535/)
  t.notOk(JSON.stringify(results).includes('wrong-password'), 'the password is in no result')
  t.match(by.untrusted, { ok: false }, 'a certificate not signed by a trusted CA is refused')
  t.match(by.untrusted.error, /certificate/i)
  t.same(good.auths, ['alerts@example.com'], 'only the trusted server saw the login')
  t.equal(good.mails.length + plain.mails.length, 0)
})

t.test('cost threshold event', async (t) => {
  t.equal(costThresholdEvent({ monthlyUSD: 4.99, thresholdUSD: 5 }), null)
  t.equal(costThresholdEvent({ monthlyUSD: 5, thresholdUSD: 5 }), null, 'at the threshold: not above it')
  const e = costThresholdEvent({ monthlyUSD: 12.345, thresholdUSD: 10, parts: { media: 11.2, photos: 1.145 } })!
  t.match(e, { kind: 'cost_threshold', job: null })
  t.equal(e.message, 'The estimated monthly storage cost is $12.35, above the threshold of $10.00 (notify.cost_threshold_usd). See coldstore cost for the breakdown.')
  t.same(e.details, { 'estimated monthly cost': '$12.35', threshold: '$10.00', media: '$11.20/month', photos: '$1.15/month' })
})
