import t from 'tap'
import { ConfigError } from '../errors.js'
import { parseConfigFile, parseEnvFile, resolveRemoteUrl } from './config.js'

const FILE = '/home/u/.config/coldstore/coldstore.yaml'

t.test('remotes parse with settings, env and file references', async (t) => {
  const c = parseConfigFile(
    `remotes:
  cold: { url: "s3://bucket/archive?region=eu-west-1", storage_class: DEEP_ARCHIVE, path_style: true, env_file: aws.env, env: { AWS_PROFILE: backup } }
  nas: sftp://backup@nas.local/srv/coldstore
jobs:
  photos: { sources: [/srv/immich], remote: cold }
`,
    FILE,
  )
  t.same([...c.remotes.keys()], ['cold', 'nas'])
  const cold = c.remotes.get('cold')!
  t.equal(cold.url, 's3://bucket/archive?region=eu-west-1')
  t.same(cold.settings, { storage_class: 'DEEP_ARCHIVE', path_style: true })
  t.same(cold.env, { AWS_PROFILE: 'backup' })
  t.equal(cold.envFile, 'aws.env')
  t.equal(c.remotes.get('nas')!.url, 'sftp://backup@nas.local/srv/coldstore', 'a bare string is the url')
  t.ok(c.sections.jobs, 'other sections are kept for their own validators')
})

t.test('errors name the file and the key', async (t) => {
  const cases: { name: string; text: string; match: RegExp }[] = [
    { name: 'bad yaml', text: 'remotes: [', match: /coldstore\.yaml: not valid YAML/ },
    { name: 'unknown section', text: 'remote: {}', match: /coldstore\.yaml: remote: unknown section/ },
    { name: 'missing url', text: 'remotes:\n  cold: { region: x }', match: /remotes\.cold\.url: required/ },
    { name: 'typo in a setting', text: 'remotes:\n  cold: { url: "s3://b", storage_clas: GLACIER }', match: /remotes\.cold\.storage_clas: unknown setting/ },
    { name: 'inline secret', text: 'remotes:\n  cold: { url: "s3://b", secret_access_key: abc }', match: /remotes\.cold\.secret_access_key: secrets are not written inline/ },
    { name: 'inline secret in env', text: 'remotes:\n  cold: { url: "s3://b", env: { AWS_SECRET_ACCESS_KEY: abc } }', match: /remotes\.cold\.env\.AWS_SECRET_ACCESS_KEY: looks like a secret/ },
    { name: 'reserved name', text: 'remotes:\n  s3: { url: "s3://b" }', match: /remotes\.s3: 's3' is a remote kind/ },
    { name: 'bad name', text: 'remotes:\n  Cold_1: { url: "s3://b" }', match: /remotes\.Cold_1: a remote name is/ },
    { name: 'not a mapping', text: '- a\n- b', match: /expected a mapping of sections/ },
  ]
  for (const c of cases) {
    try {
      parseConfigFile(c.text, FILE)
      t.fail(`${c.name}: accepted`)
    } catch (err) {
      t.ok(err instanceof ConfigError, `${c.name}: ConfigError`)
      t.match((err as Error).message, c.match, c.name)
    }
  }
  const ok = parseConfigFile('allow_inline_secrets: true\nremotes:\n  cold: { url: "s3://b", env: { AWS_SECRET_ACCESS_KEY: abc } }', FILE)
  t.equal(ok.remotes.get('cold')!.env.AWS_SECRET_ACCESS_KEY, 'abc', 'allow_inline_secrets lets them in')
  t.same(parseConfigFile('', FILE).remotes.size, 0, 'an empty file is an empty configuration')
})

t.test('named remotes resolve as URL schemes', async (t) => {
  const c = parseConfigFile(
    `remotes:
  cold: { url: "s3://bucket/archive?region=eu-west-1&path_style=true" }
  nas: { url: "sftp://backup@nas.local/srv/coldstore/" }
  disk: { url: /mnt/backup }
`,
    FILE,
  )
  const cases: [string, string][] = [
    ['cold://nature-2024/', 's3://bucket/archive/nature-2024?region=eu-west-1&path_style=true'],
    ['cold://', 's3://bucket/archive?region=eu-west-1&path_style=true'],
    ['COLD://a/b', 's3://bucket/archive/a/b?region=eu-west-1&path_style=true'],
    ['nas://thesis', 'sftp://backup@nas.local/srv/coldstore/thesis'],
    ['disk://proj', '/mnt/backup/proj'],
    ['s3://other/x', 's3://other/x'],
    ['/plain/path', '/plain/path'],
  ]
  for (const [url, want] of cases) {
    const r = resolveRemoteUrl(url, c.remotes)
    t.equal(r.url, want, url)
  }
  t.equal(resolveRemoteUrl('nas://x', c.remotes).remote?.name, 'nas')
  t.equal(resolveRemoteUrl('/x', c.remotes).remote, null)
  t.throws(() => resolveRemoteUrl('nope://x', c.remotes), { name: 'ConfigError', message: /'nope:\/\/' is not a remote kind .*named remotes in the configuration: cold, nas, disk/ })
  t.throws(() => resolveRemoteUrl('nope://x', new Map()), { message: /no remotes are defined/ })
  t.throws(() => resolveRemoteUrl('cold://../x', c.remotes), { message: /'\.' and '\.\.' are not allowed/ })
})

t.test('env files', async (t) => {
  t.same(parseEnvFile('# aws\nAWS_ACCESS_KEY_ID=AKIA\nexport AWS_SECRET_ACCESS_KEY="s e"\n\nX=\'q\'\n', 'f'), { AWS_ACCESS_KEY_ID: 'AKIA', AWS_SECRET_ACCESS_KEY: 's e', X: 'q' })
  t.throws(() => parseEnvFile('ok=1\nnot a line\n', 'aws.env'), { message: 'aws.env:2: expected KEY=VALUE' })
})

t.test('jobs: the homelab example validates', async (t) => {
  const { parseJobs, HOST_EXCLUDES } = await import('./jobs.js')
  const c = parseConfigFile(
    `remotes:
  cold: { url: "s3://bucket/coldstore", storage_class: DEEP_ARCHIVE, region: eu-west-1 }
  nas:  { url: "sftp://backup@nas.local/srv/coldstore" }
jobs:
  media:  { sources: [/srv/media], remote: cold, path: media, schedule: weekly, retention: { keep_weekly: 8, keep_monthly: 24 } }
  photos: { sources: [/srv/immich], remote: cold, path: photos, schedule: daily, pre_hook: "pg_dump immich > /srv/immich/db.sql", nice: 10, ionice: idle, storage_class: GLACIER }
  host:   { type: host, sources: [/etc, /home], remote: nas, schedule: "0 3 * * *", timezone: Europe/Berlin, missed: skip }
  old:    { type: restic, sources: [/srv/old], restic_repository: /srv/restic-repo, password_file: /run/secrets/restic, schedule: daily, check: weekly }
  manual: { sources: [/data], repo: /mnt/usb/coldstore }
`,
    FILE,
  )
  const jobs = parseJobs(c, { defaultTimezone: 'America/Chicago' })
  t.same([...jobs.keys()], ['media', 'photos', 'host', 'old', 'manual'])
  const media = jobs.get('media')!
  t.equal(media.repo, 'cold://media')
  t.equal(media.schedule?.cron, '0 3 * * 0')
  t.equal(media.schedule?.timezone, 'America/Chicago', 'the default time zone')
  t.same(media.retention, { keep_weekly: 8, keep_monthly: 24 })
  t.equal(media.retries, 2)
  const photos = jobs.get('photos')!
  t.same(photos.preHooks, ['pg_dump immich > /srv/immich/db.sql'])
  t.same(photos.remoteSettings, { storage_class: 'GLACIER' }, 'a job may pick its own storage class')
  t.equal(photos.nice, 10)
  const host = jobs.get('host')!
  t.equal(host.oneFileSystem, true, 'host jobs stay on one file system')
  t.same(host.excludes.slice(0, HOST_EXCLUDES.length), [...HOST_EXCLUDES], 'host jobs leave out /proc, /sys, /dev, caches...')
  t.equal(host.schedule?.timezone, 'Europe/Berlin')
  t.equal(host.missed, 'skip')
  const old = jobs.get('old')!
  t.equal(old.repo, null)
  t.same(old.restic, { repository: '/srv/restic-repo', passwordFile: '/run/secrets/restic', checkSchedule: old.restic!.checkSchedule })
  t.equal(old.restic!.checkSchedule?.cron, '0 3 * * 0')
  t.equal(jobs.get('manual')!.schedule, null, 'no schedule: manual runs only')
})

t.test('jobs: errors name the key', async (t) => {
  const { parseJobs } = await import('./jobs.js')
  const base = 'remotes:\n  cold: { url: "s3://b" }\njobs:\n'
  const cases: [string, RegExp][] = [
    ['  a: { sources: [/x], remote: nope }', /jobs\.a\.remote: no remote named "nope" in remotes: \(defined: cold\)/],
    ['  a: { sources: [/x] }', /jobs\.a: give remote:/],
    ['  a: { sources: [x], remote: cold }', /jobs\.a\.sources: "x" is not an absolute path/],
    ['  a: { sources: [/x], remote: cold, schedule: sometimes }', /jobs\.a\.schedule: schedule "sometimes"/],
    ['  a: { sources: [/x], remote: cold, retention: { keep_dayly: 3 } }', /jobs\.a\.retention\.keep_dayly: unknown/],
    ['  a: { sources: [/x], remote: cold, nice: 30 }', /jobs\.a\.nice: expected 0/],
    ['  a: { sources: [/x], remote: cold, shedule: daily }', /jobs\.a\.shedule: unknown key/],
    ['  a: { type: restic, sources: [/x] }', /jobs\.a\.restic_repository: required/],
    ['  a: { sources: [/x], remote: cold, timezone: Nowhere/City, schedule: daily }', /jobs\.a\.schedule: unknown time zone/],
  ]
  for (const [text, match] of cases) {
    t.throws(() => parseJobs(parseConfigFile(base + text, FILE)), { name: 'ConfigError', message: match }, text)
  }
})
