/**
 * Writing to a stream that may be slow or go away (an HTTP response, an
 * archive stream): one place for the 'drain' / 'close' / 'error' dance.
 */

/** A destination as far as writeOrWait needs it (Writable, ServerResponse, PassThrough, yazl's output). */
export interface WritableLike {
  readonly destroyed?: boolean
  write(chunk: Buffer | string): boolean
  once(event: 'drain' | 'close' | 'error', listener: () => void): unknown
  removeListener(event: 'drain' | 'close' | 'error', listener: () => void): unknown
}

/**
 * Writes `chunk`; when the destination is full, waits for 'drain'. Returns
 * (or resolves to) false once the destination has closed or failed, so the
 * producer can stop. Synchronous true when no wait was needed.
 */
export function writeOrWait(dest: WritableLike, chunk: Buffer | string): Promise<boolean> | boolean {
  if (dest.destroyed) return false
  if (dest.write(chunk)) return true
  return new Promise((resolve) => {
    const done = (ok: boolean) => () => {
      dest.removeListener('drain', onDrain)
      dest.removeListener('close', onClose)
      dest.removeListener('error', onClose)
      resolve(ok)
    }
    const onDrain = done(true)
    const onClose = done(false)
    dest.once('drain', onDrain)
    dest.once('close', onClose)
    dest.once('error', onClose)
  })
}
