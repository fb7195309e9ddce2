//! The event model of contract §1: one typed [`Event`] per accepted record.
//!
//! Decoding and validation live in [`decode`]; this module only holds the types the rest
//! of the pipeline works with. Times are microseconds since the Unix epoch (UTC).

pub mod decode;
mod loose;
pub mod time;

use serde::{Deserialize, Serialize};

pub use decode::{DeadLetter, Decoder, Reason, Reject};
pub use time::Micros;

/// Every event type the contract knows, with its wire name and topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventType {
    IdentityRegistered,
    OwnerAssigned,
    Approved,
    Recertified,
    ScopeGranted,
    ScopeRevoked,
    VendorLinked,
    Offboarded,
    PrincipalDeparted,
    VendorOffboarded,
    CredentialIssued,
    CredentialRotated,
    CredentialRevoked,
    CredentialUsed,
    ToolCalled,
    TaskCompleted,
}

/// The three input topics of contract §1, by role (names come from config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TopicRole {
    Identity,
    Credential,
    ToolCall,
}

impl EventType {
    /// All types, in contract order.
    pub const ALL: [EventType; 16] = [
        Self::IdentityRegistered,
        Self::OwnerAssigned,
        Self::Approved,
        Self::Recertified,
        Self::ScopeGranted,
        Self::ScopeRevoked,
        Self::VendorLinked,
        Self::Offboarded,
        Self::PrincipalDeparted,
        Self::VendorOffboarded,
        Self::CredentialIssued,
        Self::CredentialRotated,
        Self::CredentialRevoked,
        Self::CredentialUsed,
        Self::ToolCalled,
        Self::TaskCompleted,
    ];

    /// The wire name (`identity.registered`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::IdentityRegistered => "identity.registered",
            Self::OwnerAssigned => "identity.owner_assigned",
            Self::Approved => "identity.approved",
            Self::Recertified => "identity.recertified",
            Self::ScopeGranted => "identity.scope_granted",
            Self::ScopeRevoked => "identity.scope_revoked",
            Self::VendorLinked => "identity.vendor_linked",
            Self::Offboarded => "identity.offboarded",
            Self::PrincipalDeparted => "principal.departed",
            Self::VendorOffboarded => "vendor.offboarded",
            Self::CredentialIssued => "credential.issued",
            Self::CredentialRotated => "credential.rotated",
            Self::CredentialRevoked => "credential.revoked",
            Self::CredentialUsed => "credential.used",
            Self::ToolCalled => "tool.called",
            Self::TaskCompleted => "task.completed",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The topic this type is published on.
    pub fn topic(self) -> TopicRole {
        match self {
            Self::CredentialIssued
            | Self::CredentialRotated
            | Self::CredentialRevoked
            | Self::CredentialUsed => TopicRole::Credential,
            Self::ToolCalled | Self::TaskCompleted => TopicRole::ToolCall,
            _ => TopicRole::Identity,
        }
    }

    /// Whether the event must name an `identity` (all but the two global types).
    pub fn needs_identity(self) -> bool {
        !matches!(self, Self::PrincipalDeparted | Self::VendorOffboarded)
    }
}

/// Declares a closed string enum with its allowed values, used for validation errors.
macro_rules! closed_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name { $($variant),+ }

        impl $name {
            /// The allowed wire values, for error messages.
            pub const ALLOWED: &'static [&'static str] = &[$($text),+];

            /// The wire value.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }

            /// Parses a wire value.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some(Self::$variant),)+ _ => None }
            }
        }
    };
}

closed_enum!(
    /// What kind of non-human identity this is.
    IdentityKind {
        ServiceAccount => "service_account",
        ApiClient => "api_client",
        AiAgent => "ai_agent",
        Workload => "workload",
    }
);

closed_enum!(
    /// How much an identity may do; `privileged` calls need JIT credentials or approvals.
    Tier {
        DraftOnly => "draft_only",
        ToolExecuting => "tool_executing",
        Privileged => "privileged",
    }
);

closed_enum!(
    /// Credential kinds; `Unknown` is only for implicitly created credentials.
    CredentialKind {
        ApiKey => "api_key",
        ClientSecret => "client_secret",
        Password => "password",
        SshKey => "ssh_key",
        Certificate => "certificate",
        OauthToken => "oauth_token",
        JitToken => "jit_token",
        WorkloadSvid => "workload_svid",
        Unknown => "unknown",
    }
);

closed_enum!(
    /// Data sensitivity of a tool call; absent means `internal`.
    Sensitivity {
        Public => "public",
        Internal => "internal",
        Confidential => "confidential",
        Restricted => "restricted",
    }
);

closed_enum!(
    /// Outcome of a tool call.
    Outcome {
        Success => "success",
        Denied => "denied",
        Error => "error",
    }
);

/// One accepted event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique event id; duplicates are ignored.
    pub id: String,
    /// Event time.
    pub time: Micros,
    /// Emitting system.
    pub source: Option<String>,
    /// The NHI the event is about; `None` only for `principal.*` and `vendor.*`.
    pub identity: Option<String>,
    /// Type-specific fields.
    pub body: Body,
}

impl Event {
    /// The event's type.
    pub fn event_type(&self) -> EventType {
        self.body.event_type()
    }

    /// Whether this is activity (`credential.used`, `tool.called`), which contract §2
    /// orders after everything else at an equal time.
    pub fn is_activity(&self) -> bool {
        matches!(self.body, Body::CredentialUsed(_) | Body::ToolCalled(_))
    }
}

/// Type-specific fields of an event (contract §1.2–§1.4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Body {
    Registered {
        kind: Option<IdentityKind>,
        tier: Tier,
        name: Option<String>,
        workflow: Option<String>,
        vendors: Vec<String>,
    },
    OwnerAssigned {
        business_owner: Option<String>,
        technical_custodian: Option<String>,
    },
    Approved {
        approver: String,
        scopes: Vec<String>,
        tools: Option<Vec<String>>,
    },
    Recertified {
        reviewer: String,
        scopes: Option<Vec<String>>,
    },
    ScopeGranted {
        scope: String,
    },
    ScopeRevoked {
        scope: String,
    },
    VendorLinked {
        vendor: String,
    },
    Offboarded {
        reason: Option<String>,
    },
    PrincipalDeparted {
        principal: String,
    },
    VendorOffboarded {
        vendor: String,
    },
    CredentialIssued {
        credential: String,
        kind: CredentialKind,
        expires: Option<Micros>,
        scopes: Vec<String>,
        task: Option<String>,
    },
    CredentialRotated {
        credential: String,
        new_credential: Option<String>,
        expires: Option<Micros>,
    },
    CredentialRevoked {
        credential: String,
    },
    CredentialUsed(Use),
    ToolCalled(ToolCall),
    TaskCompleted {
        task: String,
    },
}

impl Body {
    /// The event type this body belongs to.
    pub fn event_type(&self) -> EventType {
        match self {
            Body::Registered { .. } => EventType::IdentityRegistered,
            Body::OwnerAssigned { .. } => EventType::OwnerAssigned,
            Body::Approved { .. } => EventType::Approved,
            Body::Recertified { .. } => EventType::Recertified,
            Body::ScopeGranted { .. } => EventType::ScopeGranted,
            Body::ScopeRevoked { .. } => EventType::ScopeRevoked,
            Body::VendorLinked { .. } => EventType::VendorLinked,
            Body::Offboarded { .. } => EventType::Offboarded,
            Body::PrincipalDeparted { .. } => EventType::PrincipalDeparted,
            Body::VendorOffboarded { .. } => EventType::VendorOffboarded,
            Body::CredentialIssued { .. } => EventType::CredentialIssued,
            Body::CredentialRotated { .. } => EventType::CredentialRotated,
            Body::CredentialRevoked { .. } => EventType::CredentialRevoked,
            Body::CredentialUsed(_) => EventType::CredentialUsed,
            Body::ToolCalled(_) => EventType::ToolCalled,
            Body::TaskCompleted { .. } => EventType::TaskCompleted,
        }
    }
}

/// A `credential.used` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Use {
    pub credential: String,
    pub workload: Option<String>,
    pub environment: Option<String>,
    pub source_ip: Option<String>,
}

/// A `tool.called` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub tool: String,
    pub credential: Option<String>,
    pub scopes: Vec<String>,
    pub sensitivity: Sensitivity,
    pub environment: Option<String>,
    pub workload: Option<String>,
    pub approval: Option<String>,
    pub task: Option<String>,
    pub session: Option<String>,
    pub vendor: Option<String>,
    pub outcome: Option<Outcome>,
}
