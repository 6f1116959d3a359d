import t from 'tap'
import { createHash } from 'node:crypto'
import { closeSync, openSync, readFileSync, statSync, writeFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { SlotFile } from './slot-file.js'

const OPTS = { slotBytes: 40, keyBytes: 16, magic: 'TESTSLOT' }

/** A slot: a 16-byte key from `name`, then `value` as text, padded (the checksum is set by put). */
function slot(name: string, value = name): Buffer {
  const b = Buffer.alloc(OPTS.slotBytes)
  createHash('sha256').update(name).digest().copy(b, 0, 0, 16)
  b.write(value.slice(0, 20), 16, 'latin1')
  return b
}
const key = (name: string): Buffer => slot(name).subarray(0, 16)
const value = (s: Buffer | null): string | null => (s ? s.toString('latin1', 16, 36).replace(/\0+$/, '') : null)

t.test('entries round-trip; first write wins unless replacing; the table grows and keeps them', async (t) => {
  const path = join(t.testdir(), 't.slots')
  const f = SlotFile.open(path, OPTS)
  t.ok(f.created, 'a new table')
  t.equal(f.capacity, 1024)
  f.beginWrite()
  let added = 0
  for (let i = 0; i < 5000; i++) if (f.put(slot(`k${i}`), false) === 'added') added++
  t.equal(added, 5000, 'every new key is added')
  t.equal(f.put(slot('k1', 'other'), false), 'kept', 'an existing key keeps its entry')
  t.equal(value(f.get(key('k1'))), 'k1')
  t.equal(f.put(slot('k1', 'replaced'), true), 'replaced')
  f.endWrite()
  t.equal(value(f.get(key('k1'))), 'replaced')
  t.equal(f.count, 5000)
  t.ok(f.capacity >= 5000 / 0.7, `grew to ${f.capacity} slots`)
  let missing = 0
  for (let i = 0; i < 5000; i++) if (value(f.get(key(`k${i}`))) !== (i === 1 ? 'replaced' : `k${i}`)) missing++
  t.equal(missing, 0, 'every entry is found after growing')
  t.equal(f.get(key('nope')), null)
  t.equal([...f.scan()].length, 5000, 'a scan sees every entry once')
  f.close()
  t.equal(statSync(path).size, 64 + f.capacity * OPTS.slotBytes)
  const g = SlotFile.open(path, OPTS)
  t.notOk(g.created, 'reopened, not recreated')
  t.equal(g.count, 5000, 'the count is in the header')
  t.equal(value(g.get(key('k4999'))), 'k4999')
  g.close()
})

t.test('a torn slot is never returned, does not cut a probe run, and is reused', async (t) => {
  const path = join(t.testdir(), 't.slots')
  const f = SlotFile.open(path, OPTS)
  f.beginWrite()
  for (let i = 0; i < 600; i++) f.put(slot(`k${i}`), false)
  f.endWrite()
  f.close()
  // Damage one slot in every occupied stretch: flip a byte of every 7th occupied slot.
  const data = readFileSync(path)
  let damaged = 0
  const torn: string[] = []
  for (let i = 0; i < 1024; i++) {
    const o = 64 + i * OPTS.slotBytes
    if (data.subarray(o, o + OPTS.slotBytes).every((b) => b === 0)) continue
    if (i % 7 === 0) {
      const name = [...Array(600).keys()].map((k) => `k${k}`).find((n) => key(n).equals(data.subarray(o, o + 16)))!
      torn.push(name)
      data[o + 20] ^= 0xff
      damaged++
    }
  }
  writeFileSync(path, data)
  t.ok(damaged > 10)
  const g = SlotFile.open(path, OPTS)
  let found = 0
  let wrong = 0
  for (let i = 0; i < 600; i++) {
    const v = value(g.get(key(`k${i}`)))
    if (torn.includes(`k${i}`)) {
      if (v !== null) wrong++
    } else if (v === `k${i}`) found++
  }
  t.equal(wrong, 0, 'a damaged slot reads as missing')
  t.equal(found, 600 - damaged, 'entries after a damaged slot in a probe run are still found')
  t.equal([...g.scan()].length, 600 - damaged, 'scans skip damaged slots')
  g.beginWrite()
  for (const n of torn) t.equal(g.put(slot(n), false), 'added')
  g.endWrite()
  t.equal(value(g.get(key(torn[0]))), torn[0], 'written again')
  g.close()
})

t.test('a damaged header, or a file of another kind, makes a new empty table', async (t) => {
  const dir = t.testdir()
  const path = join(dir, 't.slots')
  const f = SlotFile.open(path, OPTS)
  f.beginWrite()
  f.put(slot('a'), false)
  f.endWrite()
  f.close()
  const fd = openSync(path, 'r+')
  writeSync(fd, Buffer.from([0x55]), 0, 1, 20) // the count, without fixing the header checksum
  closeSync(fd)
  const g = SlotFile.open(path, OPTS)
  t.ok(g.created, 'recreated')
  t.equal(g.get(key('a')), null)
  g.close()
  const h = SlotFile.open(path, { ...OPTS, magic: 'OTHERKND' })
  t.ok(h.created, 'another kind of table is not read as this one')
  h.close()
})

t.test('two handles (processes) on one table: writes are seen, a replaced file is followed', async (t) => {
  const path = join(t.testdir(), 't.slots')
  const a = SlotFile.open(path, OPTS)
  const b = SlotFile.open(path, OPTS)
  a.beginWrite()
  a.put(slot('from-a'), false)
  a.endWrite()
  t.equal(value(b.get(key('from-a'))), 'from-a', 'a write is seen by another handle at once')
  t.equal(b.readCount(), 1, 'and counted')
  b.beginWrite()
  b.put(slot('from-b'), false)
  b.endWrite()
  a.beginWrite()
  t.equal(a.count, 2, 'a writer starts from the count in the file')
  // a grows the table (a new file renamed over the old): b still reads its old file, then follows.
  for (let i = 0; i < 2000; i++) a.put(slot(`g${i}`), false)
  a.endWrite()
  t.ok(a.capacity > 1024)
  t.equal(value(b.get(key('from-b'))), 'from-b', 'the old file still answers')
  t.equal(value(b.get(key('g1999'))), 'g1999', 'a lookup that misses in the old file looks in the new one')
  t.notOk(b.refresh(), 'b moved to the new file')
  t.equal(b.readCount(), 2002)
  a.beginWrite()
  a.clear()
  a.endWrite()
  t.equal(a.get(key('g1')), null, 'cleared')
  b.refresh()
  t.equal(b.get(key('g1')), null, 'and the other handle follows the clear')
  a.close()
  b.close()
})
