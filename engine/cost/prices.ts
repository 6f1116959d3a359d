/**
 * The price table: storage, requests, retrieval and egress per provider and storage class, in US dollars.
 * List prices of the providers' public pages for their reference regions (AWS us-east-1, GCS us-central1
 * regional, Backblaze B2), as of 2025; users override any entry in coldstore.yaml (`prices:`), and every
 * estimate says it is one. Local disks and SFTP servers cost nothing here: their cost is the user's own.
 */

/** Speeds of an archive retrieval (S3's names; GCS archive classes read at once). */
export type PriceTier = 'Expedited' | 'Standard' | 'Bulk'

/** Retrieval of one tier from an archive class. */
export interface TierPrice {
  /** Dollars per GB retrieved. */
  perGB: number
  /** Dollars per 1,000 retrieval requests. */
  per1000Requests: number
  /** Typical time until the objects are readable, in hours: [fastest, slowest]. */
  hours: [number, number]
}

/** Prices of one storage class. */
export interface ClassPrice {
  /** Dollars per GB-month stored. */
  storagePerGBMonth: number
  /** Dollars per 1,000 writes (PUT, COPY, POST, LIST; GCS class A). */
  per1000Writes: number
  /** Dollars per 1,000 reads (GET, HEAD; GCS class B). */
  per1000Reads: number
  /** Dollars per GB read from the class (instant-access cold classes); 0 for hot classes. */
  readPerGB: number
  /** Minimum storage duration in days: deleting earlier is charged as if stored that long. */
  minDays: number
  /** Archive classes whose objects must be restored before reading: the restore tiers. */
  tiers?: Partial<Record<PriceTier, TierPrice>>
}

/** Prices of one provider. */
export interface ProviderPrice {
  /** Shown in reports ("AWS S3 us-east-1, list prices 2025"). */
  label: string
  /** Dollars per GB downloaded to the internet (a restore to your machine). */
  egressPerGB: number
  /** Storage class → prices. */
  classes: Record<string, ClassPrice>
  /** The class a restored copy of an archived object is billed as while it exists (S3: STANDARD). */
  restoredCopyClass?: string
}

/** The whole table: provider id (ArchiveAccess.provider, or `local`, `sftp`) → prices. */
export type PriceTable = Record<string, ProviderPrice>

const S3_CLASSES: Record<string, ClassPrice> = {
  STANDARD: { storagePerGBMonth: 0.023, per1000Writes: 0.005, per1000Reads: 0.0004, readPerGB: 0, minDays: 0 },
  INTELLIGENT_TIERING: { storagePerGBMonth: 0.023, per1000Writes: 0.005, per1000Reads: 0.0004, readPerGB: 0, minDays: 0 },
  STANDARD_IA: { storagePerGBMonth: 0.0125, per1000Writes: 0.01, per1000Reads: 0.001, readPerGB: 0.01, minDays: 30 },
  ONEZONE_IA: { storagePerGBMonth: 0.01, per1000Writes: 0.01, per1000Reads: 0.001, readPerGB: 0.01, minDays: 30 },
  GLACIER_IR: { storagePerGBMonth: 0.004, per1000Writes: 0.02, per1000Reads: 0.01, readPerGB: 0.03, minDays: 90 },
  GLACIER: {
    storagePerGBMonth: 0.0036, per1000Writes: 0.03, per1000Reads: 0.0004, readPerGB: 0, minDays: 90,
    tiers: {
      Expedited: { perGB: 0.03, per1000Requests: 10, hours: [1 / 60, 5 / 60] },
      Standard: { perGB: 0.01, per1000Requests: 0.05, hours: [3, 5] },
      Bulk: { perGB: 0, per1000Requests: 0, hours: [5, 12] },
    },
  },
  DEEP_ARCHIVE: {
    storagePerGBMonth: 0.00099, per1000Writes: 0.05, per1000Reads: 0.0004, readPerGB: 0, minDays: 180,
    tiers: {
      Standard: { perGB: 0.02, per1000Requests: 0.1, hours: [9, 12] },
      Bulk: { perGB: 0.0025, per1000Requests: 0.025, hours: [24, 48] },
    },
  },
}

/** The built-in table. */
export const DEFAULT_PRICES: PriceTable = {
  'aws-s3': { label: 'AWS S3 us-east-1, list prices 2025', egressPerGB: 0.09, classes: S3_CLASSES, restoredCopyClass: 'STANDARD' },
  // S3-compatible stores vary; AWS's classes are the best default guess, and users override them.
  's3-compatible': { label: 'S3-compatible store (AWS S3 list prices assumed: override in coldstore.yaml)', egressPerGB: 0.09, classes: S3_CLASSES, restoredCopyClass: 'STANDARD' },
  gcs: {
    label: 'Google Cloud Storage us-central1, list prices 2025',
    egressPerGB: 0.12,
    classes: {
      STANDARD: { storagePerGBMonth: 0.02, per1000Writes: 0.005, per1000Reads: 0.0004, readPerGB: 0, minDays: 0 },
      NEARLINE: { storagePerGBMonth: 0.01, per1000Writes: 0.01, per1000Reads: 0.001, readPerGB: 0.01, minDays: 30 },
      COLDLINE: { storagePerGBMonth: 0.004, per1000Writes: 0.02, per1000Reads: 0.01, readPerGB: 0.02, minDays: 90 },
      ARCHIVE: { storagePerGBMonth: 0.0012, per1000Writes: 0.05, per1000Reads: 0.05, readPerGB: 0.05, minDays: 365 },
    },
  },
  b2: {
    label: 'Backblaze B2, list prices 2025',
    egressPerGB: 0.01,
    classes: { STANDARD: { storagePerGBMonth: 0.006, per1000Writes: 0, per1000Reads: 0.0004, readPerGB: 0, minDays: 0 } },
  },
  local: { label: 'local disk (your own hardware)', egressPerGB: 0, classes: { STANDARD: { storagePerGBMonth: 0, per1000Writes: 0, per1000Reads: 0, readPerGB: 0, minDays: 0 } } },
}

/** 1 GB as providers bill it (10^9 bytes). */
export const GB = 1e9
