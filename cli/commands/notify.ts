/**
 * `coldstore notify --test --config F`: sends a test message to every channel of the `notify:` section
 * and reports each one's result (exit 1 when any failed). `coldstore notify --event KIND --job J
 * --message M` sends one event as the daemon would (rate-limited, with the state in the cache folder), for
 * scripts and hooks outside the daemon.
 */
import { hostname } from 'node:os'
import { join } from 'node:path'
import type { CommandModule } from 'yargs'
import { FileRateLimitStore, NOTIFY_EVENTS, Notifier, parseNotify, type ChannelResult, type NotifyConfig, type NotifyEventKind } from '../../engine/index.js'
import { loadConfig } from '../config-file.js'
import { CliError, EXIT, cacheDir, out, printJson, type GlobalArgs } from '../common.js'

interface Args extends GlobalArgs {
  test?: boolean
  event?: string
  job?: string
  message?: string
}

/** Where the CLI and the daemon keep the rate-limit state. */
export function rateLimitStatePath(a: GlobalArgs): string {
  return join(cacheDir(a), 'notify', 'rate-limit.json')
}

/** The `notify:` section of the configuration file, or a usage error saying what is missing. */
export function notifyConfig(a: GlobalArgs): { config: NotifyConfig; path: string } {
  const file = loadConfig(a.config)
  if (!file) throw new CliError('no configuration file: give --config F (or COLDSTORE_CONFIG) with a notify: section', EXIT.usage)
  const config = parseNotify(file)
  if (!config) throw new CliError(`${file.path} has no notify: section`, EXIT.usage)
  return { config, path: file.path }
}

/** A Notifier over the configuration's `notify:` section, with this process's environment and the shared state file. */
export function makeNotifier(a: GlobalArgs, config: NotifyConfig): Notifier {
  return new Notifier({ config, env: process.env, hostname: hostname(), store: new FileRateLimitStore(rateLimitStatePath(a)) })
}

function resultJson(r: ChannelResult): Record<string, unknown> {
  return { channel: r.channel, type: r.type, format: r.format, target: r.target, ok: r.ok, error: r.error ?? null, status: r.status ?? null, attempts: r.attempts }
}

function printResults(results: ChannelResult[]): void {
  const w = Math.max(...results.map((r) => r.channel.length))
  for (const r of results) out(`${r.ok ? 'ok  ' : 'FAIL'}  ${r.channel.padEnd(w)}  ${r.format.padEnd(7)}  ${r.target}${r.ok ? '' : `\n      ${r.error ?? 'unknown error'}`}`)
}

export const notifyCommand: CommandModule<GlobalArgs, Args> = {
  command: 'notify',
  describe: 'send a test message to every notification channel (--test), or one event',
  builder: (y) =>
    y
      .option('test', { type: 'boolean', describe: 'send a test message to every channel of notify: and report each result' })
      .option('event', { type: 'string', choices: NOTIFY_EVENTS as unknown as string[], describe: 'send this event (rate-limited like the daemon\'s)' })
      .option('job', { type: 'string', describe: 'the job the event is about' })
      .option('message', { type: 'string', describe: 'what happened (with --event)' })
      .check((a) => {
        if (!a.test && !a.event) throw new Error('give --test, or --event KIND --message TEXT')
        if (a.test && a.event) throw new Error('--test and --event are separate uses')
        if (a.event && !a.message) throw new Error('--event needs --message')
        return true
      }),
  handler: async (a) => {
    const { config, path } = notifyConfig(a)
    const notifier = makeNotifier(a, config)
    if (a.test) {
      const results = await notifier.test()
      if (a.json) printJson({ config: path, results: results.map(resultJson) })
      else {
        printResults(results)
        const bad = results.filter((r) => !r.ok).length
        out(bad ? `${bad} of ${results.length} channels failed` : `${results.length} channel${results.length === 1 ? '' : 's'} ok`)
      }
      if (results.some((r) => !r.ok)) process.exitCode = EXIT.failure
      return
    }
    const o = await notifier.notify({ kind: a.event as NotifyEventKind, job: a.job ?? null, message: a.message ?? '' })
    if (a.json) printJson({ config: path, sent: o.sent, reason: o.reason, suppressed: o.suppressed, results: o.results.map(resultJson) })
    else {
      if (o.reason === 'not-subscribed') out(`not sent: ${a.event} is not in notify.on (${config.on.join(', ')})`)
      else if (o.reason === 'no-channel') out(`not sent: no channel takes ${a.event}`)
      else if (o.reason === 'rate-limited') out(`not sent: rate-limited (${o.suppressed} held back; the next message that goes out counts them)`)
      else printResults(o.results)
    }
    if (o.reason === 'failed') process.exitCode = EXIT.failure
  },
}
