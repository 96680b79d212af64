//! apk (Alpine) version ordering: `digit{.digit}...{letter}{_suffix{#}}...{-r#}`, with
//! pre-release suffixes (`_alpha` `_beta` `_pre` `_rc`) before the plain version and
//! post-release ones (`_cvs` `_svn` `_git` `_hg` `_p`) after it, as apk-tools compares them.

use std::cmp::Ordering;

use super::InvalidVersion;

// Token kinds, in the order the comparison relies on.
const INVALID: i8 = -1;
const DIGIT_OR_ZERO: i8 = 0;
const DIGIT: i8 = 1;
const LETTER: i8 = 2;
const SUFFIX: i8 = 3;
const SUFFIX_NO: i8 = 4;
const REVISION_NO: i8 = 5;
const END: i8 = 6;

const PRE: [&str; 4] = ["alpha", "beta", "pre", "rc"];
const POST: [&str; 5] = ["cvs", "svn", "git", "hg", "p"];

#[derive(Clone)]
struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
    kind: i8,
}

impl Cursor<'_> {
    fn new(s: &str) -> Cursor<'_> {
        Cursor {
            s: s.as_bytes(),
            pos: 0,
            kind: DIGIT,
        }
    }

    fn rest(&self) -> &[u8] {
        &self.s[self.pos..]
    }

    /// Reads the token of the current kind, returns its value, and moves to the next kind.
    fn take(&mut self) -> i64 {
        let rest = self.rest();
        if rest.is_empty() {
            self.kind = END;
            return 0;
        }
        let (value, len, next) = match self.kind {
            DIGIT_OR_ZERO if rest[0] == b'0' => {
                // Leading zeros after a dot: fewer zeros sort later ("1.01" after "1.001").
                let zeros = rest.iter().take_while(|&&b| b == b'0').count();
                (-(zeros as i64), zeros, Some(DIGIT))
            }
            DIGIT_OR_ZERO | DIGIT | SUFFIX_NO | REVISION_NO => {
                let n = rest.iter().take_while(|b| b.is_ascii_digit()).count();
                let value = rest[..n].iter().fold(0i64, |v, b| {
                    v.saturating_mul(10).saturating_add(i64::from(b - b'0'))
                });
                (value, n, None)
            }
            LETTER => (i64::from(rest[0]), 1, None),
            SUFFIX => {
                let pre = PRE.iter().position(|p| rest.starts_with(p.as_bytes()));
                let post = POST.iter().position(|p| rest.starts_with(p.as_bytes()));
                match (pre, post) {
                    (Some(i), _) => (i as i64 - PRE.len() as i64, PRE[i].len(), None),
                    (None, Some(i)) => (i as i64, POST[i].len(), None),
                    (None, None) => {
                        self.kind = INVALID;
                        return -1;
                    }
                }
            }
            _ => {
                self.kind = INVALID;
                return -1;
            }
        };
        self.pos += len;
        if self.rest().is_empty() {
            self.kind = END;
        } else if let Some(next) = next {
            self.kind = next;
        } else {
            self.advance_kind();
        }
        value
    }

    /// Decides the kind of the next token from what follows, consuming a separator.
    fn advance_kind(&mut self) {
        let c = self.rest()[0];
        let current = self.kind;
        let mut next = if (current == DIGIT || current == DIGIT_OR_ZERO) && c.is_ascii_lowercase() {
            LETTER
        } else if current == LETTER && c.is_ascii_digit() {
            DIGIT
        } else if current == SUFFIX && c.is_ascii_digit() {
            SUFFIX_NO
        } else {
            let kind = match c {
                b'.' => DIGIT_OR_ZERO,
                b'_' => SUFFIX,
                b'-' if self.rest().get(1) == Some(&b'r') => {
                    self.pos += 1;
                    REVISION_NO
                }
                _ => INVALID,
            };
            self.pos += 1;
            kind
        };
        let allowed_back = (next == DIGIT_OR_ZERO && current == DIGIT)
            || (next == SUFFIX && current == SUFFIX_NO)
            || (next == DIGIT && current == LETTER);
        if next < current && !allowed_back {
            next = INVALID;
        }
        self.kind = next;
    }
}

pub(crate) fn validate(v: &str) -> Result<(), InvalidVersion> {
    let mut c = Cursor::new(v.trim());
    if !c.s.first().is_some_and(u8::is_ascii_digit) {
        return Err(InvalidVersion(format!(
            "{v:?} is not an apk version: it must start with a digit"
        )));
    }
    while c.kind != END && c.kind != INVALID {
        c.take();
    }
    if c.kind == END {
        Ok(())
    } else {
        Err(InvalidVersion(format!(
            "{v:?} is not an apk version (digits{{.digits}}[letter][_suffix[N]]...[-rN])"
        )))
    }
}

pub(crate) fn compare(a: &str, b: &str) -> Result<Ordering, InvalidVersion> {
    validate(a)?;
    validate(b)?;
    let (mut a, mut b) = (Cursor::new(a.trim()), Cursor::new(b.trim()));
    let (mut av, mut bv) = (0, 0);
    while a.kind == b.kind && a.kind != END && a.kind != INVALID && av == bv {
        av = a.take();
        bv = b.take();
    }
    if av != bv {
        return Ok(av.cmp(&bv));
    }
    if a.kind == b.kind {
        return Ok(Ordering::Equal);
    }
    // Equal so far: the longer version is newer, unless what it has more of is a pre-release.
    if a.kind == SUFFIX && a.clone().take() < 0 {
        return Ok(Ordering::Less);
    }
    if b.kind == SUFFIX && b.clone().take() < 0 {
        return Ok(Ordering::Greater);
    }
    Ok(b.kind.cmp(&a.kind))
}
