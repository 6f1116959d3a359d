#!/usr/bin/env node
/**
 * The coldstore command. Thin over engine/: each command file parses its
 * arguments, calls the engine, and prints text or one JSON document.
 */
// libuv runs file system calls on a thread pool of 4 by default: backups stat, open and read many small
// files at once, so give it more threads. Must be set before the first asynchronous fs call.
process.env.UV_THREADPOOL_SIZE ??= '16'
// The AWS SDK (s3://, b2://) warns on every run that its releases after January 2027 need Node 22; the
// pinned version works on Node 20 and the notice is not something a user of coldstore can act on.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'
import yargs from 'yargs'
import { hideBin } from 'yargs/helpers'
import { EXIT, VERSION, describeError, err, parseRateOption, type GlobalArgs } from './common.js'
import { diffCommand } from './commands/diff.js'
import { freezeCommand } from './commands/freeze.js'
import { inspectCommand } from './commands/inspect.js'
import { resumeCommand } from './commands/resume.js'
import { statusCommand } from './commands/status.js'
import { initCommand } from './commands/init.js'
import { lsCommand } from './commands/ls.js'
import { repairCommand } from './commands/repair.js'
import { restoreCommand } from './commands/restore.js'
import { serveCommand } from './commands/serve.js'
import { snapshotCommand } from './commands/snapshot.js'
import { snapshotsCommand } from './commands/snapshots.js'
import { verifyCommand } from './commands/verify.js'
import { auditCommand } from './commands/audit.js'
import { exportCommand } from './commands/export.js'
import { costCommand } from './commands/cost.js'
import { notifyCommand } from './commands/notify.js'
import { forgetCommand } from './commands/forget.js'
import { pruneCommand } from './commands/prune.js'
import { runCommand } from './commands/run.js'
import { jobsCommand } from './commands/jobs.js'
import { logCommand } from './commands/log.js'
import { daemonCommand } from './commands/daemon.js'

async function main(): Promise<void> {
  const cli = yargs(hideBin(process.argv))
    .scriptName('coldstore')
    .usage('coldstore <command> [options]\n\nDeduplicating, encrypted snapshots and freezes of project data.')
    .option('repo', { alias: 'r', type: 'string', describe: 'repository location: a path, s3://, gs://, sftp://, b2:// URL, or name:// of a named remote (env COLDSTORE_REPO)', global: true })
    .option('config', { type: 'string', describe: 'configuration file (env COLDSTORE_CONFIG; default $XDG_CONFIG_HOME/coldstore/coldstore.yaml)', global: true })
    .option('password-file', { type: 'string', describe: 'read the password from this file (env COLDSTORE_PASSWORD_FILE, COLDSTORE_PASSWORD)', global: true })
    .option('cache-dir', { type: 'string', describe: 'local cache directory (default $XDG_CACHE_HOME/coldstore)', global: true })
    .option('state-dir', { type: 'string', describe: 'jobs: locks and run journal (env COLDSTORE_STATE_DIR; default $XDG_STATE_HOME/coldstore)', global: true })
    .option('json', { type: 'boolean', describe: 'print one JSON document on stdout', global: true })
    .option('quiet', { alias: 'q', type: 'boolean', describe: 'no progress output', global: true })
    .option('limit-upload', { type: 'string', describe: 'average upload rate at most, like 20MiB/s (KiB/s, MiB/s, GiB/s, KB/s, MB/s, GB/s, or bytes/s)', global: true, coerce: parseRateOption('limit-upload') })
    .option('limit-download', { type: 'string', describe: 'average download rate at most, like 50MiB/s', global: true, coerce: parseRateOption('limit-download') })
    .option('audit-key', { type: 'string', describe: 'sign audit entries with this Ed25519 private key PEM (env COLDSTORE_AUDIT_KEY)', global: true })
    .command(initCommand)
    .command(snapshotCommand)
    .command(snapshotsCommand)
    .command(lsCommand)
    .command(restoreCommand)
    .command(verifyCommand)
    .command(diffCommand)
    .command(repairCommand)
    .command(serveCommand)
    .command(freezeCommand)
    .command(inspectCommand)
    .command(statusCommand)
    .command(resumeCommand)
    .command(auditCommand)
    .command(exportCommand)
    .command(costCommand)
    .command(notifyCommand)
    .command(forgetCommand)
    .command(pruneCommand)
    .command(runCommand)
    .command(jobsCommand)
    .command(logCommand)
    .command(daemonCommand)
    .demandCommand(1, 'give a command; see coldstore --help')
    .strict()
    .version(VERSION)
    .help()
    .wrap(Math.min(110, process.stdout.columns || 100))
    .fail((msg, e, y) => {
      // yargs reports a failed `coerce` (a bad --limit-upload) as a YError carrying only the message: a usage error.
      if (e && e.name !== 'YError') throw e
      void y
      err(`coldstore: ${msg ?? e?.message}\n(see coldstore --help)`)
      process.exit(EXIT.usage)
    })
  await cli.parseAsync()
}

main().catch((e: unknown) => {
  const { message, code } = describeError(e)
  err(`coldstore: error: ${message}`)
  if (process.env.COLDSTORE_DEBUG && e instanceof Error) err(e.stack ?? '')
  process.exit(code)
})

export type { GlobalArgs }
