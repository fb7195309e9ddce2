//! The identity view of `GET /v1/identities/{identity}` and `nhi-drift inspect`: the
//! identity's inventory and its open findings, as of the state's event time; as JSON or
//! as a table for people.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::inventory::view::IdentityInventory;

/// One identity as the state holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdentityView {
    /// The event time the state stands at.
    pub as_of: String,
    #[serde(flatten)]
    pub inventory: IdentityInventory,
    /// Open findings (contract §4 alerts): state findings until they resolve, window
    /// findings as emitted.
    pub open_findings: Vec<Value>,
}

fn or_dash(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("-")
}

fn age(seconds: i64) -> String {
    let days = seconds / 86_400;
    if days > 0 {
        format!("{days}d")
    } else {
        format!("{}h", seconds / 3_600)
    }
}

impl IdentityView {
    /// The view as aligned text.
    pub fn render_table(&self) -> String {
        let i = &self.inventory;
        let mut out = String::new();
        let _ = writeln!(out, "identity   {}", i.identity);
        let _ = writeln!(out, "as of      {}", self.as_of);
        let _ = writeln!(
            out,
            "kind       {}   tier {}   registered {}",
            or_dash(&i.kind),
            i.tier,
            i.registered_at
        );
        for (role, owner) in [
            ("business owner", &i.business_owner),
            ("custodian", &i.technical_custodian),
        ] {
            let text = match owner {
                Some(o) => match &o.departed_at {
                    Some(d) => format!("{} since {} (DEPARTED {d})", o.principal, o.since),
                    None => format!("{} since {}", o.principal, o.since),
                },
                None => "-".to_owned(),
            };
            let _ = writeln!(out, "{role:<15}{text}");
        }
        let _ = writeln!(
            out,
            "approved   {}   certified {}   offboarded {}   last activity {}",
            or_dash(&i.approved_at),
            or_dash(&i.certified_at),
            or_dash(&i.offboarded_at),
            or_dash(&i.last_activity_at)
        );
        match &i.baseline {
            Some(b) => {
                let tools = b
                    .tools
                    .as_ref()
                    .map_or("unchecked".to_owned(), |t| t.join(", "));
                let _ = writeln!(
                    out,
                    "baseline   scopes [{}]   tools [{tools}]",
                    b.scopes.join(", ")
                );
            }
            None => {
                let _ = writeln!(out, "baseline   none");
            }
        }
        let _ = writeln!(out, "\ngrants ({})", i.grants.len());
        if !i.grants.is_empty() {
            let _ = writeln!(
                out,
                "  {:<32} {:<10} {:<26} last exercised",
                "scope", "approved", "granted"
            );
        }
        for g in &i.grants {
            let _ = writeln!(
                out,
                "  {:<32} {:<10} {:<26} {}",
                g.scope,
                if g.in_baseline { "yes" } else { "NO" },
                g.granted_at,
                or_dash(&g.last_exercised_at)
            );
        }
        if !i.approved_not_granted.is_empty() {
            let _ = writeln!(
                out,
                "  approved, not granted: {}",
                i.approved_not_granted.join(", ")
            );
        }
        let _ = writeln!(out, "\ncredentials ({})", i.credentials.len());
        if !i.credentials.is_empty() {
            let _ = writeln!(
                out,
                "  {:<24} {:<14} {:<8} {:>6} {:<26} {:<26} last used",
                "credential", "kind", "status", "age", "issued", "expires"
            );
        }
        for c in &i.credentials {
            let _ = writeln!(
                out,
                "  {:<24} {:<14} {:<8} {:>6} {:<26} {:<26} {}",
                c.credential,
                c.kind,
                c.status,
                age(c.age_seconds),
                c.issued_at,
                or_dash(&c.expires),
                or_dash(&c.last_used_at)
            );
        }
        if !i.vendors.is_empty() {
            let _ = writeln!(out, "\nvendors ({})", i.vendors.len());
            for v in &i.vendors {
                let ended = v
                    .offboarded_at
                    .as_ref()
                    .map_or(String::new(), |t| format!("   OFFBOARDED {t}"));
                let _ = writeln!(out, "  {:<24} linked {}{ended}", v.vendor, v.linked_at);
            }
        }
        let _ = writeln!(out, "\nopen findings ({})", self.open_findings.len());
        for f in &self.open_findings {
            let text = |k: &str| f[k].as_str().unwrap_or("-").to_owned();
            let _ = writeln!(
                out,
                "  {:<14} {:<9} opened {}\n    {}",
                text("rule_id"),
                text("severity"),
                text("opened_at"),
                text("summary")
            );
        }
        out
    }
}
