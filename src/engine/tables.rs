//! The Arrow tables rules query: their schemas (the rule author's reference) and builders.
//!
//! State tables hold one *snapshot* of each identity that changed, taken at an evaluation's
//! *now*; `sid` names one identity at one evaluation and is the join key between them.
//! Activity tables hold this batch's closed windows' credential uses and tool calls, each
//! enriched with the inventory as it stood at the event's own time. See `docs/rules.md`.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, StringBuilder, TimestampMicrosecondBuilder, UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

macro_rules! data_type {
    (str) => {
        DataType::Utf8
    };
    (ts) => {
        DataType::Timestamp(TimeUnit::Microsecond, None)
    };
    (bool) => {
        DataType::Boolean
    };
    (u64) => {
        DataType::UInt64
    };
}

macro_rules! builder_with_capacity {
    (str, $n:expr) => {
        StringBuilder::with_capacity($n, $n * 16)
    };
    (ts, $n:expr) => {
        TimestampMicrosecondBuilder::with_capacity($n)
    };
    (bool, $n:expr) => {
        BooleanBuilder::with_capacity($n)
    };
    (u64, $n:expr) => {
        UInt64Builder::with_capacity($n)
    };
}

macro_rules! builder_type {
    (str) => {
        StringBuilder
    };
    (ts) => {
        TimestampMicrosecondBuilder
    };
    (bool) => {
        BooleanBuilder
    };
    (u64) => {
        UInt64Builder
    };
}

/// Declares a table: its name, schema and a builder with one public field per column.
macro_rules! table {
    ($(#[$m:meta])* $builder:ident, $name:literal, { $($(#[$cm:meta])* $col:ident : $kind:ident),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Default)]
        pub struct $builder {
            $($(#[$cm])* pub $col: builder_type!($kind),)+
        }

        impl $builder {
            /// The table's name in SQL.
            pub const NAME: &'static str = $name;

            /// The table's schema.
            pub fn schema() -> SchemaRef {
                Arc::new(Schema::new(vec![
                    $(Field::new(stringify!($col), data_type!($kind), true),)+
                ]))
            }

            /// Builders sized for about `rows` rows (`Default` sizes for 1024).
            pub fn with_capacity(rows: usize) -> Self {
                $builder { $($col: builder_with_capacity!($kind, rows),)+ }
            }

            /// Takes the rows built so far as one batch, leaving the builder empty.
            pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
                let columns: Vec<ArrayRef> = vec![$(Arc::new(self.$col.finish()),)+];
                RecordBatch::try_new(Self::schema(), columns)
            }
        }
    };
}

table!(
    /// One row per snapshotted identity.
    Identities, "identities", {
        /// Snapshot id: this identity at this evaluation; join key of all state tables.
        sid: u64,
        identity: str,
        /// `service_account`, `api_client`, `ai_agent`, `workload`, or null when unknown.
        kind: str,
        /// `draft_only`, `tool_executing` or `privileged`.
        tier: str,
        registered_at: ts,
        business_owner: str,
        technical_custodian: str,
        /// Latest `identity.approved`.
        approved_at: ts,
        /// Latest approval or recertification.
        certified_at: ts,
        /// Whether an approved scope baseline exists.
        has_baseline: bool,
        offboarded_at: ts,
        /// Latest credential use or tool call by this identity.
        last_activity_at: ts,
        /// Start of the current unbroken period of holding an active credential or grant;
        /// null when it holds none now.
        holding_since: ts,
    }
);

table!(
    /// One row per assigned owner role of a snapshotted identity.
    Owners, "owners", {
        sid: u64,
        identity: str,
        /// `business_owner` or `technical_custodian`.
        role: str,
        principal: str,
        assigned_at: ts,
        /// When that principal departed, or null.
        departed_at: ts,
    }
);

table!(
    /// One row per credential of a snapshotted identity that is active at the snapshot.
    Credentials, "credentials", {
        sid: u64,
        identity: str,
        credential: str,
        /// Credential kind, `unknown` for implicitly created ones.
        kind: str,
        issued_at: ts,
        /// Latest in-place rotation (without `new_credential`), or null.
        rotated_at: ts,
        expires: ts,
        /// The JIT task the credential was issued for.
        task: str,
        /// When that task completed for this identity, or null.
        task_completed_at: ts,
        last_used_at: ts,
    }
);

table!(
    /// One row per current grant of a snapshotted identity.
    Grants, "grants", {
        sid: u64,
        identity: str,
        scope: str,
        granted_at: ts,
        /// Whether the scope is inside the approved baseline now.
        in_baseline: bool,
        /// When the scope last became outside the baseline (grant time if it never was
        /// inside); null while inside.
        outside_baseline_since: ts,
        /// Latest tool call exercising the scope, or null.
        last_exercised_at: ts,
    }
);

table!(
    /// One row per vendor linked to a snapshotted identity.
    Vendors, "vendors", {
        sid: u64,
        identity: str,
        vendor: str,
        linked_at: ts,
        /// When the vendor relationship ended, or null.
        offboarded_at: ts,
    }
);

table!(
    /// One row per `credential.used` or `tool.called` in this batch's windows, with the
    /// inventory as it stood at the event's time.
    Activity, "activity", {
        window_start: ts,
        window_end: ts,
        /// Application order (time, class, id), for stable ordering of equal times.
        seq: u64,
        event_id: str,
        time: ts,
        /// `credential.used` or `tool.called`.
        event_type: str,
        identity: str,
        credential: str,
        /// The identity that owns the credential (may differ from `identity`).
        credential_identity: str,
        /// Credential kind, `unknown` for implicit ones; null when none is named.
        credential_kind: str,
        /// `active`, `revoked`, `retired` or `expired` at the event's time.
        credential_status: str,
        /// Whether the credential's owner identity was offboarded at the event's time.
        credential_owner_offboarded: bool,
        tool: str,
        /// Tool-call sensitivity (`internal` when absent); null for `credential.used`.
        sensitivity: str,
        approval: str,
        task: str,
        session: str,
        vendor: str,
        outcome: str,
        workload: str,
        environment: str,
        source_ip: str,
        identity_kind: str,
        identity_tier: str,
        /// Whether the identity had an `identity.approved` at the event's time.
        identity_approved: bool,
        identity_offboarded: bool,
        has_baseline: bool,
        /// Whether approved tools restrict this identity.
        tools_checked: bool,
        /// Whether the tool is among the approved tools (null when unchecked or no tool).
        tool_approved: bool,
    }
);

table!(
    /// One row per scope a tool call in this batch's windows exercised.
    CallScopes, "call_scopes", {
        window_start: ts,
        window_end: ts,
        seq: u64,
        event_id: str,
        time: ts,
        identity: str,
        scope: str,
        has_baseline: bool,
        /// Whether the scope was in the approved baseline at the call's time.
        in_baseline: bool,
        /// Whether the scope was granted at the call's time.
        granted: bool,
        identity_offboarded: bool,
    }
);

/// Name and schema of every table, in a stable order.
pub fn all_schemas() -> Vec<(&'static str, SchemaRef)> {
    vec![
        (Identities::NAME, Identities::schema()),
        (Owners::NAME, Owners::schema()),
        (Credentials::NAME, Credentials::schema()),
        (Grants::NAME, Grants::schema()),
        (Vendors::NAME, Vendors::schema()),
        (Activity::NAME, Activity::schema()),
        (CallScopes::NAME, CallScopes::schema()),
    ]
}

/// The builders of one batch's state tables (the first five of [`all_schemas`]).
#[derive(Debug, Default)]
pub struct StateBuilders {
    pub identities: Identities,
    pub owners: Owners,
    pub credentials: Credentials,
    pub grants: Grants,
    pub vendors: Vendors,
}

impl StateBuilders {
    /// Rows built so far, over all five tables.
    pub fn rows(&self) -> usize {
        use arrow::array::ArrayBuilder;
        self.identities.sid.len()
            + self.owners.sid.len()
            + self.credentials.sid.len()
            + self.grants.sid.len()
            + self.vendors.sid.len()
    }

    /// Finishes the state tables, in [`all_schemas`] order.
    pub fn finish(&mut self) -> Result<Vec<RecordBatch>, ArrowError> {
        Ok(vec![
            self.identities.finish()?,
            self.owners.finish()?,
            self.credentials.finish()?,
            self.grants.finish()?,
            self.vendors.finish()?,
        ])
    }
}
