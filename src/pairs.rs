//! Serde helpers for maps whose keys are not strings (tuples, rule indices): they are
//! written as a list of `[key, value]` pairs, which JSON can hold.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `#[serde(with = "crate::pairs")]` on a map field.
pub fn serialize<'a, S, M, K, V>(map: &'a M, serializer: S) -> Result<S::Ok, S::Error>
where
    S: Serializer,
    &'a M: IntoIterator<Item = (&'a K, &'a V)>,
    K: Serialize + 'a,
    V: Serialize + 'a,
{
    serializer.collect_seq(map)
}

/// Reads the pairs written by [`serialize`] back into a map.
pub fn deserialize<'de, D, M, K, V>(deserializer: D) -> Result<M, D::Error>
where
    D: Deserializer<'de>,
    M: FromIterator<(K, V)>,
    K: Deserialize<'de>,
    V: Deserialize<'de>,
{
    Ok(Vec::<(K, V)>::deserialize(deserializer)?
        .into_iter()
        .collect())
}
