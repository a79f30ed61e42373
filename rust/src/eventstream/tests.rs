use proptest::prelude::*;

use super::parser::{MIN_MESSAGE_LEN, PRELUDE_LEN};
use super::*;

/// Test-side encoder: one message with string headers (type 7) and a payload.
fn encode(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut head = Vec::new();
    for (name, value) in headers {
        head.push(name.len() as u8);
        head.extend_from_slice(name.as_bytes());
        head.push(7);
        head.extend_from_slice(&(value.len() as u16).to_be_bytes());
        head.extend_from_slice(value.as_bytes());
    }
    encode_raw(&head, payload)
}

fn encode_raw(head: &[u8], payload: &[u8]) -> Vec<u8> {
    let total = (MIN_MESSAGE_LEN + head.len() + payload.len()) as u32;
    let mut out = Vec::new();
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&(head.len() as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(head);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

#[derive(Debug, PartialEq, Eq)]
struct Owned {
    headers: Vec<(String, String)>,
    payload: Vec<u8>,
}

fn owned(frame: Frame<'_>) -> Owned {
    Owned {
        headers: frame
            .headers
            .iter()
            .filter_map(|h| match h.value {
                HeaderValue::String(v) => Some((h.name.to_string(), v.to_string())),
                _ => None,
            })
            .collect(),
        payload: frame.payload.to_vec(),
    }
}

fn feed_all(
    parser: &mut EventStreamParser,
    chunks: &[&[u8]],
) -> Result<Vec<Owned>, EventStreamError> {
    let mut out = Vec::new();
    for chunk in chunks {
        parser.feed_with(chunk, |f| out.push(owned(f)))?;
    }
    Ok(out)
}

fn event(kind: &str, payload: &str) -> Vec<u8> {
    encode(
        &[
            (":event-type", kind),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        payload.as_bytes(),
    )
}

fn stream() -> (Vec<u8>, Vec<Owned>) {
    let parts = [
        ("messageStart", r#"{"role":"assistant","p":"abcd"}"#),
        (
            "contentBlockDelta",
            r#"{"contentBlockIndex":0,"delta":{"text":"Hé€"}}"#,
        ),
        ("messageStop", r#"{"stopReason":"end_turn"}"#),
    ];
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    for (kind, payload) in parts {
        wire.extend(event(kind, payload));
        expected.push(Owned {
            headers: vec![
                (":event-type".into(), kind.into()),
                (":content-type".into(), "application/json".into()),
                (":message-type".into(), "event".into()),
            ],
            payload: payload.as_bytes().to_vec(),
        });
    }
    (wire, expected)
}

#[test]
fn several_messages_in_one_chunk() {
    let (wire, expected) = stream();
    let mut parser = EventStreamParser::new();
    assert_eq!(feed_all(&mut parser, &[&wire]).unwrap(), expected);
    assert_eq!(parser.buffered(), 0);
}

#[test]
fn split_at_every_byte() {
    let (wire, expected) = stream();
    for cut in 0..=wire.len() {
        let mut parser = EventStreamParser::new();
        let got = feed_all(&mut parser, &[&wire[..cut], &wire[cut..]]).unwrap();
        assert_eq!(got, expected, "cut at {cut}");
        assert_eq!(parser.buffered(), 0);
    }
    let mut parser = EventStreamParser::new();
    let bytes: Vec<&[u8]> = wire.chunks(1).collect();
    assert_eq!(feed_all(&mut parser, &bytes).unwrap(), expected);
}

#[test]
fn incomplete_message_stays_buffered() {
    let (wire, _) = stream();
    let mut parser = EventStreamParser::new();
    let got = feed_all(&mut parser, &[&wire[..wire.len() - 1]]).unwrap();
    assert_eq!(got.len(), 2);
    assert!(parser.buffered() > 0);
}

#[test]
fn empty_message_has_no_headers_or_payload() {
    let wire = encode(&[], b"");
    assert_eq!(wire.len(), MIN_MESSAGE_LEN);
    let got = feed_all(&mut EventStreamParser::new(), &[&wire]).unwrap();
    assert_eq!(
        got,
        vec![Owned {
            headers: vec![],
            payload: vec![]
        }]
    );
}

#[test]
fn bad_prelude_crc_is_rejected() {
    let mut wire = event("messageStart", "{}");
    wire[9] ^= 0xFF;
    let mut parser = EventStreamParser::new();
    let err = feed_all(&mut parser, &[&wire]).unwrap_err();
    assert!(matches!(err, EventStreamError::PreludeCrc { .. }), "{err}");
    assert_eq!(parser.buffered(), 0);
}

#[test]
fn corrupted_length_fails_the_prelude_crc() {
    let mut wire = event("messageStart", "{}");
    wire[3] ^= 0x01;
    let err = feed_all(&mut EventStreamParser::new(), &[&wire]).unwrap_err();
    assert!(matches!(err, EventStreamError::PreludeCrc { .. }));
}

#[test]
fn bad_message_crc_is_rejected_even_when_split() {
    let mut wire = event("contentBlockDelta", r#"{"delta":{"text":"x"}}"#);
    let last = wire.len() - 6;
    wire[last] ^= 0x20; // a payload byte
    for cut in [0, 5, PRELUDE_LEN, wire.len() - 1] {
        let err =
            feed_all(&mut EventStreamParser::new(), &[&wire[..cut], &wire[cut..]]).unwrap_err();
        assert!(
            matches!(err, EventStreamError::MessageCrc { .. }),
            "cut {cut}: {err}"
        );
    }
}

#[test]
fn inconsistent_lengths_are_rejected() {
    let mut prelude = Vec::new();
    prelude.extend_from_slice(&20u32.to_be_bytes());
    prelude.extend_from_slice(&10u32.to_be_bytes()); // headers longer than total allows
    let crc = crc32fast::hash(&prelude);
    prelude.extend_from_slice(&crc.to_be_bytes());
    let err = feed_all(&mut EventStreamParser::new(), &[&prelude]).unwrap_err();
    assert_eq!(
        err,
        EventStreamError::BadLength {
            total: 20,
            headers: 10
        }
    );
}

#[test]
fn oversized_message_is_rejected_from_its_prelude() {
    let wire = event("messageStart", &"x".repeat(100));
    let mut parser = EventStreamParser::with_max_message_bytes(64);
    let err = feed_all(&mut parser, &[&wire[..PRELUDE_LEN]]).unwrap_err();
    assert!(matches!(err, EventStreamError::TooLarge { limit: 64, .. }));
}

#[test]
fn parser_recovers_after_an_error() {
    let mut parser = EventStreamParser::new();
    let mut bad = event("a", "{}");
    bad[0] ^= 1;
    assert!(feed_all(&mut parser, &[&bad]).is_err());
    let (wire, expected) = stream();
    assert_eq!(feed_all(&mut parser, &[&wire]).unwrap(), expected);
}

#[test]
fn every_header_type_decodes() {
    let mut head = Vec::new();
    let mut add = |name: &str, kind: u8, value: &[u8]| {
        head.push(name.len() as u8);
        head.extend_from_slice(name.as_bytes());
        head.push(kind);
        head.extend_from_slice(value);
    };
    add("t", 0, &[]);
    add("f", 1, &[]);
    add("byte", 2, &[0xFF]);
    add("short", 3, &(-2i16).to_be_bytes());
    add("int", 4, &70000i32.to_be_bytes());
    add("long", 5, &(-5i64).to_be_bytes());
    add("bytes", 6, &[0, 2, 0xDE, 0xAD]);
    add("str", 7, &[0, 2, b'o', b'k']);
    add("ts", 8, &1_700_000_000_000i64.to_be_bytes());
    add("uuid", 9, &[7u8; 16]);
    let wire = encode_raw(&head, b"payload");
    let frame = decode_frame(&wire).unwrap();
    let values: Vec<HeaderValue<'_>> = frame.headers.iter().map(|h| h.value).collect();
    assert_eq!(
        values,
        vec![
            HeaderValue::Bool(true),
            HeaderValue::Bool(false),
            HeaderValue::Byte(-1),
            HeaderValue::Short(-2),
            HeaderValue::Int(70000),
            HeaderValue::Long(-5),
            HeaderValue::Bytes(&[0xDE, 0xAD]),
            HeaderValue::String("ok"),
            HeaderValue::Timestamp(1_700_000_000_000),
            HeaderValue::Uuid([7u8; 16]),
        ]
    );
    assert_eq!(frame.header_str("str"), Some("ok"));
    assert_eq!(frame.header_str("int"), None);
    assert_eq!(frame.payload, b"payload");
}

#[test]
fn malformed_headers_are_rejected() {
    for head in [
        vec![0u8, 7],                 // empty name
        vec![1, b'a', 42],            // unknown type
        vec![1, b'a', 7, 0, 9, b'x'], // string longer than the headers
        vec![1, b'a', 7, 0, 1, 0xFF], // invalid UTF-8
        vec![1, b'a', 4, 0, 0],       // truncated int
    ] {
        let wire = encode_raw(&head, b"");
        let err = feed_all(&mut EventStreamParser::new(), &[&wire]).unwrap_err();
        assert!(
            matches!(err, EventStreamError::BadHeader(_)),
            "{head:?}: {err}"
        );
    }
}

proptest! {
    #[test]
    fn any_chunking_yields_the_same_messages(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 1..6),
        cuts in prop::collection::vec(0usize..400, 0..8),
    ) {
        let mut wire = Vec::new();
        let mut expected = Vec::new();
        for (i, payload) in payloads.iter().enumerate() {
            let name = format!("e{i}");
            wire.extend(encode(&[(":event-type", &name)], payload));
            expected.push(Owned { headers: vec![(":event-type".into(), name)], payload: payload.clone() });
        }
        let mut points: Vec<usize> = cuts.into_iter().map(|c| c.min(wire.len())).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut start = 0;
        for point in points {
            chunks.push(&wire[start..point]);
            start = point;
        }
        chunks.push(&wire[start..]);
        let mut parser = EventStreamParser::new();
        prop_assert_eq!(feed_all(&mut parser, &chunks).unwrap(), expected);
        prop_assert_eq!(parser.buffered(), 0);
    }
}
