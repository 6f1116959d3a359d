import t from 'tap'
import { runRemoteSuite } from '../../testing/remote-suite.js'
import { GcsRemote, parseConfig } from './index.js'
import { startGcsEmulator } from './testing/emulator.js'

t.test('conformance', async (t) => {
  await runRemoteSuite(t, async (t) => {
    const emulator = await startGcsEmulator(t)
    return GcsRemote.open(parseConfig(`gs://coldstore-test/repo?endpoint=${emulator.endpoint}&list_page_size=3`), { create: false, env: {} })
  })
})
