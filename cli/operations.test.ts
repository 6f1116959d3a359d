import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { Operations } from './operations.js'

t.test('finished operation records are pruned by age and count; interrupted ones stay', async (t) => {
  const dir = t.testdir()
  const ops = new Operations(dir)
  const done = ops.start('freeze', ['freeze', 'a', 'b'], '/')
  done.finish({ freeze: 'x' })
  const failed = ops.start('freeze', ['freeze', 'c', 'd'], '/')
  failed.fail('boom')
  // A record of a process that no longer exists reads as interrupted.
  const running = ops.start('freeze', ['freeze', 'e', 'f'], '/')
  running.record.pid = 2 ** 22 + 12345
  running.progress({ files: 1, bytes: 1, totalFiles: null, totalBytes: null })
  ;(running as unknown as { last: number }).last = 0
  running.progress({ files: 2, bytes: 2, totalFiles: null, totalBytes: null })
  t.equal(ops.list().length, 3)
  t.equal(ops.prune(new Date(Date.now() + 10 * 86_400_000)), 0, 'young records stay')
  t.equal(ops.prune(new Date(Date.now() + 91 * 86_400_000)), 2, 'done and failed records older than 90 days go')
  const left = ops.list()
  t.same(left.map((r) => r.state), ['interrupted'], 'the interrupted one stays: it can be resumed')
  for (let i = 0; i < 5; i++) ops.start('freeze', [String(i)], '/').finish({})
  t.equal(ops.prune(new Date(), { keep: 2 }), 3, 'beyond `keep`, the oldest finished records go')
  t.equal(readdirSync(join(dir, 'operations')).length, 3)
})
