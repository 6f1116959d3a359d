/**
 * Client credentials of the SFTP remote: an ssh-agent (SSH_AUTH_SOCK) and private key files, in the order
 * ssh tries them. Reads key files and asks the agent for its identities; never logs or keeps a passphrase
 * beyond decrypting a key, and never puts key material or passphrases in error messages.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import ssh2, { type AgentAuthMethod, type ParsedKey, type PublicKeyAuthMethod } from 'ssh2'
import { ConfigError } from '../../errors.js'

// ssh2 is CommonJS: its exports are properties of the default export under Node's ESM loader.
const { OpenSSHAgent, utils } = ssh2

/** Environment variable holding the passphrase of encrypted key files. */
export const PASSPHRASE_ENV = 'COLDSTORE_SSH_KEY_PASSPHRASE'

/** Key files tried when no `key_file` is set, under `$HOME/.ssh/` (ssh's defaults that the SSH library can use). */
export const DEFAULT_KEY_FILES = ['id_ed25519', 'id_ecdsa', 'id_rsa'] as const

/** The authentication methods to offer, and what was looked at (for the message when all fail). */
export interface Credentials {
  methods: (AgentAuthMethod | PublicKeyAuthMethod)[]
  /** What each method is, in order, for people ("ssh-agent at /run/agent.sock (2 keys)", "key file /x"). */
  tried: string[]
  /** Credentials that could not be used and why ("~/.ssh/id_rsa is encrypted and COLDSTORE_SSH_KEY_PASSPHRASE is not set"). */
  skipped: string[]
}

/** Inputs of `gatherCredentials`. */
export interface CredentialOptions {
  username: string
  /** The `key_file` setting (a path; `~/` means $HOME). */
  keyFile?: string
  env: Readonly<Record<string, string | undefined>>
}

/** True when a private key file's text is encrypted (OpenSSH format with a cipher, or encrypted PEM). */
export function isEncryptedKey(text: string): boolean {
  if (/^Proc-Type:\s*4,ENCRYPTED/m.test(text) || text.includes('-----BEGIN ENCRYPTED PRIVATE KEY-----')) return true
  const m = /-----BEGIN OPENSSH PRIVATE KEY-----([\s\S]*?)-----END OPENSSH PRIVATE KEY-----/.exec(text)
  if (!m) return false
  const blob = Buffer.from(m[1].replace(/\s+/g, ''), 'base64')
  const magic = 'openssh-key-v1\0'
  if (blob.subarray(0, magic.length).toString('latin1') !== magic || blob.length < magic.length + 4) return false
  const n = blob.readUInt32BE(magic.length)
  return blob.subarray(magic.length + 4, magic.length + 4 + n).toString('latin1') !== 'none'
}

/** `~/x` → `$HOME/x`; other paths unchanged. */
export function expandHome(path: string, env: Readonly<Record<string, string | undefined>>): string {
  if (path !== '~' && !path.startsWith('~/')) return path
  const home = env.HOME
  if (!home) throw new ConfigError(`cannot expand ${path}: HOME is not set`)
  return join(home, path.slice(1))
}

function errnoOf(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : undefined
}

/**
 * Loads one private key file. Returns null (with a reason in `skipped`) for a default key that cannot be
 * used; throws ConfigError for an explicitly named one, since the user asked for it.
 */
async function loadKey(file: string, explicit: boolean, passphrase: string | undefined, skipped: string[]): Promise<ParsedKey | null> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if (!explicit && errnoOf(err) === 'ENOENT') return null
    throw new ConfigError(`sftp: cannot read the key file ${file} (key_file setting): ${errnoOf(err) ?? String(err)}`, { cause: err })
  }
  const encrypted = isEncryptedKey(text)
  const fail = (reason: string): null => {
    if (explicit) throw new ConfigError(`sftp: ${reason}`)
    skipped.push(reason)
    return null
  }
  if (encrypted && passphrase === undefined) {
    return fail(`the key file ${file} is encrypted and ${PASSPHRASE_ENV} is not set: set it to the key's passphrase, or add the key to ssh-agent (ssh-add ${file})`)
  }
  const parsed = utils.parseKey(text, encrypted ? passphrase : undefined)
  if (parsed instanceof Error) {
    return fail(encrypted
      ? `cannot decrypt the key file ${file} with the passphrase in ${PASSPHRASE_ENV} (wrong passphrase?)`
      : `the key file ${file} is not a private key this client can use (${parsed.message})`)
  }
  const key = Array.isArray(parsed) ? (parsed[0] as ParsedKey) : parsed
  if (!key.isPrivateKey()) return fail(`the key file ${file} holds no private key`)
  return key
}

/** Asks the agent at `socket` how many identities it holds; null and a reason when it cannot be used. */
function agentIdentities(socket: string): Promise<{ count: number } | { error: string }> {
  return new Promise((resolve) => {
    new OpenSSHAgent(socket).getIdentities((err, keys) => {
      if (err) resolve({ error: `ssh-agent at ${socket} (SSH_AUTH_SOCK) cannot be reached: ${errnoOf(err) ?? err.message}` })
      else resolve({ count: keys?.length ?? 0 })
    })
  })
}

/**
 * The methods to try, in order: with a `key_file` setting that key first, then the agent; otherwise the
 * agent (SSH_AUTH_SOCK), then ~/.ssh/id_ed25519, id_ecdsa, id_rsa that exist. An encrypted key is decrypted
 * with COLDSTORE_SSH_KEY_PASSPHRASE.
 *
 * @throws ConfigError when a named key file is missing, unreadable, encrypted without a passphrase or not a
 *   key, and when there is nothing at all to authenticate with (the message says what was looked for).
 */
export async function gatherCredentials(o: CredentialOptions): Promise<Credentials> {
  const passphrase = o.env[PASSPHRASE_ENV] === '' ? undefined : o.env[PASSPHRASE_ENV]
  const out: Credentials = { methods: [], tried: [], skipped: [] }
  const addKey = (key: ParsedKey, file: string): void => {
    out.methods.push({ type: 'publickey', username: o.username, key })
    out.tried.push(`key file ${file}`)
  }
  if (o.keyFile !== undefined) {
    const file = expandHome(o.keyFile, o.env)
    const key = await loadKey(file, true, passphrase, out.skipped)
    if (key) addKey(key, file)
  }
  const socket = o.env.SSH_AUTH_SOCK
  if (socket) {
    const agent = await agentIdentities(socket)
    if ('error' in agent) out.skipped.push(agent.error)
    else if (agent.count === 0) out.skipped.push(`ssh-agent at ${socket} holds no keys (add one with ssh-add)`)
    else {
      out.methods.push({ type: 'agent', username: o.username, agent: socket })
      out.tried.push(`ssh-agent at ${socket} (${agent.count} key${agent.count === 1 ? '' : 's'})`)
    }
  }
  const looked: string[] = []
  if (o.keyFile === undefined && o.env.HOME) {
    for (const name of DEFAULT_KEY_FILES) {
      const file = join(o.env.HOME, '.ssh', name)
      looked.push(file)
      const key = await loadKey(file, false, passphrase, out.skipped)
      if (key) addKey(key, file)
    }
  }
  if (out.methods.length === 0) {
    const why = [
      socket ? null : 'SSH_AUTH_SOCK is not set (no ssh-agent)',
      o.keyFile === undefined ? (looked.length ? `no usable key file among ${looked.join(', ')}` : 'HOME is not set, so no default key files') : null,
      ...out.skipped,
    ].filter((s): s is string => s !== null)
    throw new ConfigError(`sftp: no SSH credentials to log in as ${o.username}: ${why.join('; ')}. Start ssh-agent and ssh-add a key, or name a key file with the key_file setting`)
  }
  return out
}
