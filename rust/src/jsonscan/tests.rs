use proptest::prelude::*;

use super::*;

fn stats(input: &str) -> Stats {
    scan(input.as_bytes(), &Limits::UNLIMITED).expect("unlimited")
}

fn limits(max_depth: usize, max_values: u64, max_messages: u64) -> Limits {
    Limits {
        max_depth,
        max_values,
        max_messages,
    }
}

fn st(depth: usize, values: u64, messages: u64) -> Stats {
    Stats {
        depth,
        values,
        messages,
    }
}

#[test]
fn scalars_and_empty_containers() {
    assert_eq!(stats(""), st(0, 0, 0));
    assert_eq!(stats("  7 "), st(0, 0, 0));
    assert_eq!(stats("\"a\""), st(0, 0, 0));
    assert_eq!(stats("[]"), st(1, 0, 0));
    assert_eq!(stats("{}"), st(1, 0, 0));
    assert_eq!(stats("[[]]"), st(2, 1, 0));
    assert_eq!(
        stats("[1, 2.5e3, -3, true, false, null, \"x\"]"),
        st(1, 7, 0)
    );
}

#[test]
fn members_count_once_with_their_key() {
    assert_eq!(
        stats(r#"{"a": 1, "b": [1, 2], "c": {"d": null}}"#),
        st(2, 6, 0)
    );
    assert_eq!(stats(r#"{"a":{"b":{"c":{}}}}"#), st(4, 3, 0));
}

#[test]
fn top_level_messages_array() {
    let body = r#"{"model": "m", "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "[b, c]"}], "n": 1}"#;
    // 3 top-level members, 2 messages, 4 members inside them
    assert_eq!(stats(body), st(3, 3 + 2 + 4, 2));
    // only the top-level member, not a nested one or an array element
    assert_eq!(stats(r#"{"x": {"messages": [1, 2, 3]}}"#).messages, 0);
    assert_eq!(stats(r#"["messages", [1, 2, 3]]"#).messages, 0);
    // a string value "messages" is not a key
    assert_eq!(stats(r#"{"a": "messages", "b": [1, 2]}"#).messages, 0);
    // nested arrays inside messages do not add messages
    assert_eq!(stats(r#"{"messages": [[1, 2, 3], [4]]}"#).messages, 2);
    assert_eq!(stats(r#"{"messages": []}"#).messages, 0);
    assert_eq!(stats(r#"{"messages": "hi"}"#).messages, 0);
    // repeated keys: the longest array (orjson builds each)
    assert_eq!(
        stats(r#"{"messages": [1, 2, 3], "messages": [1]}"#).messages,
        3
    );
}

#[test]
fn escaped_key_is_still_messages() {
    assert_eq!(stats(r#"{"m\u0065ssages": [1, 2]}"#).messages, 2);
    assert_eq!(stats(r#"{"\u006D\u0065ssages": [1]}"#).messages, 1);
    assert_eq!(stats(r#"{"messages\u0000": [1, 2]}"#).messages, 0);
    assert_eq!(stats(r#"{"message\"": [1, 2]}"#).messages, 0);
    assert_eq!(stats(r#"{"m\u00e9ssages": [1, 2]}"#).messages, 0);
    assert_eq!(stats(r#"{"m\u00": [1]}"#).messages, 0);
}

#[test]
fn strings_hide_structure() {
    let body = r#"{"content": "[[[{{{ \" ], } , : \\", "b": "\\\"[", "c": "\u005b"}"#;
    assert_eq!(stats(body), st(1, 3, 0));
    assert_eq!(stats(r#"["a\\", "b"]"#), st(1, 2, 0));
}

#[test]
fn whitespace_everywhere() {
    let body = " \n{ \"messages\" :\t[ { \"a\" : 1 } ,\r\n { } ] } ";
    assert_eq!(stats(body), st(3, 4, 2));
}

#[test]
fn depth_limit_reports_the_whole_depth() {
    let body = format!("{}{}", "[".repeat(100), "]".repeat(100));
    let err = scan(body.as_bytes(), &limits(64, 1000, 1000)).unwrap_err();
    assert_eq!(err.limit, Limit::Depth);
    assert_eq!(err.observed, 100);
    assert!(scan(body.as_bytes(), &limits(100, 1000, 1000)).is_ok());
    // brackets inside strings after the limit do not count
    let body = format!("{}\"[[[[[[\"{}", "[".repeat(3), "]".repeat(3));
    let err = scan(body.as_bytes(), &limits(2, 1000, 1000)).unwrap_err();
    assert_eq!(
        err,
        Exceeded {
            limit: Limit::Depth,
            observed: 3
        }
    );
}

#[test]
fn value_limit_stops_at_limit_plus_one() {
    let body = format!("[{}1]", "1,".repeat(99)); // 100 values
    assert!(scan(body.as_bytes(), &limits(64, 100, 0)).is_ok());
    let err = scan(body.as_bytes(), &limits(64, 99, 0)).unwrap_err();
    assert_eq!(
        err,
        Exceeded {
            limit: Limit::Values,
            observed: 100
        }
    );
}

#[test]
fn message_limit() {
    let one = r#"{"role":"user","content":"a"}"#;
    let body = format!("{{\"messages\":[{}]}}", vec![one; 1000].join(","));
    assert_eq!(stats(&body), st(3, 1 + 1000 + 2000, 1000));
    assert!(scan(body.as_bytes(), &limits(64, 10_000, 1000)).is_ok());
    let err = scan(body.as_bytes(), &limits(64, 10_000, 999)).unwrap_err();
    assert_eq!(
        err,
        Exceeded {
            limit: Limit::Messages,
            observed: 1000
        }
    );
    // the value limit, crossed first
    let err = scan(body.as_bytes(), &limits(64, 50, 999)).unwrap_err();
    assert_eq!(err.limit, Limit::Values);
}

#[test]
fn invalid_input_does_not_panic() {
    for body in [
        "]]]]}}}",
        "[[[",
        "{\"a",
        "{\"a\\",
        "\"\\",
        "\\",
        ",,,,",
        ":::[,,]",
        "{\"messages\":[1,2",
        "{\"messages\"",
        "{\"m\\u",
        "[1 2 3]",
        "{1: 2}",
        "\u{feff}{}",
    ] {
        let _ = scan(body.as_bytes(), &Limits::UNLIMITED);
        let _ = scan(body.as_bytes(), &limits(0, 0, 0));
    }
    assert_eq!(stats("{\"messages\":[1,2").messages, 2);
    assert_eq!(stats("]]][").depth, 1);
}

#[test]
fn zero_limits() {
    assert!(scan(b"7", &limits(0, 0, 0)).is_ok());
    assert_eq!(
        scan(b"[]", &limits(0, 0, 0)).unwrap_err().limit,
        Limit::Depth
    );
    assert_eq!(
        scan(b"[1]", &limits(1, 0, 0)).unwrap_err().limit,
        Limit::Values
    );
}

#[test]
fn deep_nesting_beyond_the_inline_bits() {
    let mut body = String::new();
    for i in 0..300 {
        body.push_str(if i % 2 == 0 { "{\"k\":" } else { "[" });
    }
    body.push('1');
    for i in (0..300).rev() {
        body.push(if i % 2 == 0 { '}' } else { ']' });
    }
    assert_eq!(stats(&body), st(300, 300, 0));
}

// -- property tests -------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

fn json_string(s: &str, out: &mut String, escape_all: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if escape_all && c.is_ascii_alphabetic() => {
                out.push_str(&format!("\\u{:04X}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

impl Json {
    fn write(&self, out: &mut String, escape_keys: bool) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Num(n) => out.push_str(&format!("{n:?}")),
            Json::Str(s) => json_string(s, out, false),
            Json::Arr(items) => {
                out.push_str("[ ");
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(" ,\n");
                    }
                    item.write(out, escape_keys);
                }
                out.push(']');
            }
            Json::Obj(members) => {
                out.push('{');
                for (i, (key, value)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    json_string(key, out, escape_keys);
                    out.push_str(" : ");
                    value.write(out, escape_keys);
                }
                out.push_str("\t}");
            }
        }
    }

    /// depth and values, computed from the tree
    fn expected(&self) -> (usize, u64) {
        match self {
            Json::Arr(items) => items.iter().fold((1, items.len() as u64), |(d, v), item| {
                let (di, vi) = item.expected();
                (d.max(di + 1), v + vi)
            }),
            Json::Obj(members) => {
                members
                    .iter()
                    .fold((1, members.len() as u64), |(d, v), (_, item)| {
                        let (di, vi) = item.expected();
                        (d.max(di + 1), v + vi)
                    })
            }
            _ => (0, 0),
        }
    }

    fn expected_messages(&self) -> u64 {
        match self {
            Json::Obj(members) => members
                .iter()
                .filter_map(|(k, v)| match v {
                    Json::Arr(items) if k == "messages" => Some(items.len() as u64),
                    _ => None,
                })
                .max()
                .unwrap_or(0),
            _ => 0,
        }
    }
}

fn json() -> impl Strategy<Value = Json> {
    let text = "[a-z\"\\\\\\[\\]{},: \n\u{e9}\u{1F600}]{0,8}";
    let key = prop_oneof![Just("messages".to_string()), "[a-z\\[\"{]{0,6}"];
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        (-1e6f64..1e6).prop_map(Json::Num),
        text.prop_map(Json::Str),
    ];
    leaf.prop_recursive(6, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Json::Arr),
            prop::collection::vec((key.clone(), inner), 0..6).prop_map(Json::Obj),
        ]
    })
}

proptest! {
    #[test]
    fn counts_match_the_tree(value in json(), escape_keys in any::<bool>()) {
        let mut text = String::new();
        value.write(&mut text, escape_keys);
        let (depth, values) = value.expected();
        let got = scan(text.as_bytes(), &Limits::UNLIMITED).unwrap();
        prop_assert_eq!(got, Stats { depth, values, messages: value.expected_messages() }, "{}", text);
    }

    #[test]
    fn a_limit_is_crossed_exactly_when_exceeded(value in json(), d in 0usize..8, v in 0u64..40, m in 0u64..6) {
        let mut text = String::new();
        value.write(&mut text, false);
        let (depth, values) = value.expected();
        let messages = value.expected_messages();
        let within = depth <= d && values <= v && messages <= m;
        let result = scan(text.as_bytes(), &limits(d, v, m));
        prop_assert_eq!(result.is_ok(), within, "{}", text);
        if let Err(e) = result {
            match e.limit {
                Limit::Depth => prop_assert_eq!(e.observed, depth as u64),
                Limit::Values => prop_assert_eq!(e.observed, v + 1),
                Limit::Messages => prop_assert_eq!(e.observed, m + 1),
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let stats = scan(&bytes, &Limits::UNLIMITED).unwrap();
        prop_assert!(stats.depth <= bytes.len());
        prop_assert!(stats.values <= bytes.len() as u64);
        let _ = scan(&bytes, &limits(2, 3, 1));
    }

    #[test]
    fn json_bytes_cut_anywhere_never_panic(value in json(), cut in any::<prop::sample::Index>()) {
        let mut text = String::new();
        value.write(&mut text, true);
        let bytes = text.as_bytes();
        let _ = scan(&bytes[..cut.index(bytes.len() + 1)], &Limits::UNLIMITED);
    }
}
