/**
 * cost/: the price table (storage, requests, retrieval, egress per provider and class) and estimates over
 * it. Pure: no I/O. Imports only errors.ts.
 */
export { DEFAULT_PRICES, GB, type ClassPrice, type PriceTable, type PriceTier, type ProviderPrice, type TierPrice } from './prices.js'
export { classPrices, formatUSD, formatWait, providerPrices, retrievalOptions, type RetrievalOption } from './estimate.js'
