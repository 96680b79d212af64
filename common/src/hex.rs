//! Bytes as lowercase hex, as digests, keys and file handles are written, and back.

/// Lowercase hex, by table: agents and controllers write one per file they hash or store.
pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// Hex text to bytes (either case, optional surrounding white space); `None` for anything
/// that is not whole pairs of hex digits.
pub fn decode(hex: &str) -> Option<Vec<u8>> {
    let hex = hex.trim();
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn pairs_of_digits_and_nothing_else() {
        assert_eq!(super::decode(" 0e24Ff\n"), Some(vec![0x0e, 0x24, 0xff]));
        assert_eq!(super::decode(""), Some(vec![]));
        assert_eq!(super::decode("abc"), None);
        assert_eq!(super::decode("zz"), None);
        assert_eq!(super::decode("é1"), None);
    }

    #[test]
    fn bytes_are_written_in_lowercase_pairs_and_read_back() {
        assert_eq!(super::encode(&[0x00, 0x09, 0x0a, 0xf0, 0xff]), "00090af0ff");
        assert_eq!(super::encode(&[]), "");
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(super::decode(&super::encode(&all)), Some(all));
    }
}
