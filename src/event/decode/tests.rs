use super::*;

fn decoder() -> Decoder {
    Decoder::new(1024)
}

fn reason_of(text: &[u8]) -> Reason {
    match decoder().decode(text) {
        Ok(event) => panic!("accepted: {event:?}"),
        Err(reject) => reject.reason,
    }
}

const USED: &str = r#"{"id":"e1","type":"credential.used","time":"2026-01-01T00:00:00Z","identity":"svc-a","credential":"k1","workload":"ci","extra":{"ignored":[1,2]}}"#;

#[test]
fn accepts_a_valid_event_and_ignores_unknown_fields() {
    let event = decoder().decode(USED.as_bytes()).expect("valid");
    assert_eq!(event.id, "e1");
    assert_eq!(event.identity.as_deref(), Some("svc-a"));
    assert!(
        matches!(event.body, Body::CredentialUsed(Use { ref credential, .. }) if credential == "k1")
    );
}

#[test]
fn every_reason_code_in_contract_order() {
    assert_eq!(reason_of(b"{\"id\":\"\xff\"}"), Reason::InvalidUtf8);
    let big = format!(r#"{{"id":"{}"}}"#, "x".repeat(2000));
    assert_eq!(reason_of(big.as_bytes()), Reason::TooLarge);
    assert_eq!(reason_of(b"{not json"), Reason::InvalidJson);
    assert_eq!(reason_of(b"[1,2]"), Reason::InvalidJson);
    assert_eq!(
        reason_of(br#"{"id":"a","type":"tool.called"}"#),
        Reason::MissingField
    );
    assert_eq!(
        reason_of(br#"{"id":"a","type":"nope","time":"x"}"#),
        Reason::UnknownType
    );
    assert_eq!(
        reason_of(
            br#"{"id":"a","type":"tool.called","time":"2026-01-01T00:00:00Z","identity":"i"}"#
        ),
        Reason::MissingField
    );
    assert_eq!(
        reason_of(
            br#"{"id":"a","type":"tool.called","time":"yesterday","identity":"i","tool":"t"}"#
        ),
        Reason::InvalidField
    );
    assert_eq!(
        reason_of(br#"{"id":"a","type":"tool.called","time":"2026-01-01T00:00:00Z","identity":"i","tool":"t","scopes":"s"}"#),
        Reason::InvalidField
    );
    assert_eq!(
        reason_of(br#"{"id":"a","type":"tool.called","time":"2026-01-01T00:00:00Z","identity":"i","tool":"t","sensitivity":"secretish"}"#),
        Reason::InvalidField
    );
    assert_eq!(
        reason_of(br#"{"id":"","type":"task.completed","time":"2026-01-01T00:00:00Z","identity":"i","task":"t"}"#),
        Reason::InvalidField
    );
}

#[test]
fn missing_identity_is_missing_but_global_events_need_none() {
    assert_eq!(
        reason_of(br#"{"id":"a","type":"credential.revoked","time":"2026-01-01T00:00:00Z","credential":"k"}"#),
        Reason::MissingField
    );
    let ok = decoder()
        .decode(br#"{"id":"a","type":"principal.departed","time":"2026-01-01T00:00:00Z","principal":"p@x"}"#)
        .expect("valid");
    assert_eq!(ok.identity, None);
}

#[test]
fn issued_kind_unknown_is_not_accepted_on_the_wire() {
    assert_eq!(
        reason_of(br#"{"id":"a","type":"credential.issued","time":"2026-01-01T00:00:00Z","identity":"i","credential":"k","kind":"unknown"}"#),
        Reason::InvalidField
    );
}

#[test]
fn secret_fields_are_scrubbed_from_dead_letters() {
    let origin = Origin {
        topic: "t".into(),
        partition: None,
        offset: 1,
    };
    let valid_json =
        br#"{"id":"a","type":"nope","time":"x","token":"abc123","nested":{"Password":"p"}}"#;
    let dl = DeadLetter::new(
        decoder().decode(valid_json).expect_err("rejected"),
        origin.clone(),
        valid_json,
    );
    assert!(
        !dl.payload.contains("abc123") && !dl.payload.contains("\"p\""),
        "{}",
        dl.payload
    );
    let broken = br#"{"id":"a", "secret" : "hunter2", "value":42 "#;
    let dl = DeadLetter::new(
        decoder().decode(broken).expect_err("rejected"),
        origin,
        broken,
    );
    assert!(
        !dl.payload.contains("hunter2") && !dl.payload.contains("42"),
        "{}",
        dl.payload
    );
    assert_eq!(dl.reject.reason, Reason::InvalidJson);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn valid_event_text() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(USED.to_owned()),
            Just(r#"{"id":"e2","type":"tool.called","time":"2026-01-01T00:00:01Z","identity":"agent","tool":"crm.read","scopes":["crm:read"],"sensitivity":"restricted","credential":"jit-1"}"#.to_owned()),
            Just(r#"{"id":"e3","type":"identity.approved","time":"2026-01-01T00:00:02Z","identity":"agent","approver":"bob","scopes":["a","b"],"tools":["t"]}"#.to_owned()),
            Just(r#"{"id":"e4","type":"credential.issued","time":"2026-01-01T00:00:03Z","identity":"svc","credential":"k","kind":"jit_token","expires":"2026-01-01T01:00:03Z","task":"T-1"}"#.to_owned()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            // Either outcome is fine; the property is totality and a bounded error.
            if let Err(reject) = decoder().decode(&bytes) {
                prop_assert!(reject.error.len() <= 300);
            }
        }

        #[test]
        fn mutated_valid_events_are_accepted_or_rejected(
            text in valid_event_text(),
            cut in 0usize..400,
            pos in 0usize..400,
            byte in any::<u8>(),
        ) {
            let mut bytes = text.into_bytes();
            let pos = pos % bytes.len();
            bytes[pos] = byte;
            bytes.truncate(cut.max(1).min(bytes.len()));
            match decoder().decode(&bytes) {
                Ok(event) => prop_assert!(!event.id.is_empty()),
                Err(reject) => {
                    let dl = DeadLetter::new(reject, Origin { topic: "t".into(), partition: None, offset: 0 }, &bytes);
                    prop_assert!(dl.payload.len() <= MAX_DEAD_LETTER_PAYLOAD);
                }
            }
        }
    }
}
