//! The hash map of the reports' integer keys (function ids, edge pairs,
//! location-id sequences): FxHash, as in the runtime's sample table.
//! SipHash dominated the cost of large profiles; these keys are our own,
//! with nothing to defend against.

/// A `HashMap` keyed by our own integers.
pub(crate) type IdMap<K, V> = rustc_hash::FxHashMap<K, V>;
