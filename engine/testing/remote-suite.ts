/**
 * The conformance suite of the Remote contract (engine/remote/remote.ts).
 * Every remote kind's test file runs it:
 *
 *     runRemoteSuite(t, async (t) => LocalRemote.open({ path: t.testdir(), create: true }))
 *
 * Only for tests: imports tap's types, never tap itself, so it type-checks
 * with the engine but is not part of the engine's public API.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { ExistsError, NotFoundError } from '../errors.js'
import type { ByteRange, ObjectInfo, Remote } from '../remote/remote.js'
import { assertObjectName, createObjectWriter } from '../remote/remote.js'

/**
 * Opens a new, empty remote for one subtest. Register cleanup of anything
 * besides the remote (servers, directories) on `t`; the suite closes the
 * remote itself when the subtest ends.
 */
export type MakeRemote = (t: Test) => Promise<Remote>

type ErrorClass = abstract new (...args: never[]) => Error

const MiB = 1024 * 1024

/** Deterministic pseudo-random bytes (xorshift32), so failures reproduce. */
function bytes(size: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(size)
  let x = seed >>> 0 || 1
  for (let i = 0; i < size; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    out[i] = x & 0xff
  }
  return out
}

async function open(t: Test, makeRemote: MakeRemote): Promise<Remote> {
  const remote = await makeRemote(t)
  t.teardown(() => remote.close())
  return remote
}

async function collect(remote: Remote, prefix: string): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = []
  for await (const info of remote.list(prefix)) out.push(info)
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
}

async function names(remote: Remote, prefix: string): Promise<string[]> {
  return (await collect(remote, prefix)).map((info) => info.name)
}

/** Asserts that `promise` rejects with an instance of `cls` (tap's `rejects` wants plain Error constructors). */
async function rejectsWith(t: Test, promise: Promise<unknown>, cls: ErrorClass, message: string): Promise<void> {
  try {
    await promise
    t.fail(`${message}: resolved instead of rejecting with ${cls.name}`)
  } catch (err) {
    t.ok(err instanceof cls, message, { found: err, wanted: cls.name })
  }
}

/**
 * Runs the Remote conformance tests as subtests of `t`, each on a fresh
 * remote from `makeRemote`. Resolves when all have run.
 */
export async function runRemoteSuite(t: Test, makeRemote: MakeRemote): Promise<void> {
  await t.test('put then get and stat return the same bytes', async (t) => {
    const remote = await open(t, makeRemote)
    // A view 100 bytes into a Buffer of its own. (Relative to `.buffer` alone it would point into Node's shared
    // allocation pool, at bytes other code may overwrite: the test then compared against moving data.)
    const backing = bytes(1000, 4)
    const cases: { name: string; data: Uint8Array }[] = [
      { name: 'config', data: bytes(300, 1) },
      { name: 'data/ab/ab0123', data: bytes(4096, 2) },
      { name: 'empty', data: Buffer.alloc(0) },
      { name: 'big/five-mib', data: bytes(5 * MiB, 3) },
      // A plain Uint8Array, not a Buffer: callers hand over views of larger buffers.
      { name: 'view', data: new Uint8Array(backing.buffer, backing.byteOffset + 100, 500) },
    ]
    for (const c of cases) await remote.put(c.name, c.data)
    for (const c of cases) {
      const got = await remote.get(c.name)
      t.ok(Buffer.isBuffer(got), `${c.name}: get returns a Buffer`)
      t.ok(got.equals(c.data), `${c.name}: same bytes (${c.data.length})`, got.equals(c.data) ? {} : { diag: differs(got, c.data) })
      const info = await remote.stat(c.name)
      t.same({ name: info.name, size: info.size }, { name: c.name, size: c.data.length }, `${c.name}: stat`)
      // Kinds with storage classes report one; nothing else may be added.
      t.same(Object.keys(info).filter((k) => k !== 'name' && k !== 'size' && k !== 'storageClass'), [], `${c.name}: stat reports only name, size, storageClass`)
      if (info.storageClass !== undefined) t.ok(typeof info.storageClass === 'string' && info.storageClass !== '', `${c.name}: storageClass is a class name`)
    }
  })

  await t.test('stored bytes are independent of the caller\'s buffers', async (t) => {
    const remote = await open(t, makeRemote)
    const data = bytes(64, 5)
    const original = Buffer.from(data)
    await remote.put('obj', data)
    data.fill(0)
    t.ok((await remote.get('obj')).equals(original), 'changing the buffer after put does not change the object')
    const got = await remote.get('obj')
    got.fill(1)
    t.ok((await remote.get('obj')).equals(original), 'changing a get result does not change the object')
    const part = await remote.get('obj', { offset: 0, length: 8 })
    part.fill(2)
    t.ok((await remote.get('obj')).equals(original), 'changing a ranged get result does not change the object')
  })

  await t.test('ranged get', async (t) => {
    const remote = await open(t, makeRemote)
    const data = bytes(1000, 6)
    await remote.put('data/r', data)
    await remote.put('empty', Buffer.alloc(0))
    const cases: { name: string; object?: string; range: ByteRange; want: Buffer }[] = [
      { name: 'start', range: { offset: 0, length: 10 }, want: data.subarray(0, 10) },
      { name: 'middle', range: { offset: 400, length: 123 }, want: data.subarray(400, 523) },
      { name: 'end', range: { offset: 990, length: 10 }, want: data.subarray(990) },
      { name: 'whole', range: { offset: 0, length: 1000 }, want: data },
      { name: 'past the end is a short read', range: { offset: 995, length: 10 }, want: data.subarray(995) },
      { name: 'huge length reads to the end', range: { offset: 900, length: Number.MAX_SAFE_INTEGER }, want: data.subarray(900) },
      { name: 'offset at the size is empty', range: { offset: 1000, length: 10 }, want: Buffer.alloc(0) },
      { name: 'offset past the size is empty', range: { offset: 5000, length: 10 }, want: Buffer.alloc(0) },
      { name: 'zero length is empty', range: { offset: 10, length: 0 }, want: Buffer.alloc(0) },
      { name: 'empty object', object: 'empty', range: { offset: 0, length: 10 }, want: Buffer.alloc(0) },
    ]
    for (const c of cases) {
      const got = await remote.get(c.object ?? 'data/r', c.range)
      t.ok(got.equals(c.want), c.name, { gotLength: got.length, wantLength: c.want.length })
    }
  })

  await t.test('invalid ranges reject with TypeError', async (t) => {
    const remote = await open(t, makeRemote)
    await remote.put('obj', bytes(10, 7))
    const ranges: ByteRange[] = [
      { offset: -1, length: 1 },
      { offset: 0, length: -1 },
      { offset: 1.5, length: 1 },
      { offset: Number.NaN, length: 1 },
    ]
    for (const range of ranges) await rejectsWith(t, remote.get('obj', range), TypeError, JSON.stringify(range))
  })

  await t.test('missing objects reject with NotFoundError', async (t) => {
    const remote = await open(t, makeRemote)
    await rejectsWith(t, remote.get('nope'), NotFoundError, 'get')
    await rejectsWith(t, remote.get('nope', { offset: 0, length: 1 }), NotFoundError, 'ranged get')
    await rejectsWith(t, remote.stat('nope'), NotFoundError, 'stat')
    await rejectsWith(t, remote.get('data/ab/nope'), NotFoundError, 'get below a missing prefix')
    // A name that only prefixes other names ('dir' of 'dir/x') is not an object.
    await remote.put('dir/x', bytes(5, 8))
    await remote.put('file', bytes(5, 9))
    await rejectsWith(t, remote.get('dir'), NotFoundError, 'get of a prefix of other names')
    await rejectsWith(t, remote.stat('dir'), NotFoundError, 'stat of a prefix of other names')
    await rejectsWith(t, remote.get('file/x'), NotFoundError, 'get below an object')
    await remote.delete('dir')
    t.same(await names(remote, ''), ['dir/x', 'file'], 'deleting a prefix of other names deletes nothing')
  })

  await t.test('delete is idempotent', async (t) => {
    const remote = await open(t, makeRemote)
    await remote.put('data/ab/x', bytes(10, 10))
    await remote.put('data/ab/y', bytes(10, 11))
    t.equal((await remote.get('data/ab/x', { offset: 2, length: 4 })).length, 4, 'a ranged read before the delete')
    await remote.delete('data/ab/x')
    await rejectsWith(t, remote.get('data/ab/x'), NotFoundError, 'deleted object is gone')
    await rejectsWith(t, remote.get('data/ab/x', { offset: 2, length: 4 }), NotFoundError, 'also for ranged reads')
    t.same(await names(remote, ''), ['data/ab/y'], 'list no longer yields it')
    await remote.delete('data/ab/x')
    await remote.delete('never/existed')
    t.pass('deleting missing objects resolves')
  })

  await t.test('list yields exactly the names with the prefix', async (t) => {
    const remote = await open(t, makeRemote)
    const all = ['config', 'configs/c1', 'data/ab/ab01', 'data/ab/ab02', 'data/abc/x', 'data/cd/cd01', 'index/i1', 'keys/k1']
    for (const [i, name] of all.entries()) await remote.put(name, bytes(i * 10, i + 20))
    const cases: { prefix: string; want: string[] }[] = [
      { prefix: '', want: all },
      { prefix: 'data/', want: ['data/ab/ab01', 'data/ab/ab02', 'data/abc/x', 'data/cd/cd01'] },
      { prefix: 'data/ab/', want: ['data/ab/ab01', 'data/ab/ab02'] },
      { prefix: 'data/ab', want: ['data/ab/ab01', 'data/ab/ab02', 'data/abc/x'] },
      { prefix: 'data/ab/ab0', want: ['data/ab/ab01', 'data/ab/ab02'] },
      { prefix: 'data/ab/ab01', want: ['data/ab/ab01'] },
      { prefix: 'dat', want: ['data/ab/ab01', 'data/ab/ab02', 'data/abc/x', 'data/cd/cd01'] },
      { prefix: 'config', want: ['config', 'configs/c1'] },
      { prefix: 'nomatch/', want: [] },
      { prefix: 'data/zz/', want: [] },
      { prefix: 'zz', want: [] },
    ]
    for (const c of cases) {
      const infos = await collect(remote, c.prefix)
      t.same(infos.map((i) => i.name), c.want, `prefix ${JSON.stringify(c.prefix)}`)
      for (const info of infos) {
        t.equal(info.size, all.indexOf(info.name) * 10, `${info.name}: size`)
        t.doesNotThrow(() => assertObjectName(info.name), `${info.name}: valid name`)
      }
    }
  })

  await t.test('list can be abandoned part-way', async (t) => {
    const remote = await open(t, makeRemote)
    for (let i = 0; i < 5; i++) await remote.put(`data/n${i}`, bytes(1, i))
    let seen = 0
    for await (const _info of remote.list('data/')) {
      if (++seen === 2) break
    }
    t.equal(seen, 2)
    t.equal((await names(remote, 'data/')).length, 5, 'the remote still lists after an abandoned listing')
  })

  await t.test('list never yields in-progress puts', async (t) => {
    const remote = await open(t, makeRemote)
    const sizes = new Map<string, number>()
    for (let i = 0; i < 8; i++) sizes.set(`data/p${i % 2}/obj${i}`, (i + 1) * 256 * 1024)
    let settled = false
    const puts = Promise.all([...sizes].map(([name, size]) => remote.put(name, bytes(size, size)))).finally(() => {
      settled = true
    })
    let listings = 0
    // List while the puts run (and once more after): every yielded name must be a finished object.
    do {
      for (const info of await collect(remote, '')) {
        t.equal(info.size, sizes.get(info.name), `listing ${listings}: ${info.name} is a whole object`)
      }
      listings++
    } while (!settled)
    await puts
    t.same(await names(remote, ''), [...sizes.keys()].sort(), 'every put landed')
  })

  await t.test('exclusive put', async (t) => {
    const remote = await open(t, makeRemote)
    const original = bytes(100, 30)
    await remote.put('config', original, { exclusive: true })
    t.ok((await remote.get('config')).equals(original), 'creates a new name')
    await rejectsWith(t, remote.put('config', bytes(100, 31), { exclusive: true }), ExistsError, 'different content')
    await rejectsWith(t, remote.put('config', original, { exclusive: true }), ExistsError, 'same content')
    t.ok((await remote.get('config')).equals(original), 'the original is unchanged')
    t.same(await names(remote, ''), ['config'], 'failed puts leave nothing behind')
  })

  await t.test('put over an existing name', async (t) => {
    const remote = await open(t, makeRemote)
    const data = bytes(100, 40)
    await remote.put('data/x', data)
    t.ok((await remote.get('data/x', { offset: 0, length: 10 })).equals(data.subarray(0, 10)), 'ranged read before the put')
    await remote.put('data/x', data)
    t.ok((await remote.get('data/x')).equals(data), 'same content: resolves, object unchanged')
    const other = bytes(50, 41)
    // The contract allows either replacing or ExistsError; never a mix of both contents.
    const replaced = await remote.put('data/x', other).then(
      () => true,
      (err: unknown) => {
        t.ok(err instanceof ExistsError, 'different content: rejects only with ExistsError', { found: err })
        return false
      },
    )
    const got = await remote.get('data/x')
    t.ok(got.equals(replaced ? other : data), replaced ? 'replaced' : 'kept')
    // Ranged reads too (a remote may keep files open for them).
    t.ok((await remote.get('data/x', { offset: 10, length: 20 })).equals((replaced ? other : data).subarray(10, 30)), 'ranged read after the put')
    t.same(await names(remote, ''), ['data/x'])
  })

  await t.test('50 concurrent puts of distinct names all land', async (t) => {
    const remote = await open(t, makeRemote)
    // Spread over new directories so that puts race to create them.
    const objects = Array.from({ length: 50 }, (_, i) => ({ name: `data/c${i % 5}/obj${i}`, data: bytes(1000 + i, i + 50) }))
    await Promise.all(objects.map((o) => remote.put(o.name, o.data)))
    t.same(await names(remote, 'data/'), objects.map((o) => o.name).sort(), 'list yields all of them')
    const contents = await Promise.all(objects.map((o) => remote.get(o.name)))
    t.ok(contents.every((got, i) => got.equals(objects[i].data)), 'every object has its content')
  })

  await t.test('concurrent puts of the same name and content all resolve', async (t) => {
    const remote = await open(t, makeRemote)
    const data = bytes(10_000, 60)
    await Promise.all(Array.from({ length: 10 }, () => remote.put('data/same', data)))
    t.ok((await remote.get('data/same')).equals(data))
    t.same(await names(remote, ''), ['data/same'])
  })

  await t.test('invalid names reject with TypeError', async (t) => {
    const remote = await open(t, makeRemote)
    const invalid = ['', '../x', 'a/../b', '/abs', 'a//b', 'a/', './a', 'a/./b', 'a b', 'a\\b', 'ä']
    for (const name of invalid) {
      const label = JSON.stringify(name)
      await rejectsWith(t, remote.put(name, bytes(1, 1)), TypeError, `put ${label}`)
      await rejectsWith(t, remote.get(name), TypeError, `get ${label}`)
      await rejectsWith(t, remote.stat(name), TypeError, `stat ${label}`)
      await rejectsWith(t, remote.delete(name), TypeError, `delete ${label}`)
    }
    t.same(await names(remote, ''), [], 'nothing was written')
  })

  await t.test('putFile stores a local file', async (t) => {
    const remote = await open(t, makeRemote)
    if (remote.putFile === undefined) {
      t.pass('this kind has no putFile (callers use createWriter or BufferedObjectWriter)')
      return
    }
    // Not t.testdir(): makeRemote may have put the remote itself there, and a second call empties it.
    const dir = mkdtempSync(join(tmpdir(), 'coldstore-suite-putfile-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const cases = [
      { name: 'data/f0/empty', data: Buffer.alloc(0) },
      { name: 'data/f1/small', data: bytes(1000, 70) },
      { name: 'data/f2/large', data: bytes(6 * MiB + 123, 71) },
    ]
    for (const [i, c] of cases.entries()) {
      const file = join(dir, `file${i}`)
      writeFileSync(file, c.data)
      await remote.putFile(c.name, file)
      t.ok((await remote.get(c.name)).equals(c.data), `${c.name}: same bytes (${c.data.length})`)
      t.equal((await remote.stat(c.name)).size, c.data.length, `${c.name}: stat size`)
      t.ok(readFileSync(file).equals(c.data), `${c.name}: the local file is unchanged`)
    }
    const file = join(dir, 'config')
    writeFileSync(file, bytes(200, 72))
    await remote.putFile('config', file, { exclusive: true })
    t.ok((await remote.get('config')).equals(bytes(200, 72)), 'exclusive putFile of a new name')
    writeFileSync(file, bytes(200, 73))
    await rejectsWith(t, remote.putFile('config', file, { exclusive: true }), ExistsError, 'exclusive putFile of an existing name')
    t.ok((await remote.get('config')).equals(bytes(200, 72)), 'the original is unchanged')
    await rejectsWith(t, remote.putFile('../x', file), TypeError, 'invalid name')
    t.same(await names(remote, ''), ['config', ...cases.map((c) => c.name)].sort(), 'exactly these objects')
  })

  await t.test('objects written in pieces (createObjectWriter)', async (t) => {
    const remote = await open(t, makeRemote)
    const pieces = [bytes(100, 1), bytes(3 * MiB, 2), bytes(1, 3), bytes(700 * 1024, 4), bytes(0, 5), bytes(64 * 1024, 6)]
    const w = createObjectWriter(remote, 'data/')
    // Issued without waiting, as the packer does: the order of the calls is the order of the bytes.
    await Promise.all(pieces.map((p) => w.write(p)))
    t.same(await names(remote, ''), [], 'nothing is visible before commit')
    await w.commit('data/ab/whole')
    t.same(await remote.get('data/ab/whole'), Buffer.concat(pieces), 'the pieces, in order')
    t.equal((await remote.stat('data/ab/whole')).size, pieces.reduce((n, p) => n + p.length, 0))
    await w.abort() // after commit: nothing to discard
    t.ok((await remote.get('data/ab/whole')).length > 0, 'abort after commit keeps the object')

    const dropped = createObjectWriter(remote, 'data/')
    await dropped.write(bytes(MiB, 7))
    await dropped.abort()
    t.same(await names(remote, ''), ['data/ab/whole'], 'an aborted writer leaves nothing')

    const empty = createObjectWriter(remote, 'meta/')
    await empty.commit('meta/00/empty')
    t.equal((await remote.stat('meta/00/empty')).size, 0, 'an empty object')

    const bad = createObjectWriter(remote, 'data/')
    await bad.write(bytes(10, 8))
    await rejectsWith(t, bad.commit('../escape'), TypeError, 'commit under an invalid name')
    t.same(await names(remote, ''), ['data/ab/whole', 'meta/00/empty'], 'a failed commit leaves nothing')
  })
}

/** Where two byte strings part (for a failed comparison's diagnostics: a flaky mismatch is seen once). */
function differs(got: Uint8Array, want: Uint8Array): { got_length: number; want_length: number; first_difference: number; got_bytes: string; want_bytes: string } {
  let i = 0
  while (i < got.length && i < want.length && got[i] === want[i]) i++
  const hex = (b: Uint8Array): string => Buffer.from(b.subarray(Math.max(0, i - 8), i + 24)).toString('hex')
  return { got_length: got.length, want_length: want.length, first_difference: i, got_bytes: hex(got), want_bytes: hex(want) }
}
