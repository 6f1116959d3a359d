/**
 * Where job events go (a run succeeded, failed, ended with a warning; runs were missed; a check failed):
 * the daemon and `coldstore run` call the sink this returns. Notifications (webhook, e-mail, per the
 * configuration's `notify:` section) plug in here; until they do, events are not sent anywhere.
 */
import type { ColdstoreConfig, JobEventSink } from '../engine/index.js'

/** The sink for this configuration. */
export function jobEventSink(config: ColdstoreConfig, log: (line: string) => void): JobEventSink {
  void config
  void log
  return () => undefined
}
