/**
 * gc/: what lets prune delete while others write, without blocking them: lock objects (`locks/<id>`,
 * refreshed while a writer or prune runs, ignored once stale), prune plans (`prune/<id>`, what a prune
 * marked), and the writer's side of the protocol (`beginWrite`). Imports repo/, index/, pack/, tree/ and
 * below; backup/ and prune/ use it.
 */
export * from './plan.js'
export * from './session.js'
export * from './written.js'
