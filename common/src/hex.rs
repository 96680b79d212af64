//! Hex text to bytes, as keys and file handles are written (either case, optional surrounding
//! white space); `None` for anything that is not whole pairs of hex digits.

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
}
