//! File names on the wire. Linux names are bytes, not text: `evil\xff` is a valid name, and so
//! is one with a newline in it. plumb carries them as text in one lossless, canonical form:
//! valid UTF-8 is kept as it is, except that a backslash is written `\\`; every other byte
//! (one that is not UTF-8, and the bytes of control characters) is written `\xHH`. Two
//! different names never read alike, and a name shown in a table or a log cannot move the
//! cursor or forge a line.
//!
//! Declared paths in manifests use the same form, so `/etc/ex.d/evil\xff` declares that file.

/// The canonical text form of a name or path.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        push_hex(&mut out, b);
                    }
                }
                c => out.push(c),
            }
        }
        for &b in chunk.invalid() {
            push_hex(&mut out, b);
        }
    }
    out
}

fn push_hex(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push_str("\\x");
    out.push(HEX[usize::from(b >> 4)] as char);
    out.push(HEX[usize::from(b & 0xf)] as char);
}

/// Why a text is not a name in canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotCanonical {
    pub reason: String,
}

impl std::fmt::Display for NotCanonical {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for NotCanonical {}

/// The bytes a canonical text form stands for. Refuses anything `escape` would not have
/// written (a lone backslash, `\x41` for `A`), so that a path has exactly one spelling.
pub fn unescape(text: &str) -> Result<Vec<u8>, NotCanonical> {
    let mut out = Vec::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        match bytes.get(i + 1) {
            Some(b'\\') => {
                out.push(b'\\');
                i += 2;
            }
            Some(b'x') => {
                let hex = |j: usize| {
                    bytes
                        .get(j)
                        .and_then(|&c| (c as char).to_digit(16))
                        .filter(|_| !bytes[j].is_ascii_uppercase())
                };
                match (hex(i + 2), hex(i + 3)) {
                    (Some(h), Some(l)) => out.push((h << 4 | l) as u8),
                    _ => {
                        return Err(NotCanonical {
                            reason: format!(
                                "`\\x` at byte {i} must be followed by two lower-case hex digits"
                            ),
                        });
                    }
                }
                i += 4;
            }
            _ => {
                return Err(NotCanonical {
                    reason: format!(
                        "a backslash at byte {i} must be written `\\\\` (or start `\\xHH`)"
                    ),
                });
            }
        }
    }
    if escape(&out) != text {
        return Err(NotCanonical {
            reason: format!(
                "it is not written canonically; write it as {:?}",
                escape(&out)
            ),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_read_apart() {
        let cases: &[(&[u8], &str)] = &[
            (b"plain.conf", "plain.conf"),
            ("caf\u{e9}".as_bytes(), "caf\u{e9}"),
            (b"evil\xff", "evil\\xff"),
            (b"a\\b", "a\\\\b"),
            (b"a\\xff", "a\\\\xff"),
            (b"line\nbreak", "line\\x0abreak"),
            (b"\x1b[31mred", "\\x1b[31mred"),
            (b"bad\xc3name", "bad\\xc3name"),
        ];
        for (bytes, text) in cases {
            assert_eq!(escape(bytes), *text, "{bytes:?}");
            assert_eq!(unescape(text).as_deref(), Ok(*bytes), "{text}");
        }
        // What lossy conversion collapsed (both became `bad\u{fffd}name`) stays apart.
        assert_ne!(escape(b"bad\xffname"), escape(b"bad\xfename"));
        assert_ne!(escape(b"bad\xffname"), escape("bad\u{fffd}name".as_bytes()));
    }

    #[test]
    fn only_the_canonical_spelling_is_accepted() {
        for bad in ["a\\b", "a\\", "a\\x4", "a\\xFF", "\\x41", "\\x0"] {
            assert!(unescape(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn every_byte_string_round_trips() {
        for a in 0..=255u8 {
            for b in [0u8, b'\\', b'x', 0x80, 0xc3, 0xa9, 0xff] {
                let bytes = [a, b, a];
                assert_eq!(unescape(&escape(&bytes)).as_deref(), Ok(&bytes[..]));
            }
        }
    }
}
