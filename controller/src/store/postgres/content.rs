//! Diffs across controllers: an operator on one controller asks for a file's content on a host
//! whose stream another holds. The asker writes a request naming the holder; the holder's tail
//! takes it, the holder asks its agent and writes the answer; the asker's tail takes the answer
//! and deletes the row. The content in the row is sealed to a key only the asker holds
//! (`fleet/broker.rs`), so neither the database nor its WAL and backups ever hold it readable.

use super::{PostgresStore, Session};
use crate::store::Result;

/// A diff asked of this controller, holding the host's stream, by another on the database.
#[derive(Debug, Clone)]
pub struct ContentAsk {
    pub id: i64,
    pub host_id: String,
    pub path: String,
    pub max_bytes: u64,
    /// The asker's public key, to seal the content to.
    pub public_key: Vec<u8>,
}

/// The holder's answer to a request this controller made: the content sealed to its key, or
/// why there is none.
#[derive(Debug)]
pub struct ContentAnswer {
    pub id: i64,
    pub result: std::result::Result<Vec<u8>, String>,
}

/// Requests older than this are deleted by the controller doing the singleton work: their
/// asker has long given up (it waits seconds), or died.
pub(super) const FORGOTTEN_AFTER_SECS: f64 = 60.0;

impl PostgresStore {
    pub(super) fn insert_request(
        &mut self,
        holder: &str,
        host_id: &str,
        path: &str,
        max_bytes: u64,
        public_key: &[u8],
    ) -> Result<i64> {
        let mut session = self.session()?;
        let Session { client, st } = &mut *session;
        let mut tx = client.transaction()?;
        let id: i64 = tx
            .query_one(
                "INSERT INTO content_requests (asker, holder, host_id, path, max_bytes, public_key)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                &[
                    &self.me,
                    &holder,
                    &host_id,
                    &path,
                    &i64::try_from(max_bytes).unwrap_or(i64::MAX),
                    &public_key,
                ],
            )?
            .get(0);
        tx.execute(&st.notify_content, &[])?;
        tx.commit()?;
        Ok(id)
    }

    pub(super) fn write_answer(&mut self, answer: &ContentAnswer) -> Result<()> {
        let (sealed, error) = match &answer.result {
            Ok(sealed) => (Some(sealed.as_slice()), None),
            Err(why) => (None, Some(why.as_str())),
        };
        let mut session = self.session()?;
        let Session { client, st } = &mut *session;
        let mut tx = client.transaction()?;
        // None updated: the asker gave up and deleted its request; nobody waits for this.
        tx.execute(
            "UPDATE content_requests SET answered = true, sealed = $2, error = $3
             WHERE id = $1 AND holder = $4",
            &[&answer.id, &sealed, &error, &self.me],
        )?;
        tx.execute(&st.notify_content, &[])?;
        tx.commit()?;
        Ok(())
    }

    pub(super) fn delete_request(&mut self, id: i64) -> Result<()> {
        self.session()?.client.execute(
            "DELETE FROM content_requests WHERE id = $1 AND asker = $2",
            &[&id, &self.me],
        )?;
        Ok(())
    }
}

/// The requests made of controller `me` not yet taken, taken now (each is handled once), and
/// the answers to its own requests, deleted as they are read.
pub(super) fn take(
    client: &mut postgres::Client,
    me: &str,
) -> Result<(Vec<ContentAsk>, Vec<ContentAnswer>)> {
    let asks = client
        .query(
            "UPDATE content_requests SET taken = true WHERE holder = $1 AND NOT taken
             RETURNING id, host_id, path, max_bytes, public_key",
            &[&me],
        )?
        .iter()
        .map(|r| ContentAsk {
            id: r.get(0),
            host_id: r.get(1),
            path: r.get(2),
            max_bytes: u64::try_from(r.get::<_, i64>(3)).unwrap_or(0),
            public_key: r.get(4),
        })
        .collect();
    let answers = client
        .query(
            "DELETE FROM content_requests WHERE asker = $1 AND answered
             RETURNING id, sealed, error",
            &[&me],
        )?
        .iter()
        .map(|r| {
            let sealed: Option<Vec<u8>> = r.get(1);
            let error: Option<String> = r.get(2);
            ContentAnswer {
                id: r.get(0),
                result: sealed.ok_or_else(|| error.unwrap_or_else(|| "no answer".to_owned())),
            }
        })
        .collect();
    Ok((asks, answers))
}
