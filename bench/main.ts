/**
 * `npm run bench` entry (package.json points at dist/bench/main.js): the
 * side-by-side harness of bench/run.ts. `node dist/bench/run.js` is the same.
 */
import { main } from './run.js'

main().catch((e: unknown) => {
  process.stderr.write(`bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`)
  process.exit(1)
})
