import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import type { CommandModule } from 'yargs'
import { generateAuditKey, listAudit, loadAuditPublicKey, verifyAudit, type StoredAuditEntry } from '../../engine/index.js'
import { CliError, EXIT, err, out, printJson, withRepo, type GlobalArgs } from '../common.js'

interface Args extends GlobalArgs {
  action?: string
  verify?: boolean
  'audit-pubkey'?: string
  output?: string
  force?: boolean
}

function entryJson(e: StoredAuditEntry): Record<string, unknown> {
  const { name, id, signature, ...rest } = e
  return { name, id, ...rest, signature }
}

export const auditCommand: CommandModule<GlobalArgs, Args> = {
  command: 'audit [action]',
  describe: 'list (and with --verify check) the repository\'s hash-chained audit trail; "audit keygen --output F" makes a signing key',
  builder: (y) =>
    y
      .positional('action', { type: 'string', choices: ['keygen'], describe: 'keygen: write a new Ed25519 signing key to --output' })
      .option('verify', { type: 'boolean', default: false, describe: 'check the chain, signatures and the snapshot objects it records; exit 1 on any error' })
      .option('audit-pubkey', { type: 'string', describe: 'with --verify: require entries signed by this Ed25519 public key PEM (from its first signed entry on)' })
      .option('output', { alias: 'o', type: 'string', describe: 'keygen: private key file to write (the public key goes to FILE.pub)' })
      .option('force', { type: 'boolean', default: false, describe: 'keygen: replace existing key files' }) as never,
  handler: async (a) => {
    if (a.action === 'keygen') return keygen(a)
    let publicKey = null
    if (a['audit-pubkey']) {
      if (!a.verify) throw new CliError('--audit-pubkey needs --verify', EXIT.usage)
      let pem: Buffer
      try {
        pem = readFileSync(a['audit-pubkey'])
      } catch (e) {
        throw new CliError(`cannot read ${a['audit-pubkey']}: ${(e as Error).message}`, EXIT.usage)
      }
      try {
        publicKey = loadAuditPublicKey(pem, a['audit-pubkey'])
      } catch (e) {
        throw new CliError((e as Error).message, EXIT.usage)
      }
    }
    const { entries, report } = await withRepo(a, async (repo) => {
      const damaged: string[] = []
      const entries = await listAudit(repo, (name) => damaged.push(name))
      const report = a.verify ? await verifyAudit(repo, { publicKey }) : null
      if (!a.verify && damaged.length && !a.quiet) err(`warning: ${damaged.length} audit entries cannot be read (${damaged.slice(0, 3).join(', ')}${damaged.length > 3 ? ', …' : ''}); run coldstore audit --verify`)
      return { entries, report }
    }, { syncIndex: false })
    if (a.json) {
      printJson({ entries: entries.map(entryJson), verify: report })
    } else {
      if (entries.length === 0) out('the audit trail is empty')
      else {
        out(`${'seq'.padStart(6)}  ${'time'.padEnd(24)}  ${'operation'.padEnd(9)}  ${'snapshot'.padEnd(8)}  ${'host'.padEnd(12)}  ${'user'.padEnd(8)}  signed  id`)
        for (const e of entries) {
          out(`${String(e.seq).padStart(6)}  ${e.time.padEnd(24)}  ${e.operation.padEnd(9)}  ${(e.snapshot?.id.slice(0, 8) ?? '-').padEnd(8)}  ${e.host.slice(0, 12).padEnd(12)}  ${e.username.slice(0, 8).padEnd(8)}  ${(e.signature ? e.signature.key_id.slice(0, 6) : '-').padEnd(6)}  ${e.id.slice(0, 16)}`)
        }
      }
      if (report) {
        for (const f of report.findings) out(`${f.severity}: ${f.kind}: ${f.message}`)
        const errors = report.findings.filter((f) => f.severity === 'error').length
        out(`${report.ok ? 'audit trail intact' : `${errors} errors`}: ${report.entries} entries${report.head ? `, head ${report.head.seq} ${report.head.id}` : ''}, ${report.signed} signed; snapshots: ${report.snapshots.covered} recorded, ${report.snapshots.not_covered} not recorded`)
      }
    }
    if (report && !report.ok) process.exitCode = EXIT.failure
  },
}

function keygen(a: Args): void {
  if (!a.output) throw new CliError('audit keygen needs --output FILE (the private key; the public key goes to FILE.pub)', EXIT.usage)
  const pub = `${a.output}.pub`
  if (!a.force && (existsSync(a.output) || existsSync(pub))) throw new CliError(`${existsSync(a.output) ? a.output : pub} exists: not replacing a key (--force replaces it)`, EXIT.usage)
  const k = generateAuditKey()
  try {
    writeFileSync(a.output, k.privatePem, { mode: 0o600, flag: a.force ? 'w' : 'wx' })
    writeFileSync(pub, k.publicPem, { mode: 0o644, flag: a.force ? 'w' : 'wx' })
  } catch (e) {
    throw new CliError(`cannot write the key: ${(e as Error).message}`, EXIT.failure)
  }
  if (a.json) printJson({ private_key: a.output, public_key: pub, key_id: k.keyId })
  else out(`wrote ${a.output} (private, keep it secret) and ${pub} (public); key id ${k.keyId}`)
}
