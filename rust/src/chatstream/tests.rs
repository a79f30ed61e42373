use super::{ChatStream, Outcome};

fn relay(reads: &[&[u8]], include_usage: bool, stream_ids: bool) -> (String, Outcome) {
    let mut stream = ChatStream::new("openai", include_usage, stream_ids, 1 << 20);
    let mut out = Vec::new();
    let mut outcome = Outcome::Open;
    for read in reads {
        outcome = match stream.feed(read, &mut out).unwrap() {
            Outcome::Open => Outcome::Open,
            Outcome::Done => Outcome::Done,
            Outcome::Failed(data) => Outcome::Failed(data.clone()),
        };
    }
    if outcome != Outcome::Failed(Vec::new()) {
        stream.tail(&mut out);
    }
    (String::from_utf8(out).unwrap(), outcome)
}

#[test]
fn usage_rides_on_the_finishing_chunk() {
    let (out, outcome) = relay(
        &[
            b"data: {\"id\":\"c1\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
            b"data: {\"id\":\"c1\",\"choices\":[{\"delta\":{\"content\":\"h\xc3\xa9\"},\"finish_reason\":\"stop\"}]}\n\ndata: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}\n\n",
            b"data: [DONE]\n\ndata: {\"ignored\":1}\n\n",
        ],
        false,
        false,
    );
    assert_eq!(outcome, Outcome::Done);
    assert_eq!(
        out,
        concat!(
            "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"finish_reason\":null,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":null}}],\"usage\":null,\"provider\":\"openai\"}\n\n",
            "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":null,\"model\":null,\"choices\":[{\"index\":0,\"finish_reason\":\"stop\",\"delta\":{\"role\":null,\"content\":\"hé\",\"tool_calls\":null}}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2},\"provider\":\"openai\"}\n\n",
        )
    );
}

#[test]
fn include_usage_sends_a_last_usage_chunk_with_the_stream_id() {
    let (out, _) = relay(
        &[b"data: {\"choices\":[{\"delta\":{\"content\":\"x\"},\"finish_reason\":\"stop\"}]}\n\ndata: {\"choices\":[],\"usage\":{\"total_tokens\":5}}\n\n"],
        true,
        true,
    );
    let lines: Vec<&str> = out.split("\n\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 2);
    // a stream id made for chunks that came without one, the same on every chunk
    let at = lines[0].find("\"id\":\"chatcmpl-").unwrap() + 6;
    let id = &lines[0][at..at + 41];
    assert!(
        id[9..].chars().all(|c| c.is_ascii_hexdigit()) && id.ends_with(|c: char| c != '"'),
        "{id}"
    );
    assert!(lines[0].contains("\"usage\":null"));
    assert!(
        lines[1].contains(id) && lines[1].contains("\"choices\":[],\"usage\":{\"total_tokens\":5}")
    );
}

#[test]
fn tool_calls_lose_their_null_fields() {
    let (out, _) = relay(
        &[b"data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":null,\"function\":{\"arguments\":\"{}\",\"name\":null}}]}}]}\n\n"],
        false,
        false,
    );
    assert!(
        out.contains("\"tool_calls\":[{\"index\":1,\"function\":{\"arguments\":\"{}\"}}]"),
        "{out}"
    );
}

#[test]
fn what_python_would_raise_on_is_handed_back() {
    for event in [
        &b"data: {\"error\":{\"message\":\"boom\"}}\n\n"[..],
        b"data: {\"choices\":\"nope\"}\n\n",
        b"data: {\"choices\":[1]}\n\n",
        b"data: {\"choices\":[{\"delta\":[1]}]}\n\n",
        b"data: {\"choices\":[{\"delta\":{\"tool_calls\":{\"a\":1}}}]}\n\n",
    ] {
        let (_, outcome) = relay(&[b"data: not json\n\ndata: [1,2]\n\n", event], false, false);
        let data = &event[6..event.len() - 2];
        assert_eq!(outcome, Outcome::Failed(data.to_vec()));
    }
}

#[test]
fn an_oversized_event_is_an_error() {
    let mut stream = ChatStream::new("openai", false, false, 16);
    let mut out = Vec::new();
    assert!(stream
        .feed(
            b"data: {\"choices\":[], \"x\": \"long enough\"}\n\n",
            &mut out
        )
        .is_err());
}

#[test]
fn a_read_with_an_oversized_line_changes_nothing() {
    let mut stream = ChatStream::new("openai", false, false, 100);
    let mut out = Vec::new();
    let first =
        b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"},\"finish_reason\":\"stop\"}]}\n\n";
    assert_eq!(*stream.feed(first, &mut out).unwrap(), Outcome::Open);
    let mut second =
        b"data: {\"choices\":[{\"delta\":{\"content\":\"b\"}}],\"usage\":{\"n\":1}}\n\ndata: "
            .to_vec();
    second.extend_from_slice(&[b'x'; 200]);
    assert!(stream.feed(&second, &mut out).is_err());
    assert!(out.is_empty() && stream.usage().is_none() && stream.chars() == 1);
    stream.flush_held(&mut out); // the chunk held before the failing read still goes out
    assert!(String::from_utf8(out)
        .unwrap()
        .contains("\"content\":\"a\""));
}
