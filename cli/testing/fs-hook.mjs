/**
 * Test preload (not part of the product; plain JavaScript because the built CLI runs without a TypeScript
 * loader): `NODE_OPTIONS=--import=<this file>` with `COLDSTORE_TEST_FS_HOOK=<json>` in the environment.
 *
 * It watches the file system calls a coldstore process makes below the given roots (the repository, the
 * cache directory) on its main thread, numbers them, and
 *   - `log`: appends one line per event to a file ("<n> <op> <kind> <bytes> <path>"), and a final
 *     "end <events> <bytesWritten>" line when the process exits normally;
 *   - `kill`: SIGKILLs the process at event number `kill.event` (`when`: "before" the call is made, or
 *     "after" it completed), or at the `nth` event matching `op` and `kind`, or `afterMs` milliseconds
 *     after this preload ran (a timer in the process itself: no process start-up in the measure).
 * So crash tests can kill a run at an exact, reproducible point of its progress ("after pack 7 was renamed
 * into place", "after the index object was written but before its rename", "just before the snapshot object")
 * without any hook in the engine. Events are counted only on the main thread (worker threads hash and
 * compress; they never write the repository).
 *
 * Ops: create (open with O_CREAT), write, fsync, rename, link, unlink, mkdir, chmod. Kinds: the first path
 * segment below a root (data, meta, index, snapshots, audit, keys, config, locks), with ":tmp" for
 * temporary files (.tmp-*), or "cache" for the cache directory.
 */
import { createRequire, syncBuiltinESMExports } from 'node:module'
import { isMainThread } from 'node:worker_threads'

const spec = (() => {
  try {
    return JSON.parse(process.env.COLDSTORE_TEST_FS_HOOK ?? 'null')
  } catch {
    return null
  }
})()

if (spec && isMainThread) await install(spec)

/**
 * @param {{ roots: { path: string, kind?: string }[], log?: string, kill?: { event?: number, op?: string, kind?: string, nth?: number, when?: 'before' | 'after', afterMs?: number } }} spec
 */
async function install(spec) {
  const require = createRequire(import.meta.url)
  const fs = require('node:fs')
  const fsp = fs.promises
  const roots = spec.roots.map((r) => ({ path: r.path.replace(/\/+$/, '') + '/', kind: r.kind }))
  const orig = {
    appendFileSync: fs.appendFileSync.bind(fs),
  }
  let events = 0
  let matched = 0
  let bytesWritten = 0
  /** fd or FileHandle → path */
  const fds = new Map()
  const handles = new WeakMap()

  /** The kind of a path below a root, or null when it is outside every root. */
  function kindOf(p) {
    if (typeof p !== 'string') p = p instanceof URL ? p.pathname : Buffer.isBuffer(p) ? p.toString() : String(p)
    for (const r of roots) {
      if (!(p + '/').startsWith(r.path)) continue
      if (r.kind) return r.kind
      const rel = p.slice(r.path.length)
      const seg = rel.split('/')[0] || '.'
      const base = rel.slice(rel.lastIndexOf('/') + 1)
      return base.startsWith('.tmp-') ? `${seg}:tmp` : seg
    }
    return null
  }

  function killNow(n, op, kind, p) {
    if (spec.log) orig.appendFileSync(spec.log, `kill ${n} ${op} ${kind} ${p}\n`)
    process.kill(process.pid, 'SIGKILL')
    // The signal is delivered at once; never let this thread run on meanwhile.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10_000)
  }

  /** Numbers an event; returns a function to call once the operation completed. */
  function event(op, p, bytes = 0) {
    const kind = kindOf(p)
    if (kind === null) return () => {}
    const n = ++events
    bytesWritten += bytes
    if (spec.log) orig.appendFileSync(spec.log, `${n} ${op} ${kind} ${bytes} ${p}\n`)
    const k = spec.kill
    let hit = false
    if (k && k.afterMs === undefined) {
      if (k.event !== undefined) hit = k.event === n
      else if ((k.op === undefined || k.op === op) && (k.kind === undefined || k.kind === kind)) hit = ++matched === (k.nth ?? 1)
    }
    if (hit && (k.when ?? 'before') === 'before') killNow(n, op, kind, p)
    return hit ? () => killNow(n, op, kind, p) : () => {}
  }

  const creates = (flags) => (typeof flags === 'number' ? (flags & fs.constants.O_CREAT) !== 0 : typeof flags === 'string' && /[wax]/.test(flags))
  const pathOfFd = (fd) => fds.get(fd) ?? ''
  const lenOf = (data) => (typeof data === 'string' ? Buffer.byteLength(data) : data?.byteLength ?? 0)

  // Callback API (LocalObjectWriter: open, positioned writes, fsync, close).
  const { open, write, fsync, close } = fs
  fs.open = function (p, flags, mode, cb) {
    const callback = typeof mode === 'function' ? mode : typeof flags === 'function' ? flags : cb
    const done = creates(flags) ? event('create', p) : () => {}
    const wrapped = (err, fd) => {
      if (!err && kindOf(p) !== null) fds.set(fd, String(p))
      if (!err) done()
      callback(err, fd)
    }
    if (typeof flags === 'function') return open.call(fs, p, wrapped)
    if (typeof mode === 'function') return open.call(fs, p, flags, wrapped)
    return open.call(fs, p, flags, mode, wrapped)
  }
  fs.write = function (fd, data, ...rest) {
    const p = pathOfFd(fd)
    const cb = rest[rest.length - 1]
    if (!p || typeof cb !== 'function') return write.call(fs, fd, data, ...rest)
    const length = typeof rest[1] === 'number' ? rest[1] : lenOf(data)
    const done = event('write', p, length)
    rest[rest.length - 1] = (err, ...r) => {
      if (!err) done()
      cb(err, ...r)
    }
    return write.call(fs, fd, data, ...rest)
  }
  fs.fsync = function (fd, cb) {
    const p = pathOfFd(fd)
    if (!p) return fsync.call(fs, fd, cb)
    const done = event('fsync', p)
    return fsync.call(fs, fd, (err) => {
      if (!err) done()
      cb(err)
    })
  }
  fs.close = function (fd, cb) {
    fds.delete(fd)
    return close.call(fs, fd, cb)
  }

  // Promise API (LocalRemote.put: open, writeFile, sync, close; rename/link/unlink/mkdir/chmod).
  const popen = fsp.open
  fsp.open = async function (p, flags, mode) {
    const done = creates(flags ?? 'r') ? event('create', p) : () => {}
    const h = await popen.call(fsp, p, flags, mode)
    if (kindOf(p) !== null) handles.set(h, String(p))
    done()
    return h
  }
  const probe = await popen.call(fsp, '/dev/null', 'r')
  const proto = Object.getPrototypeOf(probe)
  await probe.close()
  const { writeFile: hWriteFile, write: hWrite, sync: hSync } = proto
  proto.writeFile = async function (data, ...rest) {
    const p = handles.get(this)
    const done = p ? event('write', p, lenOf(data)) : () => {}
    const r = await hWriteFile.call(this, data, ...rest)
    done()
    return r
  }
  proto.write = async function (data, ...rest) {
    const p = handles.get(this)
    const done = p ? event('write', p, typeof rest[1] === 'number' ? rest[1] : lenOf(data)) : () => {}
    const r = await hWrite.call(this, data, ...rest)
    done()
    return r
  }
  proto.sync = async function () {
    const p = handles.get(this)
    const done = p ? event('fsync', p) : () => {}
    const r = await hSync.call(this)
    done()
    return r
  }
  for (const [name, op, which] of [['rename', 'rename', 1], ['link', 'link', 1], ['unlink', 'unlink', 0], ['mkdir', 'mkdir', 0], ['chmod', 'chmod', 0], ['writeFile', 'write', 0], ['rm', 'unlink', 0]]) {
    const f = fsp[name]
    fsp[name] = async function (...args) {
      const done = event(op, args[which], name === 'writeFile' ? lenOf(args[1]) : 0)
      const r = await f.apply(fsp, args)
      done()
      return r
    }
  }
  // Synchronous calls (the CLI's operation records in the cache directory).
  for (const [name, op, which] of [['writeFileSync', 'write', 0], ['renameSync', 'rename', 1], ['rmSync', 'unlink', 0], ['unlinkSync', 'unlink', 0]]) {
    const f = fs[name]
    fs[name] = function (...args) {
      const done = event(op, args[which], name === 'writeFileSync' ? lenOf(args[1]) : 0)
      const r = f.apply(fs, args)
      done()
      return r
    }
  }
  syncBuiltinESMExports()
  const t0 = performance.now()
  if (spec.kill?.afterMs !== undefined) setTimeout(() => killNow(events, 'timer', `${spec.kill.afterMs}ms`, ''), spec.kill.afterMs).unref()
  if (spec.log) process.on('exit', () => orig.appendFileSync(spec.log, `end ${events} ${bytesWritten} ${Math.round(performance.now() - t0)}\n`))
}
