//! What the agent observes on its host: declared files, and the facts it introduces itself with.

pub mod expand;
pub mod facts;
pub mod files;
mod ids;
pub mod packages;
mod parallel;

pub use ids::{IdCache, IdNames};

/// Lower-case hexadecimal, as digests are written.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// A read buffer for a file of `len` bytes: the whole file in one read when it is small (a
/// config file), never more than `max`.
pub(crate) fn read_buffer(len: u64, max: usize) -> Vec<u8> {
    // One byte more, so that the read after the last finds the end at once.
    vec![0u8; usize::try_from(len).map_or(max, |n| n.saturating_add(1).min(max))]
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_is_lower_case_two_digits_a_byte() {
        assert_eq!(super::hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(super::hex(&[]), "");
    }

    #[test]
    fn a_read_buffer_fits_a_small_file_and_is_capped() {
        assert_eq!(super::read_buffer(0, 64).len(), 1);
        assert_eq!(super::read_buffer(10, 64).len(), 11);
        assert_eq!(super::read_buffer(1 << 40, 64).len(), 64);
    }
}
