/**
 * Finding and reading coldstore.yaml for the CLI: `--config F`, else
 * COLDSTORE_CONFIG, else $XDG_CONFIG_HOME/coldstore/coldstore.yaml when it
 * exists. Named remotes resolve here into the URL, settings, environment and
 * password file the engine is given.
 */
import { existsSync, readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { dirname, isAbsolute, join, resolve } from 'node:path'
import { ConfigError, parseConfigFile, parseEnvFile, resolveRemoteUrl, type ColdstoreConfig, type RemoteDefinition } from '../engine/index.js'

/** $XDG_CONFIG_HOME/coldstore (or ~/.config/coldstore). */
export function configDir(): string {
  const xdg = process.env.XDG_CONFIG_HOME
  return join(xdg && xdg.startsWith('/') ? xdg : join(homedir(), '.config'), 'coldstore')
}

const loaded = new Map<string, ColdstoreConfig | null>()

/**
 * The configuration file to use, parsed (cached per path for this process), or null when none is given
 * and the default file does not exist.
 *
 * @throws ConfigError when a file given with --config or COLDSTORE_CONFIG is missing or invalid.
 */
export function loadConfig(explicit: string | undefined): ColdstoreConfig | null {
  const given = explicit ?? (process.env.COLDSTORE_CONFIG || undefined)
  const path = given ?? join(configDir(), 'coldstore.yaml')
  const key = resolve(path)
  if (loaded.has(key)) return loaded.get(key) ?? null
  let config: ColdstoreConfig | null = null
  if (given !== undefined || existsSync(path)) {
    let text: string
    try {
      text = readFileSync(path, 'utf8')
    } catch (err) {
      throw new ConfigError(`cannot read the configuration file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err })
    }
    config = parseConfigFile(text, path)
  }
  loaded.set(key, config)
  return config
}

/** A file path from the configuration, relative to the configuration file's folder; `~/` is the home folder. */
export function configPath(config: ColdstoreConfig, p: string): string {
  if (p.startsWith('~/')) return join(homedir(), p.slice(2))
  return isAbsolute(p) ? p : join(dirname(resolve(config.path)), p)
}

/** What a location resolves to. */
export interface ResolvedLocation {
  /** The URL to open (a named remote expanded). */
  url: string
  /** The named remote it came through, or null. */
  remote: RemoteDefinition | null
  /** Kind settings of the named remote. */
  settings: Record<string, string | number | boolean>
  /** The environment for the kind: this process's, plus the named remote's env_file and env. */
  env: Record<string, string | undefined>
  /** The named remote's password file (absolute), if it has one. */
  passwordFile?: string
}

/**
 * Resolves `location` (a path, a URL, or `name://sub/path` of a named remote in the configuration file).
 *
 * @throws ConfigError for an unknown scheme, or an unreadable env_file.
 */
export function resolveLocation(location: string, explicitConfig: string | undefined): ResolvedLocation {
  const config = loadConfig(explicitConfig)
  const { url, remote } = resolveRemoteUrl(location, config?.remotes ?? new Map())
  const env: Record<string, string | undefined> = { ...process.env }
  if (!remote || !config) return { url, remote: null, settings: {}, env }
  const settings: Record<string, string | number | boolean> = { ...remote.settings }
  for (const k of ['key_file', 'known_hosts'] as const) {
    if (typeof settings[k] === 'string') settings[k] = configPath(config, settings[k] as string)
  }
  if (remote.envFile) {
    const file = configPath(config, remote.envFile)
    let text: string
    try {
      text = readFileSync(file, 'utf8')
    } catch (err) {
      throw new ConfigError(`${config.path}: remotes.${remote.name}.env_file: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err })
    }
    Object.assign(env, parseEnvFile(text, file))
  }
  Object.assign(env, remote.env)
  return { url, remote, settings, env, passwordFile: remote.passwordFile ? configPath(config, remote.passwordFile) : undefined }
}
