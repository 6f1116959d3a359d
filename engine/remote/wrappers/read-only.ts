import { RemoteError } from '../../errors.js'
import type { ByteRange, ObjectInfo, PutOptions, Remote, RemoteProperties } from '../remote.js'

/**
 * A Remote that reads through to `inner` and refuses every write, for
 * commands that must not change a repository (restore, verify, the WebDAV
 * view). Owns `inner`: `close` closes it.
 */
export class ReadOnlyRemote implements Remote {
  readonly properties: RemoteProperties
  private readonly inner: Remote

  constructor(inner: Remote) {
    this.inner = inner
    this.properties = inner.properties
  }

  /** Always rejects with RemoteError { transient: false }: retrying cannot help. */
  async put(name: string, _data: Uint8Array, _options?: PutOptions): Promise<void> {
    throw refused('put', name)
  }

  /** As `inner.get`. */
  get(name: string, range?: ByteRange): Promise<Buffer> {
    return this.inner.get(name, range)
  }

  /** As `inner.stat`. */
  stat(name: string): Promise<ObjectInfo> {
    return this.inner.stat(name)
  }

  /** As `inner.list`. */
  list(prefix: string): AsyncIterable<ObjectInfo> {
    return this.inner.list(prefix)
  }

  /** Always rejects with RemoteError { transient: false }, also for a missing object. */
  async delete(name: string): Promise<void> {
    throw refused('delete', name)
  }

  /** Closes `inner`. */
  close(): Promise<void> {
    return this.inner.close()
  }
}

function refused(operation: string, name: string): RemoteError {
  return new RemoteError(`read-only remote: ${operation} ${name} refused`, { transient: false, objectName: name })
}
