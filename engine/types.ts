/**
 * Branded identifier types. A BlobId cannot be passed where a PackId is
 * expected. All ids are 32-byte BLAKE3 outputs written as 64 lowercase hex chars.
 */

declare const brand: unique symbol
type Brand<T, B extends string> = T & { readonly [brand]: B }

/** Id of a data chunk or tree blob (keyed BLAKE3 of the plaintext in encrypted repositories). */
export type BlobId = Brand<string, 'BlobId'>
/** Id of a pack file: BLAKE3 of the pack file's bytes. */
export type PackId = Brand<string, 'PackId'>
/** Id of a snapshot object: BLAKE3 of the stored object's bytes. */
export type SnapshotId = Brand<string, 'SnapshotId'>
/** Id of an index object: BLAKE3 of the stored object's bytes. */
export type IndexId = Brand<string, 'IndexId'>

/** Kind of a blob stored in a pack. */
export type BlobType = 'data' | 'tree'

export const HEX_ID = /^[0-9a-f]{64}$/
