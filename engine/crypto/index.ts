/**
 * crypto/: password-wrapped master keys (scrypt + AES-256-GCM), subkey
 * derivation, and sealing of stored objects. Imports only hash/ and errors.
 */
export * from './sealer.js'
export * from './keys.js'
