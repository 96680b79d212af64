//! Diffs of hosts whose streams another controller holds (a shared store). The asker writes a
//! request to the store with a fresh public key; the holder's tail hears it, the holder checks
//! the manifest's policy as for its own operators and asks its agent; the answer goes back
//! through the store sealed to the asker's key (X25519, HKDF-SHA256, AES-256-GCM, from ring),
//! so the database, its WAL and its backups only ever hold ciphertext. The seal keeps the
//! content from whoever can read the database; it does not prove which controller wrote it
//! (whoever can write the database is trusted with every other row too).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ring::rand::SystemRandom;
use ring::{aead, agreement, hkdf};
use tokio::sync::oneshot;

use super::operators::{Source, Waiter};
use super::{DIFF_MAX_BYTES, DiffContent, Fleet, FleetError};
use crate::store::{ContentAnswer, ContentAsk};

/// How long a diff waits for the holder's answer: under the query's own limit, so that the
/// operator hears which controller did not answer rather than a bare timeout.
pub(super) const BROKER_WAIT: Duration = Duration::from_secs(8);

/// A diff this controller asked of another.
pub(super) struct Brokered {
    host: String,
    path: String,
    controller: String,
    desired: Arc<Vec<u8>>,
    since: Instant,
    private: agreement::EphemeralPrivateKey,
    public: Vec<u8>,
    reply: oneshot::Sender<Result<DiffContent, FleetError>>,
}

impl Fleet {
    /// Asks `controller`, which holds `host_id`'s stream, for the content.
    pub(super) fn diff_elsewhere(
        &mut self,
        host_id: &str,
        path: &str,
        controller: String,
        desired: Arc<Vec<u8>>,
        reply: oneshot::Sender<Result<DiffContent, FleetError>>,
    ) {
        let rng = SystemRandom::new();
        let keys = agreement::EphemeralPrivateKey::generate(&agreement::X25519, &rng)
            .and_then(|private| Ok((private.compute_public_key()?.as_ref().to_vec(), private)));
        let Ok((public, private)) = keys else {
            let _ = reply.send(Err(FleetError::Holder {
                host: host_id.to_owned(),
                controller,
                message: "this controller could not make a key to receive the content".into(),
            }));
            return;
        };
        match self
            .store
            .ask_content(&controller, host_id, path, DIFF_MAX_BYTES, &public)
        {
            Ok(id) => {
                self.brokered.insert(
                    id,
                    Brokered {
                        host: host_id.to_owned(),
                        path: path.to_owned(),
                        controller,
                        desired,
                        since: Instant::now(),
                        private,
                        public,
                        reply,
                    },
                );
            }
            Err(e) => {
                let _ = reply.send(Err(FleetError::StoreWaiting(format!(
                    "the request for the controller holding {host_id}'s stream could not be written ({e})"
                ))));
            }
        }
    }

    /// Other controllers' requests for hosts whose streams this one holds: each checked as
    /// this controller's own operators' are, and asked of the agent.
    pub(super) fn asked(&mut self, asks: Vec<ContentAsk>) {
        for ask in asks {
            let (host_id, path) = (ask.host_id.clone(), ask.path.clone());
            tracing::info!(host = %host_id, path = %path, "another controller asks for a diff");
            match self.content_source(&host_id, &path) {
                Ok((_, Source::Agent(conn))) => {
                    self.request_content(&host_id, &path, conn, Waiter::Broker(ask))
                }
                Ok((_, Source::Elsewhere(controller))) => {
                    let moved = FleetError::Agent(format!(
                        "{host_id}'s stream moved to controller {controller}; ask again"
                    ));
                    self.answer_broker(ask, Err(moved));
                }
                Err(e) => self.answer_broker(ask, Err(e)),
            }
        }
    }

    /// The agent's answer (or why there is none) to another controller's request, sealed to
    /// its key and written back.
    pub(super) fn answer_broker(&mut self, ask: ContentAsk, result: Result<Vec<u8>, FleetError>) {
        let result = result
            .map_err(|e| e.to_string())
            .and_then(|actual| seal(&ask, &actual));
        let answer = ContentAnswer { id: ask.id, result };
        if let Err(e) = self.store.answer_content(&answer) {
            tracing::error!(host = %ask.host_id, path = %ask.path, error = %e, "cannot write the answer to another controller's diff");
        }
    }

    /// Answers to this controller's requests, opened and handed to the operators waiting.
    pub(super) fn answered(&mut self, answers: Vec<ContentAnswer>) {
        for answer in answers {
            let Some(b) = self.brokered.remove(&answer.id) else {
                continue;
            };
            let result = answer
                .result
                .and_then(|sealed| open(b.private, &b.public, answer.id, &b.host, &b.path, &sealed))
                .map(|actual| DiffContent {
                    desired: b.desired,
                    actual,
                })
                .map_err(|message| FleetError::Holder {
                    host: b.host,
                    controller: b.controller,
                    message,
                });
            let _ = b.reply.send(result);
        }
    }

    /// Requests whose holder did not answer in time: the operator is told, the request
    /// withdrawn.
    pub(super) fn expire_brokered(&mut self) {
        let late: Vec<i64> = self
            .brokered
            .iter()
            .filter(|(_, b)| b.since.elapsed() >= BROKER_WAIT)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            let Some(b) = self.brokered.remove(&id) else {
                continue;
            };
            let _ = b.reply.send(Err(FleetError::Holder {
                message: format!(
                    "it did not answer within {} s (is it running and reaching the database?)",
                    BROKER_WAIT.as_secs()
                ),
                host: b.host,
                controller: b.controller,
            }));
            if let Err(e) = self.store.forget_content(id) {
                tracing::warn!(error = %e, "cannot withdraw a diff request nobody answered");
            }
        }
    }
}

/// The key both ends derive for request `id`: from the X25519 secret, bound to both public
/// keys; each key seals one message only, so its nonce may be fixed.
fn content_key(secret: &[u8], asker: &[u8], holder: &[u8]) -> Result<aead::LessSafeKey, String> {
    let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, &[asker, holder].concat());
    let prk = salt.extract(secret);
    let okm = prk
        .expand(&[b"plumb brokered content v1"], &aead::AES_256_GCM)
        .map_err(|_| "cannot derive the content key".to_owned())?;
    Ok(aead::LessSafeKey::new(aead::UnboundKey::from(okm)))
}

/// What the sealed content is bound to: a request's answer cannot pass for another's.
fn bound_to(id: i64, host: &str, path: &str) -> Vec<u8> {
    format!("{id}\0{host}\0{path}").into_bytes()
}

/// `content` sealed to the asker's key: the holder's public key, then ciphertext and tag.
fn seal(ask: &ContentAsk, content: &[u8]) -> Result<Vec<u8>, String> {
    let rng = SystemRandom::new();
    let failed = |_| "cannot seal the content to the asking controller's key".to_owned();
    let private =
        agreement::EphemeralPrivateKey::generate(&agreement::X25519, &rng).map_err(failed)?;
    let public = private.compute_public_key().map_err(failed)?;
    let peer = agreement::UnparsedPublicKey::new(&agreement::X25519, &ask.public_key);
    let key = agreement::agree_ephemeral(private, &peer, |secret| {
        content_key(secret, &ask.public_key, public.as_ref())
    })
    .map_err(|_| "the asking controller's key is not an X25519 key".to_owned())??;
    let mut sealed = content.to_vec();
    key.seal_in_place_append_tag(
        aead::Nonce::assume_unique_for_key([0; aead::NONCE_LEN]),
        aead::Aad::from(bound_to(ask.id, &ask.host_id, &ask.path)),
        &mut sealed,
    )
    .map_err(failed)?;
    Ok([public.as_ref(), &sealed].concat())
}

/// The content in `sealed`, opened with the asker's private key.
fn open(
    private: agreement::EphemeralPrivateKey,
    public: &[u8],
    id: i64,
    host: &str,
    path: &str,
    sealed: &[u8],
) -> Result<Vec<u8>, String> {
    let tampered = || "its answer does not open with this controller's key (altered?)".to_owned();
    let Some((holder, ciphertext)) = sealed.split_at_checked(32) else {
        return Err(tampered());
    };
    let peer = agreement::UnparsedPublicKey::new(&agreement::X25519, holder);
    let key =
        agreement::agree_ephemeral(private, &peer, |secret| content_key(secret, public, holder))
            .map_err(|_| tampered())??;
    let mut content = ciphertext.to_vec();
    let len = key
        .open_in_place(
            aead::Nonce::assume_unique_for_key([0; aead::NONCE_LEN]),
            aead::Aad::from(bound_to(id, host, path)),
            &mut content,
        )
        .map_err(|_| tampered())?
        .len();
    content.truncate(len);
    Ok(content)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asker() -> (agreement::EphemeralPrivateKey, Vec<u8>) {
        let rng = SystemRandom::new();
        let private =
            agreement::EphemeralPrivateKey::generate(&agreement::X25519, &rng).expect("a key");
        let public = private.compute_public_key().expect("its public key");
        (private, public.as_ref().to_vec())
    }

    fn ask(id: i64, public_key: Vec<u8>) -> ContentAsk {
        ContentAsk {
            id,
            host_id: "web-1".into(),
            path: "/etc/app.conf".into(),
            max_bytes: DIFF_MAX_BYTES,
            public_key,
        }
    }

    #[test]
    fn sealed_content_opens_only_for_its_asker_and_its_request() {
        let content = b"listen 8080\nsecret-free but not for the database\n";
        let (private, public) = asker();
        let sealed = seal(&ask(7, public.clone()), content).expect("sealed");
        assert!(
            !sealed.windows(6).any(|w| w == b"listen"),
            "the sealed answer holds the content in the clear"
        );
        assert_eq!(
            open(private, &public, 7, "web-1", "/etc/app.conf", &sealed).expect("opened"),
            content
        );

        // Another request's id, another path, one flipped byte, another asker's key: none open.
        let (private, public) = asker();
        let sealed = seal(&ask(8, public.clone()), content).expect("sealed");
        assert!(open(private, &public, 9, "web-1", "/etc/app.conf", &sealed).is_err());
        let (private, public) = asker();
        let sealed = seal(&ask(8, public.clone()), content).expect("sealed");
        assert!(open(private, &public, 8, "web-1", "/etc/other", &sealed).is_err());
        let (private, public) = asker();
        let mut sealed = seal(&ask(8, public.clone()), content).expect("sealed");
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(open(private, &public, 8, "web-1", "/etc/app.conf", &sealed).is_err());
        let (_, public) = asker();
        let (other, other_public) = asker();
        let sealed = seal(&ask(8, public), content).expect("sealed");
        assert!(open(other, &other_public, 8, "web-1", "/etc/app.conf", &sealed).is_err());
        let (private, public) = asker();
        assert!(open(private, &public, 8, "web-1", "/etc/app.conf", b"short").is_err());
    }
}
