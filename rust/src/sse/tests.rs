use proptest::prelude::*;

use super::*;

fn parse_all(chunks: &[&[u8]]) -> Vec<OwnedEvent> {
    let mut p = SseParser::new();
    let mut out = Vec::new();
    for c in chunks {
        out.extend(p.feed(c).unwrap());
    }
    out
}

fn datas(events: &[OwnedEvent]) -> Vec<&[u8]> {
    events.iter().map(|e| e.data.as_slice()).collect()
}

fn ev(event: &str, data: &[u8]) -> OwnedEvent {
    OwnedEvent {
        event: event.to_string(),
        data: data.to_vec(),
    }
}

const STREAM: &[u8] = b"\xEF\xBB\xBF: keep-alive\r\n\
event: delta\r\n\
data: {\"a\":\"\xC3\xA9\xE2\x82\xAC\"}\r\n\
\r\n\
data:first\rdata: second\r\r\
id: 7\n\
retry: 1500\n\
data\n\n\
data: [DONE]\n\n";

fn stream_events() -> Vec<OwnedEvent> {
    vec![
        ev("delta", "{\"a\":\"é€\"}".as_bytes()),
        ev("message", b"first\nsecond"),
        ev("message", b""),
        ev("message", b"[DONE]"),
    ]
}

#[test]
fn whole_stream() {
    let mut p = SseParser::new();
    assert_eq!(p.feed(STREAM).unwrap(), stream_events());
    assert_eq!(p.last_event_id(), b"7");
    assert_eq!(p.retry_ms(), Some(1500));
    assert_eq!(p.buffered(), 0);
}

#[test]
fn split_at_every_byte_position() {
    for i in 0..=STREAM.len() {
        let (a, b) = STREAM.split_at(i);
        assert_eq!(parse_all(&[a, b]), stream_events(), "split at {i}");
    }
    for i in 0..=STREAM.len() {
        for j in i..=STREAM.len() {
            let got = parse_all(&[&STREAM[..i], &STREAM[i..j], &STREAM[j..]]);
            assert_eq!(got, stream_events(), "split at {i},{j}");
        }
    }
}

#[test]
fn byte_by_byte() {
    let chunks: Vec<&[u8]> = STREAM.chunks(1).collect();
    assert_eq!(parse_all(&chunks), stream_events());
}

#[test]
fn crlf_split_across_chunks_is_one_terminator() {
    // If the LF after a split CRLF were taken as a second line end, the blank
    // line would dispatch "a" early and "b" would become a separate event.
    let got = parse_all(&[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]);
    assert_eq!(datas(&got), vec![&b"a\nb"[..]]);
}

#[test]
fn cr_alone_terminates_lines() {
    let got = parse_all(&[b"data: a\rdata: b\r\rdata: c\r\r"]);
    assert_eq!(datas(&got), vec![&b"a\nb"[..], b"c"]);
    // CR at a chunk end followed by a non-LF byte.
    let got = parse_all(&[b"data: a\r", b"\r"]);
    assert_eq!(datas(&got), vec![&b"a"[..]]);
}

#[test]
fn multi_line_data_and_space_handling() {
    let got = parse_all(&[b"data:x\ndata:  two spaces\ndata: \ndata\n\n"]);
    assert_eq!(datas(&got), vec![&b"x\n two spaces\n\n"[..]]);
}

#[test]
fn comments_and_unknown_fields_are_ignored() {
    let got = parse_all(&[b": ping\n\n:\nfoo: bar\ndata: x\nbaz\n\n"]);
    assert_eq!(datas(&got), vec![&b"x"[..]]);
}

#[test]
fn event_without_data_is_not_dispatched_and_resets_type() {
    let got = parse_all(&[b"event: ping\n\ndata: x\n\n"]);
    assert_eq!(got, vec![ev("message", b"x")]);
    let got = parse_all(&[b"event:\ndata: x\n\n"]);
    assert_eq!(got, vec![ev("message", b"x")]);
}

#[test]
fn bom_only_at_stream_start() {
    for i in 0..=3 {
        let s = b"\xEF\xBB\xBFdata: x\n\n";
        assert_eq!(datas(&parse_all(&[&s[..i], &s[i..]])), vec![&b"x"[..]]);
    }
    // A BOM later in the stream is part of the line (here: an unknown field).
    let got = parse_all(&[b"data: x\n\n\xEF\xBB\xBFdata: y\n\n"]);
    assert_eq!(datas(&got), vec![&b"x"[..]]);
}

#[test]
fn done_sentinel_is_plain_data() {
    let got = parse_all(&[DONE_EVENT]);
    assert_eq!(datas(&got), vec![&b"[DONE]"[..]]);
}

#[test]
fn finish_dispatches_trailing_event_and_resets() {
    let mut p = SseParser::new();
    assert!(p.feed(b"data: a\n\ndata: b\ndata: c").unwrap().len() == 1);
    assert_eq!(p.buffered(), 7);
    assert_eq!(datas(&p.finish().unwrap()), vec![&b"b\nc"[..]]);
    assert_eq!(p.buffered(), 0);
    assert!(p.finish().unwrap().is_empty());
    // Reset: a BOM is accepted again and no stale data leaks.
    assert_eq!(
        datas(&p.feed(b"\xEF\xBB\xBFdata: z\n\n").unwrap()),
        vec![&b"z"[..]]
    );
    // Incomplete event without data lines is not dispatched.
    p.feed(b"event: x\n").unwrap();
    assert!(p.finish().unwrap().is_empty());
}

#[test]
fn line_limit() {
    let mut p = SseParser::with_max_line_bytes(8);
    assert!(p.feed(b"data: 12").is_ok());
    assert_eq!(p.buffered(), 8);
    let err = p.feed(b"3").unwrap_err();
    assert_eq!(err, SseError::LineTooLong { limit: 8 });
    assert!(err.to_string().contains("max_line_bytes"));
    // The parser was reset and is usable again.
    assert_eq!(p.buffered(), 0);
    assert_eq!(datas(&p.feed(b"data: 1\n\n").unwrap()), vec![&b"1"[..]]);
    // A complete over-long line in one chunk fails too.
    assert!(p.feed(b"data: 123456\n").is_err());
}

#[test]
fn event_data_limit() {
    let mut p = SseParser::with_max_line_bytes(10);
    p.feed(b"data: 1234\ndata: 567\n").unwrap();
    let err = p.feed(b"data: 89\n").unwrap_err();
    assert_eq!(err, SseError::EventTooLarge { limit: 10 });
}

#[test]
fn no_copy_when_lines_are_complete() {
    let mut p = SseParser::new();
    p.feed(b"data: x\n\n").unwrap();
    assert_eq!(p.buffered(), 0);
}

#[test]
fn encode_single_and_multi_line() {
    assert_eq!(encode_event(b"{}"), b"data: {}\n\n");
    assert_eq!(encode_event(b""), b"data: \n\n");
    assert_eq!(encode_event(b"a\nb"), b"data: a\ndata: b\n\n");
    assert_eq!(
        encode_event(b"a\r\nb\rc\n"),
        b"data: a\ndata: b\ndata: c\ndata: \n\n"
    );
    assert_eq!(
        encode_events(&[&b"1"[..], b"2\n3"]),
        b"data: 1\n\ndata: 2\ndata: 3\n\n"
    );
    assert_eq!(encode_events::<&[u8]>(&[]), b"");
}

#[test]
fn slice_sink_matches_vec() {
    for data in [&b""[..], b"x", b"a\r\n\r\nb\r", b"\n"] {
        let mut buf = vec![0; encoded_len(data)];
        let mut sink = encoder::SliceSink::new(&mut buf);
        encode_event_into(&mut sink, data);
        assert!(sink.is_full());
        assert_eq!(buf, encode_event(data));
    }
}

/// Builds a wire stream for `events`, with a line-ending style per line,
/// optional comments and an optional BOM; returns it with the expected parse.
fn render(events: &[(Option<String>, Vec<Vec<u8>>)], endings: &[u8], bom: bool) -> Vec<u8> {
    let mut out = Vec::new();
    if bom {
        out.extend_from_slice(b"\xEF\xBB\xBF");
    }
    let mut k = 0;
    let mut eol = |out: &mut Vec<u8>| {
        let mut choice = endings[k % endings.len()] % 3;
        // CR then LF would read as one CRLF terminator: not what we mean.
        if choice == 0 && out.last() == Some(&b'\r') {
            choice = 1;
        }
        out.extend_from_slice(match choice {
            0 => &b"\n"[..],
            1 => b"\r\n",
            _ => b"\r",
        });
        k += 1;
    };
    for (i, (name, lines)) in events.iter().enumerate() {
        if i % 2 == 1 {
            out.extend_from_slice(b": comment");
            eol(&mut out);
        }
        if let Some(name) = name {
            out.extend_from_slice(b"event: ");
            out.extend_from_slice(name.as_bytes());
            eol(&mut out);
        }
        for line in lines {
            out.extend_from_slice(if i % 3 == 0 { &b"data:"[..] } else { b"data: " });
            out.extend_from_slice(line);
            eol(&mut out);
        }
        eol(&mut out);
    }
    out
}

fn data_line() -> impl Strategy<Value = Vec<u8>> {
    // Any bytes but line terminators; a leading space would be eaten by the
    // optional-space rule, so start with a non-space.
    proptest::collection::vec(
        any::<u8>().prop_filter("eol", |b| *b != b'\r' && *b != b'\n'),
        0..20,
    )
    .prop_map(|mut v| {
        if v.first() == Some(&b' ') {
            v[0] = b'x';
        }
        v
    })
}

fn event_strategy() -> impl Strategy<Value = (Option<String>, Vec<Vec<u8>>)> {
    (
        proptest::option::of("[a-z_]{1,8}"),
        proptest::collection::vec(data_line(), 1..4),
    )
}

proptest! {
    #[test]
    fn any_split_yields_same_events(
        events in proptest::collection::vec(event_strategy(), 0..6),
        endings in proptest::collection::vec(any::<u8>(), 1..8),
        bom in any::<bool>(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let stream = render(&events, &endings, bom);
        let expected: Vec<OwnedEvent> = events
            .iter()
            .map(|(name, lines)| OwnedEvent {
                event: name.clone().unwrap_or_else(|| "message".into()),
                data: lines.join(&b'\n'),
            })
            .collect();
        prop_assert_eq!(&parse_all(&[&stream]), &expected);

        let mut positions: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
        positions.sort_unstable();
        let mut chunks = Vec::new();
        let mut prev = 0;
        for p in positions {
            chunks.push(&stream[prev..p]);
            prev = p;
        }
        chunks.push(&stream[prev..]);
        prop_assert_eq!(&parse_all(&chunks), &expected);
    }

    #[test]
    fn encode_then_parse_round_trips(
        items in proptest::collection::vec(
            proptest::collection::vec(any::<u8>().prop_filter("no CR", |b| *b != b'\r'), 0..40),
            0..5,
        ),
        cut in any::<prop::sample::Index>(),
    ) {
        let wire = encode_events(&items);
        let at = cut.index(wire.len() + 1);
        let got = parse_all(&[&wire[..at], &wire[at..]]);
        let got: Vec<Vec<u8>> = got.into_iter().map(|e| e.data).collect();
        prop_assert_eq!(got, items);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_respect_limit(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8),
    ) {
        let mut p = SseParser::with_max_line_bytes(32);
        for c in &chunks {
            let _ = p.feed(c);
            prop_assert!(p.buffered() <= 32);
        }
        let _ = p.finish();
    }
}
