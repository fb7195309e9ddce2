use super::*;
use crate::event::{Body, Event, Tier};

const DAY: Micros = 86_400_000_000;

fn event(id: &str, time: Micros, identity: &str, body: Body) -> Event {
    Event {
        id: id.into(),
        time,
        source: None,
        identity: Some(identity.into()),
        body,
    }
}

fn issue(id: &str, t: Micros, cred: &str, expires: Option<Micros>) -> Event {
    event(
        id,
        t,
        "svc",
        Body::CredentialIssued {
            credential: cred.into(),
            kind: CredentialKind::ApiKey,
            expires,
            scopes: vec![],
            task: None,
        },
    )
}

#[test]
fn implicit_identity_keeps_first_seen_time() {
    let mut inv = Inventory::new();
    inv.apply(&issue("e1", DAY, "k1", None));
    inv.apply(&event(
        "e2",
        2 * DAY,
        "svc",
        Body::Registered {
            kind: Some(IdentityKind::ServiceAccount),
            tier: Tier::Privileged,
            name: None,
            workflow: None,
            vendors: vec!["acme".into()],
        },
    ));
    let state = inv.identity("svc").expect("exists");
    assert_eq!(state.registered_at, DAY);
    assert_eq!(state.tier, Tier::Privileged);
    assert!(state.vendors.contains_key("acme"));
}

#[test]
fn holding_period_spans_touching_credentials_and_breaks_on_gaps() {
    let mut inv = Inventory::new();
    inv.apply(&issue("e1", DAY, "k1", Some(3 * DAY)));
    inv.apply(&issue("e2", 2 * DAY, "k2", Some(5 * DAY)));
    assert_eq!(inv.holding_since("svc", 4 * DAY), Some(DAY));
    assert_eq!(inv.holding_since("svc", 6 * DAY), None);
    inv.apply(&issue("e3", 7 * DAY, "k3", None));
    assert_eq!(inv.holding_since("svc", 8 * DAY), Some(7 * DAY));
}

#[test]
fn expiry_makes_the_identity_dirty_at_the_next_evaluation() {
    let mut inv = Inventory::new();
    inv.apply(&issue("e1", DAY, "k1", Some(3 * DAY)));
    assert!(inv.take_dirty(DAY).contains("svc"));
    assert!(inv.take_dirty(2 * DAY).is_empty());
    assert!(inv.take_dirty(3 * DAY).contains("svc"));
}

#[test]
fn rotation_with_new_credential_retires_the_old_one() {
    let mut inv = Inventory::new();
    inv.apply(&issue("e1", DAY, "k1", None));
    inv.apply(&event(
        "e2",
        2 * DAY,
        "svc",
        Body::CredentialRotated {
            credential: "k1".into(),
            new_credential: Some("k2".into()),
            expires: None,
        },
    ));
    assert_eq!(
        inv.credential("k1").map(|c| c.status_at(2 * DAY)),
        Some(CredentialStatus::Retired)
    );
    let new = inv.credential("k2").expect("created");
    assert_eq!((new.kind, new.issued_at), (CredentialKind::ApiKey, 2 * DAY));
}
