//! One event an adapter emits, before it gets its id and is serialised to §1 JSON.

use serde_json::{Map, Value};

use crate::event::time::format_rfc3339;
use crate::event::{EventType, Micros};

/// An event of contract §1 as an adapter builds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Out {
    /// Its type.
    pub ty: EventType,
    /// Event time.
    pub time: Micros,
    /// The identity (`None` for `principal.departed` and `vendor.offboarded`).
    pub identity: Option<String>,
    /// The type's fields.
    pub fields: Map<String, Value>,
    /// An id suffix replacing `<record id>[:<n>]`, for upsert-once events that several
    /// records imply (e.g. a session's issue seen from each of its calls).
    pub id: Option<String>,
}

impl Out {
    /// An event of type `ty` at `time` about `identity`.
    pub fn new(ty: EventType, time: Micros, identity: impl Into<String>) -> Out {
        Out {
            ty,
            time,
            identity: Some(identity.into()),
            fields: Map::new(),
            id: None,
        }
    }

    /// A global event (no identity).
    pub fn global(ty: EventType, time: Micros) -> Out {
        Out {
            ty,
            time,
            identity: None,
            fields: Map::new(),
            id: None,
        }
    }

    /// Sets a string field.
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Out {
        self.fields
            .insert(key.to_owned(), Value::String(value.into()));
        self
    }

    /// Sets a string field when there is a value.
    pub fn with_opt(mut self, key: &str, value: Option<impl Into<String>>) -> Out {
        if let Some(value) = value {
            self.fields
                .insert(key.to_owned(), Value::String(value.into()));
        }
        self
    }

    /// Sets a timestamp field.
    pub fn with_time(mut self, key: &str, time: Option<Micros>) -> Out {
        if let Some(time) = time {
            self.fields
                .insert(key.to_owned(), Value::String(format_rfc3339(time)));
        }
        self
    }

    /// Sets a list of strings.
    pub fn with_list<S: Into<String>>(
        mut self,
        key: &str,
        values: impl IntoIterator<Item = S>,
    ) -> Out {
        let list = values
            .into_iter()
            .map(|v| Value::String(v.into()))
            .collect();
        self.fields.insert(key.to_owned(), Value::Array(list));
        self
    }

    /// Gives the event its own id suffix (see [`Out::id`]).
    pub fn with_id(mut self, id: impl Into<String>) -> Out {
        self.id = Some(id.into());
        self
    }

    /// The §1 JSON of this event with its full `id` and `source`.
    pub fn to_json(&self, id: &str, source: &str) -> Value {
        let mut map = Map::new();
        map.insert("id".into(), Value::String(id.to_owned()));
        map.insert("type".into(), Value::String(self.ty.as_str().to_owned()));
        map.insert("time".into(), Value::String(format_rfc3339(self.time)));
        map.insert("source".into(), Value::String(source.to_owned()));
        if let Some(identity) = &self.identity {
            map.insert("identity".into(), Value::String(identity.clone()));
        }
        for (k, v) in &self.fields {
            map.insert(k.clone(), v.clone());
        }
        Value::Object(map)
    }
}
