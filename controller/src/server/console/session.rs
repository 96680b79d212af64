//! Console sessions: a random token in an HttpOnly, SameSite=Strict cookie, naming the person
//! it was made for and the CSRF token their forms carry. A session lasts a fixed time from its
//! start; a form from an expired session, another person's, or none is refused, and a page
//! visited then starts a new one.

use std::collections::HashMap;
use std::time::Duration;

use axum::http::{HeaderMap, header};
use ring::rand::{SecureRandom as _, SystemRandom};

use crate::role::Person;

pub(super) const COOKIE: &str = "plumb_session";
/// Sessions kept at most; the oldest go first.
const MAX_SESSIONS: usize = 10_000;

struct Session {
    person: Person,
    csrf: String,
    started_ms: i64,
}

pub(super) struct Sessions {
    by_token: HashMap<String, Session>,
    ttl_ms: i64,
    random: SystemRandom,
}

impl Sessions {
    pub(super) fn new(ttl: Duration) -> Self {
        Sessions {
            by_token: HashMap::new(),
            ttl_ms: ttl.as_millis() as i64,
            random: SystemRandom::new(),
        }
    }

    fn live<'a>(
        &'a self,
        token: Option<&str>,
        person: &Person,
        now_ms: i64,
    ) -> Option<&'a Session> {
        self.by_token
            .get(token?)
            .filter(|s| &s.person == person && now_ms - s.started_ms < self.ttl_ms)
    }

    /// The CSRF token of `person`'s current session, and a new session's token (for the
    /// cookie) where there was none, it expired, or it was someone else's.
    pub(super) fn enter(
        &mut self,
        token: Option<&str>,
        person: &Person,
        now_ms: i64,
    ) -> (String, Option<String>) {
        if let Some(s) = self.live(token, person, now_ms) {
            return (s.csrf.clone(), None);
        }
        let ttl = self.ttl_ms;
        self.by_token.retain(|_, s| now_ms - s.started_ms < ttl);
        if self.by_token.len() >= MAX_SESSIONS
            && let Some(oldest) = self
                .by_token
                .iter()
                .min_by_key(|(_, s)| s.started_ms)
                .map(|(t, _)| t.clone())
        {
            self.by_token.remove(&oldest);
        }
        let (token, csrf) = (self.random_hex(), self.random_hex());
        self.by_token.insert(
            token.clone(),
            Session {
                person: person.clone(),
                csrf: csrf.clone(),
                started_ms: now_ms,
            },
        );
        (csrf, Some(token))
    }

    /// Whether a form's `csrf` is the one of `person`'s live session named by `token`.
    pub(super) fn check(
        &self,
        token: Option<&str>,
        person: &Person,
        csrf: &str,
        now_ms: i64,
    ) -> bool {
        self.live(token, person, now_ms)
            .is_some_and(|s| same(s.csrf.as_bytes(), csrf.as_bytes()))
    }

    fn random_hex(&self) -> String {
        let mut bytes = [0u8; 32];
        // The system's random source failing is not survivable for a session.
        if self.random.fill(&mut bytes).is_err() {
            panic!("the system's random source failed");
        }
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Equal bytes, in time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The session token a request's cookies carry.
pub(super) fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            let (k, v) = c.trim().split_once('=')?;
            (k == COOKIE).then(|| v.to_owned())
        })
}

pub(super) fn set_cookie(token: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::role::Role;

    #[test]
    fn a_session_holds_its_token_for_its_person_until_it_expires() {
        let alice = Person {
            name: "alice".into(),
            role: Role::Operator,
            scope: Default::default(),
        };
        let bob = Person {
            name: "bob".into(),
            role: Role::Operator,
            scope: Default::default(),
        };
        let mut s = Sessions::new(Duration::from_secs(60));
        let (csrf, token) = s.enter(None, &alice, 0);
        let token = token.expect("a new session");
        assert_eq!(s.enter(Some(&token), &alice, 1_000), (csrf.clone(), None));
        assert!(s.check(Some(&token), &alice, &csrf, 59_999));
        assert!(
            !s.check(Some(&token), &alice, "forged", 1_000),
            "a wrong token"
        );
        assert!(
            !s.check(Some(&token), &bob, &csrf, 1_000),
            "another person's session"
        );
        assert!(!s.check(Some(&token), &alice, &csrf, 60_000), "expired");
        let (again, new) = s.enter(Some(&token), &alice, 60_000);
        assert!(
            new.is_some() && again != csrf,
            "an expired session is replaced"
        );
        assert!(
            !s.check(Some(&token), &alice, &csrf, 60_001),
            "the old one is gone"
        );
    }
}
