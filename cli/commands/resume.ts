import { spawn } from 'node:child_process'
import type { CommandModule } from 'yargs'
import { CliError, EXIT, cacheDir, err, type GlobalArgs } from '../common.js'
import { Operations } from '../operations.js'

interface Args extends GlobalArgs {
  operation: string
}

export const resumeCommand: CommandModule<GlobalArgs, Args> = {
  command: 'resume <operation>',
  describe: 'continue an interrupted freeze (same arguments; what is stored already is not uploaded again)',
  builder: (y) => y.positional('operation', { type: 'string', demandOption: true, describe: 'operation id (coldstore status)' }) as never,
  handler: async (a) => {
    if (!/^[0-9a-f]{12}$/.test(a.operation)) throw new CliError(`not an operation id: ${JSON.stringify(a.operation)} (see coldstore status)`, EXIT.usage)
    const ops = new Operations(cacheDir(a))
    const r = ops.get(a.operation)
    if (!r) throw new CliError(`no operation ${a.operation} (see coldstore status)`, EXIT.usage)
    if (r.state === 'running') throw new CliError(`operation ${r.id} is still running (process ${r.pid} on ${r.host})`, EXIT.usage)
    if (r.state === 'done') throw new CliError(`operation ${r.id} finished already${r.result ? ` (${JSON.stringify(r.result)})` : ''}`, EXIT.usage)
    if (!a.quiet) err(`resuming ${r.kind} ${r.id}: coldstore ${r.argv.join(' ')}`)
    // The same command line, run again in the folder it ran in; the packs the interrupted run uploaded are in
    // the local cache (as pending), so the new run finds their chunks stored and indexes them instead of uploading.
    const code = await new Promise<number>((resolve, reject) => {
      const child = spawn(process.execPath, [...process.execArgv, process.argv[1], ...r.argv], {
        cwd: r.cwd, stdio: 'inherit', env: { ...process.env, COLDSTORE_RESUME_OF: r.id },
      })
      child.on('error', reject)
      child.on('close', (c) => resolve(c ?? EXIT.failure))
    })
    process.exitCode = code
  },
}
