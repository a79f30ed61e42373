use super::*;

fn decoder() -> ChunkedDecoder {
    ChunkedDecoder::new(1024, 1000, 10)
}

fn decode_in_pieces(body: &[u8], piece: usize) -> Result<(Vec<u8>, bool), ChunkedError> {
    let mut decoder = decoder();
    let mut out = Vec::new();
    let mut done = false;
    for part in body.chunks(piece) {
        done = decoder.feed(part, &mut out)?.done;
    }
    Ok((out, done))
}

const BODY: &[u8] = b"5\r\nhello\r\n7;name=value\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n";

#[test]
fn whole_and_byte_by_byte_give_the_same_body() {
    for piece in [1, 2, 3, 7, BODY.len()] {
        let (out, done) = decode_in_pieces(BODY, piece).unwrap();
        assert_eq!(out, b"hello, world", "piece {piece}");
        assert!(done);
    }
}

#[test]
fn bytes_after_the_end_are_left() {
    let mut decoder = decoder();
    let mut out = Vec::new();
    let decoded = decoder
        .feed(b"3\r\nabc\r\n0\r\n\r\nGARBAGE", &mut out)
        .unwrap();
    assert_eq!(
        decoded,
        Decoded {
            done: true,
            rest: 7
        }
    );
    assert_eq!(out, b"abc");
}

#[test]
fn sizes_must_be_hex_digits_only() {
    for bad in [
        &b"-3\r\nabc"[..],
        b"0x3\r\nabc",
        b"1_0\r\n",
        b"zz\r\n",
        b"\r\n",
        b"1234567890abcdef0\r\n",
        b"3\nabc",
    ] {
        assert_eq!(
            decode_in_pieces(bad, 64),
            Err(ChunkedError::MalformedSize),
            "{bad:?}"
        );
    }
    assert_eq!(
        decode_in_pieces(b" a \t\r\n0123456789\r\n0\r\n\r\n", 64)
            .unwrap()
            .0,
        b"0123456789"
    );
}

#[test]
fn a_size_line_is_bounded() {
    let mut line = vec![b'1'; 1];
    line.extend(std::iter::repeat(b' ').take(2000));
    assert_eq!(
        decode_in_pieces(&line, 100),
        Err(ChunkedError::MalformedSize)
    );
}

#[test]
fn data_must_end_with_crlf() {
    assert_eq!(
        decode_in_pieces(b"3\r\nabcX\r\n", 64),
        Err(ChunkedError::MissingCrlf)
    );
    assert_eq!(
        decode_in_pieces(b"3\r\nabc\rX", 64),
        Err(ChunkedError::MissingCrlf)
    );
}

#[test]
fn trailers_are_bounded_in_bytes_and_lines() {
    let mut many = b"0\r\n".to_vec();
    for _ in 0..10 {
        many.extend_from_slice(b"A: 1\r\n");
    }
    many.extend_from_slice(b"\r\n");
    assert_eq!(
        decode_in_pieces(&many, 5),
        Err(ChunkedError::TrailersTooLarge)
    );
    let mut long = b"0\r\nA: ".to_vec();
    long.extend(std::iter::repeat(b'x').take(1200));
    assert_eq!(
        decode_in_pieces(&long, 50),
        Err(ChunkedError::TrailersTooLarge)
    );
}
