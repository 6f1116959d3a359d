/**
 * retrieval/: which data packs an operation needs are readable now in archive storage classes, and the
 * retrieval requests. Over repo/, pack/ and remote/ (the `archive` capability).
 */
export { checkRetrieval, mayNeedRetrieval, requestRetrieval, type RetrievalCheck, type Tally } from './retrieval.js'
