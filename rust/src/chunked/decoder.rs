//! The decoder: a state machine over whatever bytes arrive, bounded in what it
//! holds (one chunk-size line, one trailer line) and in what trailers may add.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a chunk-size line (`1a;ext=1\r\n`).
    Size,
    /// Reading `remaining` bytes of chunk data.
    Data { remaining: u64 },
    /// Expecting the CRLF that ends chunk data.
    DataEnd,
    /// Reading trailer lines after the last chunk; an empty one ends the body.
    Trailer,
    /// The body has ended.
    Done,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkedError {
    /// A chunk-size line that is not 1-15 hex digits (extensions allowed), or longer than the limit.
    MalformedSize,
    /// Chunk data not followed by CRLF.
    MissingCrlf,
    /// Trailers beyond the bytes or lines left by the response head.
    TrailersTooLarge,
}

impl fmt::Display for ChunkedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChunkedError::MalformedSize => "malformed chunk size",
            ChunkedError::MissingCrlf => "missing CRLF after chunk data",
            ChunkedError::TrailersTooLarge => "response trailers too large",
        })
    }
}

impl std::error::Error for ChunkedError {}

/// What one `feed` produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    /// The body ended in this read (the last chunk and its trailers).
    pub done: bool,
    /// Bytes of this read after the end of the body (left unread).
    pub rest: usize,
}

#[derive(Debug)]
pub struct ChunkedDecoder {
    state: State,
    line: Vec<u8>,
    max_line: usize,
    trailer_bytes_left: usize,
    trailer_lines_left: usize,
}

impl ChunkedDecoder {
    /// `max_line`: the longest chunk-size line (extensions included, CRLF not);
    /// `trailer_bytes` / `trailer_lines`: what trailers may add (what the head left of its limits).
    pub fn new(max_line: usize, trailer_bytes: usize, trailer_lines: usize) -> Self {
        Self {
            state: State::Size,
            line: Vec::new(),
            max_line,
            trailer_bytes_left: trailer_bytes,
            trailer_lines_left: trailer_lines,
        }
    }

    pub fn done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes `input`, appending chunk data to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<Decoded, ChunkedError> {
        let mut at = 0;
        while at < input.len() {
            match self.state {
                State::Done => break,
                State::Size => {
                    let Some(line_end) = self.take_line(input, &mut at, self.max_line, false)?
                    else {
                        break;
                    };
                    let size = parse_size(&self.line[..line_end])?;
                    self.line.clear();
                    self.state = if size == 0 {
                        State::Trailer
                    } else {
                        State::Data { remaining: size }
                    };
                }
                State::Data { remaining } => {
                    let available = (input.len() - at) as u64;
                    let take = remaining.min(available) as usize;
                    out.extend_from_slice(&input[at..at + take]);
                    at += take;
                    let left = remaining - take as u64;
                    self.state = if left == 0 {
                        State::DataEnd
                    } else {
                        State::Data { remaining: left }
                    };
                }
                State::DataEnd => {
                    // the CRLF may straddle two reads: keep what came of it
                    self.line.push(input[at]);
                    at += 1;
                    if self.line.len() == 2 {
                        if self.line != b"\r\n" {
                            return Err(ChunkedError::MissingCrlf);
                        }
                        self.line.clear();
                        self.state = State::Size;
                    } else if self.line[0] != b'\r' {
                        return Err(ChunkedError::MissingCrlf);
                    }
                }
                State::Trailer => {
                    let Some(line_end) = self.take_line(input, &mut at, usize::MAX, true)? else {
                        break;
                    };
                    let empty = line_end == 0;
                    self.line.clear();
                    if empty {
                        self.state = State::Done;
                    }
                }
            }
        }
        Ok(Decoded {
            done: self.state == State::Done,
            rest: input.len() - at,
        })
    }

    /// Gathers one CRLF-ended line into `self.line` (without the CRLF); its
    /// length once complete, None while it is not. `trailer`: counted against
    /// the trailer budget (bytes with CRLF, and lines), and a bare LF is part of
    /// the line; in a chunk-size line a bare LF is malformed.
    fn take_line(
        &mut self,
        input: &[u8],
        at: &mut usize,
        max_line: usize,
        trailer: bool,
    ) -> Result<Option<usize>, ChunkedError> {
        let rest = &input[*at..];
        let mut end = None;
        let mut from = 0;
        while let Some(offset) = rest[from..].iter().position(|&b| b == b'\n') {
            let newline = from + offset;
            let after_cr = if newline > 0 {
                rest[newline - 1] == b'\r'
            } else {
                self.line.last() == Some(&b'\r')
            };
            if after_cr {
                end = Some(newline + 1);
                break;
            }
            if !trailer {
                return Err(ChunkedError::MalformedSize);
            }
            from = newline + 1;
        }
        let piece = &rest[..end.unwrap_or(rest.len())];
        *at += piece.len();
        self.line.extend_from_slice(piece);
        if trailer {
            if piece.len() > self.trailer_bytes_left {
                return Err(ChunkedError::TrailersTooLarge);
            }
            self.trailer_bytes_left -= piece.len();
        }
        let Some(_) = end else {
            if !trailer && self.line.len() > max_line.saturating_add(1) {
                return Err(ChunkedError::MalformedSize);
            }
            return Ok(None);
        };
        let length = self.line.len() - 2;
        if trailer {
            if self.trailer_lines_left == 0 {
                return Err(ChunkedError::TrailersTooLarge);
            }
            self.trailer_lines_left -= 1;
        } else if length > max_line {
            return Err(ChunkedError::MalformedSize);
        }
        Ok(Some(length))
    }
}

/// `1a` or `1a;name=value` (spaces and tabs around the digits allowed): 1-15 hex digits.
fn parse_size(line: &[u8]) -> Result<u64, ChunkedError> {
    let digits = match line.iter().position(|&b| b == b';') {
        Some(semicolon) => &line[..semicolon],
        None => line,
    };
    let digits = trim(digits);
    if digits.is_empty() || digits.len() > 15 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err(ChunkedError::MalformedSize);
    }
    let mut size = 0u64;
    for &digit in digits {
        size = size * 16 + u64::from((digit as char).to_digit(16).unwrap_or(0));
    }
    Ok(size)
}

fn trim(bytes: &[u8]) -> &[u8] {
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !blank(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !blank(b))
        .map_or(start, |i| i + 1);
    &bytes[start..end.max(start)]
}
