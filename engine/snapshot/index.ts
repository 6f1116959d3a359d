/**
 * snapshot/: snapshot and freeze objects: save, load, list, resolve
 * references. Imports repo/ and below.
 */
export * from './snapshot.js'
