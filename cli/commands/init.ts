import type { CommandModule } from 'yargs'
import { DEFAULT_CHUNKER_PARAMS, DEFAULT_PACK_BYTES, describeRemoteUrl, initRepository } from '../../engine/index.js'
import { CliError, EXIT, out, password, printJson, remoteOptions, repoUrl, who, type GlobalArgs } from '../common.js'

interface Args extends GlobalArgs {
  'no-encryption'?: boolean
  encryption?: boolean
  'pack-size'?: number
  'compression-level'?: number
}

export const initCommand: CommandModule<GlobalArgs, Args> = {
  command: 'init',
  describe: 'create a new repository (encrypted unless --no-encryption)',
  builder: (y) =>
    y
      .option('encryption', { type: 'boolean', default: true, describe: 'encrypt the repository (--no-encryption to store in the clear)' })
      .option('pack-size', { type: 'number', describe: 'target pack size in MiB (16–64)', default: DEFAULT_PACK_BYTES / 1048576 })
      .option('compression-level', { type: 'number', describe: 'zstd level 0–22 (0: none)', default: 3 }),
  handler: async (a) => {
    const url = repoUrl(a)
    const encrypted = a.encryption !== false
    let pw: string | null = null
    if (encrypted) {
      pw = await password(a, { confirm: true })
      if (pw === null) throw new CliError('a password is needed: set COLDSTORE_PASSWORD or COLDSTORE_PASSWORD_FILE, use --password-file, or choose --no-encryption', EXIT.usage)
    }
    const mib = a['pack-size'] ?? 16
    if (mib < 16 || mib > 64) throw new CliError(`--pack-size must be between 16 and 64 (MiB), got ${mib}`, EXIT.usage)
    const { id } = await initRepository(url, {
      password: pw,
      chunker: DEFAULT_CHUNKER_PARAMS,
      packSizeBytes: Math.round(mib * 1048576),
      compressionLevel: a['compression-level'],
      ...who(),
      now: new Date(),
    }, remoteOptions(a))
    if (a.json) printJson({ id, location: describeRemoteUrl(url), encryption: encrypted ? 'aes-256-gcm' : 'none' })
    else out(`created ${encrypted ? 'encrypted' : 'UNENCRYPTED'} repository ${id.slice(0, 8)} at ${describeRemoteUrl(url)}`)
  },
}
