//! The declared inventory, YAML and CSV.

use super::{events, skipped, types};
use crate::adapt::{Format, SkipReason};

const YAML: &str = "
time: 2023-07-01T00:00:00Z
identities:
  - identity: agent:support:triage
    kind: ai_agent
    tier: draft_only
    name: triage
    workflow: support
    vendors: [openai]
    business_owner: alice@example.com
    technical_custodian: bob@example.com
    approved:
      by: carol@example.com
      at: 2023-07-02T00:00:00Z
      scopes: [tickets:read]
      tools: [search, draft_reply]
    recertified: {by: carol@example.com, at: 2023-09-01T00:00:00Z, scopes: [tickets:read, tickets:write]}
  - identity: arn:aws:iam::123456789012:user/ci
    business_owner: dave@example.com
departed:
  - principal: alice@example.com
    at: 2023-08-01T00:00:00Z
offboarded_vendors:
  - vendor: openai
    at: 2023-08-02T00:00:00Z
";

#[test]
fn yaml_declares_registration_owners_approval_and_departures() {
    let out = events(Format::Inventory, YAML);
    let mut by_type: Vec<&str> = types(&out);
    by_type.sort_unstable();
    assert_eq!(
        by_type,
        [
            "identity.approved",
            "identity.owner_assigned",
            "identity.owner_assigned",
            "identity.recertified",
            "identity.registered",
            "principal.departed",
            "vendor.offboarded"
        ]
    );
    let find = |ty: &str| out.iter().find(|e| e["type"] == ty).expect(ty);
    let registered = find("identity.registered");
    assert_eq!(registered["tier"], "draft_only");
    assert_eq!(registered["vendors"], serde_json::json!(["openai"]));
    assert_eq!(registered["time"], "2023-07-01T00:00:00Z");
    let approved = find("identity.approved");
    assert_eq!(approved["time"], "2023-07-02T00:00:00Z");
    assert_eq!(
        approved["tools"],
        serde_json::json!(["search", "draft_reply"])
    );
    assert_eq!(find("identity.recertified")["scopes"][1], "tickets:write");
    assert_eq!(find("principal.departed")["principal"], "alice@example.com");
    assert_eq!(
        registered["id"],
        "inventory:agent:support:triage@2023-07-01T00:00:00Z"
    );
}

#[test]
fn csv_declares_the_same() {
    let csv = "identity,kind,tier,business_owner,technical_custodian,approver,scopes,tools,at,departed\n\
               agent:support:triage,ai_agent,privileged,alice,bob,carol,tickets:read;tickets:write,search,2023-07-01T00:00:00Z,\n\
               ,,,,,,,,2023-08-01T00:00:00Z,alice\n";
    let out = events(Format::Inventory, csv);
    assert_eq!(
        types(&out),
        [
            "identity.registered",
            "identity.owner_assigned",
            "identity.approved",
            "principal.departed"
        ]
    );
    assert_eq!(
        out[2]["scopes"],
        serde_json::json!(["tickets:read", "tickets:write"])
    );
    assert_eq!(out[2]["tools"], serde_json::json!(["search"]));
    assert_eq!(out[0]["tier"], "privileged");
}

#[test]
fn entries_without_a_time_or_kind_are_skipped() {
    let no_time = "identities:\n  - identity: x\n    business_owner: a\n";
    assert_eq!(skipped(Format::Inventory, no_time), SkipReason::MissingTime);
    let no_kind =
        "time: 2023-07-01T00:00:00Z\nidentities:\n  - identity: x\n    tier: privileged\n";
    assert_eq!(skipped(Format::Inventory, no_kind), SkipReason::ParseError);
    assert_eq!(
        skipped(Format::Inventory, "identities: [1"),
        SkipReason::ParseError
    );
}
