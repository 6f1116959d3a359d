/**
 * filter/: path patterns (globs, exclude files, .gitignore) shared by backup
 * and restore. Imports only errors.
 */
export * from './excludes.js'
