/**
 * vfs/: a read-only directory/file view of a repository (jobs and freezes →
 * snapshots → trees) with files read on demand by byte range through a
 * bounded chunk cache. server/ adapts it to WebDAV and HTML.
 * Imports snapshot/, tree/, repo/ and below; never server/, cli/ or HTTP.
 */
export { SnapshotView, FREEZES_FOLDER, LATEST_FOLDER, folderTime, safeFolderName, type VfsEntry, type SnapshotViewOptions } from './snapshot-view.js'
export { VfsFile } from './vfs-file.js'
export { ChunkCache, type ChunkCacheOptions } from './chunk-cache.js'
export { TreeCache } from './tree-cache.js'
export { JobsView, type BrowseView, type JobFolder } from './jobs-view.js'
