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
            kind: crate::event::CredentialKind::ApiKey,
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
fn replaced_wake_ups_do_not_pile_up() {
    let mut inv = Inventory::new();
    // Three identities judged again and again, each time due a little later.
    for round in 0..10_000 {
        for name in ["a", "b", "c"] {
            inv.schedule_wake(100 * DAY + round, name);
        }
    }
    assert!(
        inv.wakeups.len() <= 2 * 3 + 1024 + 1,
        "{} queued",
        inv.wakeups.len()
    );
    inv.schedule_wake(5 * DAY, "b");
    assert_eq!(inv.next_timer(), Some(5 * DAY));
    assert_eq!(inv.take_dirty(5 * DAY).len(), 1);
    assert_eq!(inv.next_timer(), Some(100 * DAY + 9_999));
    let due: Vec<_> = inv.take_dirty(101 * DAY).into_iter().collect();
    assert_eq!(due, ["a", "c"].map(Name::from));
    assert_eq!(inv.next_timer(), None);
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
    assert_eq!(
        (new.kind, new.issued_at),
        (crate::event::CredentialKind::ApiKey, 2 * DAY)
    );
}

/// The inventory's facts (not its queues of timers and dirty identities).
fn facts(inv: &Inventory) -> impl PartialEq + std::fmt::Debug + use<> {
    (
        inv.identities.clone(),
        inv.credentials.clone(),
        inv.departed.clone(),
        inv.vendors_offboarded.clone(),
        inv.tasks_completed.clone(),
        inv.by_principal.clone(),
        inv.by_vendor.clone(),
    )
}

/// A generated stream, decoded, in the order the pipeline applies it.
fn generated_events() -> Vec<Event> {
    let options = crate::generate::GenerateOptions {
        identities: 25,
        days: 20,
        seed: 9,
        start: 1_767_225_600,
    };
    let mut out = Vec::new();
    crate::generate::generate(&options, &mut out).unwrap();
    let decoder = crate::event::Decoder::new(1 << 20);
    let mut events: Vec<Event> = out
        .split(|b| *b == b'\n')
        .filter_map(|line| decoder.decode(line).ok())
        .collect();
    events.sort_by(|a, b| {
        (a.time, a.is_activity(), a.id.as_bytes()).cmp(&(b.time, b.is_activity(), b.id.as_bytes()))
    });
    events
}

#[test]
fn applying_any_event_again_changes_no_fact() {
    use proptest::test_runner::{Config, TestRunner};
    let events = generated_events();
    assert!(events.len() > 2000, "{} events", events.len());
    let mut whole = Inventory::new();
    for e in &events {
        whole.apply(e);
    }
    let expected = facts(&whole);
    let mut runner = TestRunner::new(Config {
        cases: 256,
        ..Config::default()
    });
    runner
        .run(&(0..events.len(), proptest::bool::ANY), |(i, at_once)| {
            let mut inv = if at_once {
                // Twice in a row, where it belongs in the stream.
                let mut inv = Inventory::new();
                for (j, e) in events.iter().enumerate() {
                    inv.apply(e);
                    if j == i {
                        inv.apply(e);
                    }
                }
                inv
            } else {
                // Again after everything newer (a late redelivery).
                whole.clone()
            };
            if !at_once {
                inv.apply(&events[i]);
            }
            proptest::prop_assert_eq!(&facts(&inv), &expected, "event {:?}", &events[i]);
            Ok(())
        })
        .unwrap();
}
