//! Hash maps for the engine's own keys (identity names, credential ids, event-id
//! hashes): foldhash, several times faster than the standard SipHash on short keys, still
//! seeded per process so iteration order never becomes something results could depend on.

/// A `HashMap` with the engine's hasher.
pub type FastMap<K, V> = std::collections::HashMap<K, V, hashbrown::DefaultHashBuilder>;
