//! The inventory's credentials, stored compactly: a slab of states, each holding its own
//! id, and an index from id to slab slot that stores only the slot number. An identity
//! lists its credentials by slot. A tracked credential costs its state, its id once and a
//! few bytes of index (measured by `cargo bench --bench replay -- memory`).

use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::HashTable;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Moment;
use crate::event::{CredentialKind, Micros};

/// A credential's place in the slab; stable while the credential is tracked.
pub type Slot = u32;

/// Everything known about one credential.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CredentialState {
    /// The credential's id.
    pub id: Box<str>,
    /// The identity that owns it (shared with the inventory's identity key).
    #[serde(with = "shared_name")]
    pub identity: Arc<str>,
    pub kind: CredentialKind,
    pub issued_at: Micros,
    pub rotated_at: Moment,
    pub expires: Moment,
    pub revoked_at: Moment,
    /// Retired by a rotation with `new_credential`.
    pub retired_at: Moment,
    pub task: Option<Box<str>>,
    pub last_used: Moment,
}

/// The credentials, by id and by slot.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    slots: Chunked,
    /// Slots of removed credentials, reused first.
    free: Vec<Slot>,
    /// Slot numbers, hashed by the id of the state in their slot.
    index: HashTable<Slot>,
    hasher: hashbrown::DefaultHashBuilder,
}

impl Credentials {
    /// Credentials tracked.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether none is tracked.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The slot of credential `id`.
    pub fn slot_of(&self, id: &str) -> Option<Slot> {
        let slots = &self.slots;
        self.index
            .find(self.hasher.hash_one(id), |&s| id_at(slots, s) == Some(id))
            .copied()
    }

    /// Whether credential `id` is tracked.
    pub fn contains(&self, id: &str) -> bool {
        self.slot_of(id).is_some()
    }

    /// Slots in use or free: every slot is below this.
    pub fn slot_count(&self) -> Slot {
        self.slots.len as Slot
    }

    /// Credential `id`.
    pub fn get(&self, id: &str) -> Option<&CredentialState> {
        self.slot_of(id).and_then(|s| self.at(s))
    }

    /// Credential `id`, to change (not its id).
    pub fn get_mut(&mut self, id: &str) -> Option<&mut CredentialState> {
        let slot = self.slot_of(id)?;
        self.at_mut(slot)
    }

    /// The credential in `slot`.
    pub fn at(&self, slot: Slot) -> Option<&CredentialState> {
        self.slots.get(slot)
    }

    /// The credential in `slot`, to change (not its id).
    pub fn at_mut(&mut self, slot: Slot) -> Option<&mut CredentialState> {
        self.slots.get_mut(slot)
    }

    /// Tracks `state`, replacing a credential with its id (which keeps its slot).
    pub fn insert(&mut self, state: CredentialState) -> Slot {
        if let Some(slot) = self.slot_of(&state.id) {
            *self.slots.entry(slot) = Some(state);
            return slot;
        }
        let hash = self.hasher.hash_one(&*state.id);
        let slot = match self.free.pop() {
            Some(slot) => {
                *self.slots.entry(slot) = Some(state);
                slot
            }
            None => self.slots.push(state),
        };
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index.insert_unique(hash, slot, |&s| {
            hasher.hash_one(id_at(slots, s).unwrap_or_default())
        });
        slot
    }

    /// Stops tracking credential `id`.
    pub fn remove(&mut self, id: &str) -> Option<CredentialState> {
        let slots = &self.slots;
        let entry = self
            .index
            .find_entry(self.hasher.hash_one(id), |&s| id_at(slots, s) == Some(id))
            .ok()?;
        let (slot, _) = entry.remove();
        self.free.push(slot);
        self.slots.entry(slot).take()
    }

    /// Every tracked credential, in slot order.
    pub fn values(&self) -> impl Iterator<Item = &CredentialState> {
        self.slots.iter().flatten()
    }

    /// Every tracked credential, to change (not their ids).
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut CredentialState> {
        self.slots.iter_mut().flatten()
    }
}

/// Slots per chunk of the slab.
const CHUNK: usize = 4096;

/// The slab: slots in fixed-size chunks, so growing it never moves (or, for a moment,
/// doubles) the credentials already stored, and at most one chunk is partly unused.
#[derive(Debug, Clone, Default)]
struct Chunked {
    chunks: Vec<Vec<Option<CredentialState>>>,
    len: usize,
}

impl Chunked {
    fn get(&self, slot: Slot) -> Option<&CredentialState> {
        let slot = slot as usize;
        self.chunks.get(slot / CHUNK)?.get(slot % CHUNK)?.as_ref()
    }

    fn get_mut(&mut self, slot: Slot) -> Option<&mut CredentialState> {
        let slot = slot as usize;
        self.chunks
            .get_mut(slot / CHUNK)?
            .get_mut(slot % CHUNK)?
            .as_mut()
    }

    /// A slot below `len`.
    fn entry(&mut self, slot: Slot) -> &mut Option<CredentialState> {
        let slot = slot as usize;
        &mut self.chunks[slot / CHUNK][slot % CHUNK]
    }

    /// Appends a slot holding `state`.
    fn push(&mut self, state: CredentialState) -> Slot {
        self.push_slot(Some(state));
        (self.len - 1) as Slot
    }

    fn push_slot(&mut self, slot: Option<CredentialState>) {
        if self.len.is_multiple_of(CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        if let Some(chunk) = self.chunks.last_mut() {
            chunk.push(slot);
        }
        self.len += 1;
    }

    fn iter(&self) -> impl Iterator<Item = &Option<CredentialState>> {
        self.chunks.iter().flatten()
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = &mut Option<CredentialState>> {
        self.chunks.iter_mut().flatten()
    }

    /// The slots up to the last one in use.
    fn used(&self) -> impl Iterator<Item = &Option<CredentialState>> {
        let end = self
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_some())
            .last()
            .map_or(0, |(i, _)| i + 1);
        self.iter().take(end)
    }
}

/// An `Arc<str>` written as a string.
mod shared_name {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(name: &Arc<str>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(name)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Arc<str>, D::Error> {
        String::deserialize(deserializer).map(Arc::from)
    }
}

fn id_at(slots: &Chunked, slot: Slot) -> Option<&str> {
    slots.get(slot).map(|c| &*c.id)
}

/// Reads the slots straight into chunks (no second copy of the slab while restoring).
struct ChunkedVisitor;

impl<'de> serde::de::Visitor<'de> for ChunkedVisitor {
    type Value = Chunked;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list of credential slots")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Chunked, A::Error> {
        let mut slots = Chunked::default();
        while let Some(slot) = seq.next_element::<Option<CredentialState>>()? {
            slots.push_slot(slot);
        }
        Ok(slots)
    }
}

/// Equal when they track the same credentials in the same slots.
impl PartialEq for Credentials {
    fn eq(&self, other: &Self) -> bool {
        self.slots.used().eq(other.slots.used())
    }
}

/// Written as the slab (slots in order, `null` for free ones), so identities' slot lists
/// stay valid; the index and free list are rebuilt on reading.
impl Serialize for Credentials {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(Some(self.slots.len))?;
        for slot in self.slots.iter() {
            seq.serialize_element(slot)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Credentials {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let slots = deserializer.deserialize_seq(ChunkedVisitor)?;
        let mut credentials = Credentials {
            slots,
            ..Default::default()
        };
        let Credentials {
            slots,
            free,
            index,
            hasher,
        } = &mut credentials;
        for (slot, state) in slots.iter().enumerate() {
            let slots = &*slots;
            let Some(state) = state else {
                free.push(slot as Slot);
                continue;
            };
            let hash = hasher.hash_one(&*state.id);
            if index
                .find(hash, |&s| id_at(slots, s) == Some(&state.id))
                .is_some()
            {
                return Err(serde::de::Error::custom(format!(
                    "credential {:?} is in two slots",
                    state.id
                )));
            }
            index.insert_unique(hash, slot as Slot, |&s| {
                hasher.hash_one(id_at(slots, s).unwrap_or_default())
            });
        }
        free.reverse();
        Ok(credentials)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(id: &str) -> CredentialState {
        CredentialState {
            id: id.into(),
            identity: Arc::from("svc"),
            kind: CredentialKind::ApiKey,
            issued_at: 0,
            rotated_at: Moment::NONE,
            expires: Moment::NONE,
            revoked_at: Moment::NONE,
            retired_at: Moment::NONE,
            task: None,
            last_used: Moment::NONE,
        }
    }

    #[test]
    fn slots_are_stable_and_reused() {
        let mut c = Credentials::default();
        let (a, b) = (c.insert(state("a")), c.insert(state("b")));
        assert_eq!((a, b, c.len()), (0, 1, 2));
        assert_eq!(c.insert(state("a")), a, "replacing keeps the slot");
        assert_eq!(c.remove("a").map(|s| s.id), Some("a".into()));
        assert!(c.get("a").is_none() && c.at(a).is_none());
        assert_eq!(c.get("b").map(|s| &*s.id), Some("b"));
        assert_eq!(c.insert(state("c")), a, "a free slot is reused");
        assert_eq!(c.slot_of("c"), Some(a));
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn round_trips_with_its_slots() {
        let mut c = Credentials::default();
        for id in ["a", "b", "c", "d"] {
            c.insert(state(id));
        }
        c.remove("b");
        let json = serde_json::to_string(&c).expect("serializes");
        let back: Credentials = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, c);
        assert_eq!(back.slot_of("d"), Some(3));
        assert!(!back.contains("b"));
        let mut back = back;
        assert_eq!(back.insert(state("e")), 1, "the free slot survives");
        let twice = r#"[{"id":"a","identity":"svc","kind":"api_key","issued_at":0,"rotated_at":null,"expires":null,"revoked_at":null,"retired_at":null,"task":null,"last_used":null},{"id":"a","identity":"svc","kind":"api_key","issued_at":0,"rotated_at":null,"expires":null,"revoked_at":null,"retired_at":null,"task":null,"last_used":null}]"#;
        assert!(serde_json::from_str::<Credentials>(twice).is_err());
    }

    #[test]
    fn slots_span_chunks_and_survive_a_round_trip() {
        let mut c = Credentials::default();
        let n = 2 * CHUNK + 7;
        for i in 0..n {
            assert_eq!(c.insert(state(&format!("k{i}"))) as usize, i);
        }
        for i in [0, CHUNK - 1, CHUNK, 2 * CHUNK + 6] {
            assert_eq!(
                c.remove(&format!("k{i}")).map(|s| s.id),
                Some(format!("k{i}").into())
            );
        }
        let back: Credentials =
            postcard::from_bytes(&postcard::to_allocvec(&c).expect("serializes"))
                .expect("deserializes");
        assert_eq!(back, c);
        assert_eq!(back.len(), n - 4);
        for i in [1, CHUNK + 1, 2 * CHUNK + 5] {
            assert_eq!(back.slot_of(&format!("k{i}")), Some(i as Slot));
            assert_eq!(back.at(i as Slot).map(|s| &*s.id), Some(&*format!("k{i}")));
        }
        assert!(back.at(CHUNK as Slot).is_none() && back.at(n as Slot).is_none());
        assert_eq!(back.values().count(), n - 4);
    }
}
