import t from 'tap'
import { ConfigError } from '../errors.js'
import { parseConfigFile } from './config.js'
import { parseDaemonSection, parseServerSection } from './server.js'

const FILE = 'coldstore.yaml'

t.test('server: and daemon: sections', async (t) => {
  const c = parseConfigFile(`
server:
  listen: 0.0.0.0:8443
  token_file: secrets/token
  basic_auth: { user: admin, password_file: secrets/dashboard }
  tls_cert: cert.pem
  tls_key: key.pem
daemon:
  state_dir: /cache/state
  journal_days: 120
  shutdown_grace: 30s
  progress_interval: 2s
`, FILE)
  t.same(parseServerSection(c), {
    listen: '0.0.0.0:8443', tokenFile: 'secrets/token', basicAuth: { user: 'admin', passwordFile: 'secrets/dashboard' }, tlsCert: 'cert.pem', tlsKey: 'key.pem', repo: null,
  })
  t.same(parseDaemonSection(c), { stateDir: '/cache/state', journalDays: 120, shutdownGraceMs: 30_000, progressIntervalMs: 2000 })
  const empty = parseConfigFile('', FILE)
  t.same(parseServerSection(empty).listen, '127.0.0.1:8088', 'defaults')
  t.same(parseDaemonSection(empty), { stateDir: null, journalDays: 400, shutdownGraceMs: 5000, progressIntervalMs: 10_000 })
})

t.test('mistakes name the key', async (t) => {
  const cases: [string, RegExp][] = [
    ['server: { listen: "localhost" }', /server\.listen: expected HOST:PORT/],
    ['server: { password: x }', /server\.password: unknown key .*secrets are read from files/],
    ['server: { basic_auth: { user: a, password: x } }', /server\.basic_auth\.password: unknown key/],
    ['server: { basic_auth: { user: a } }', /server\.basic_auth\.password_file: required/],
    ['server: { tls_cert: c.pem }', /server\.tls_key: tls_cert and tls_key go together/],
    ['daemon: { journal_days: 7 }', /daemon\.journal_days: expected a whole number of days, at least 31/],
    ['daemon: { shutdown_grace: soon }', /daemon\.shutdown_grace: expected a duration/],
    ['daemon: { statedir: /x }', /daemon\.statedir: unknown key/],
  ]
  for (const [text, re] of cases) {
    const c = parseConfigFile(text, FILE)
    t.throws(() => { parseServerSection(c); parseDaemonSection(c) }, re, text)
    t.throws(() => { parseServerSection(c); parseDaemonSection(c) }, ConfigError)
  }
})
