/**
 * tree/: directory trees (JSON tree blobs, a Merkle DAG of subtrees) and
 * walking stored trees. Imports repo/ and below.
 */
export * from './tree.js'
export * from './tree-reader.js'
export * from './diff.js'
