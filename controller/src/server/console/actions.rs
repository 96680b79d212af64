//! What people do from the console: acknowledge and revoke, verify the chain. Each a POST
//! that `auth::act` checks first.

use std::path::Path;
use std::sync::Arc;

use axum::extract::{Extension, Form, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::auth::{Refused, act, fleet_problem, problem};
use super::pages::Verified;
use super::{Conn, Console};
use crate::fleet::AckRequest;
use crate::role::Action;
use crate::store::Location;

#[derive(Deserialize)]
pub(super) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// Verifies the chain as `plumb audit verify` would, from a connection of its own (the fleet
/// thread is not held up), against the audit key's public half.
pub(super) async fn verify(
    State(c): State<Arc<Console>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    uri: Uri,
    Form(f): Form<CsrfForm>,
) -> Result<Response, Refused> {
    let person = act(&c, &conn, &headers, &uri, &f.csrf, Action::ReadLog)?;
    *c.verified.lock().unwrap_or_else(|p| p.into_inner()) = Verified::Running;
    let (store, key) = (c.store.clone(), c.audit_key.clone());
    let outcome = tokio::task::spawn_blocking(move || verify_store(&store, &key)).await;
    let done = match outcome {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            *c.verified.lock().unwrap_or_else(|p| p.into_inner()) = Verified::Never;
            return Err(problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "Not verified",
                &format!("the chain could not be read: {e}"),
            ));
        }
        Err(e) => {
            *c.verified.lock().unwrap_or_else(|p| p.into_inner()) = Verified::Never;
            return Err(problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Not verified",
                &e.to_string(),
            ));
        }
    };
    tracing::info!(by = %person, "the chain was verified from the console");
    *c.verified.lock().unwrap_or_else(|p| p.into_inner()) = done;
    Ok(Redirect::to("/history").into_response())
}

fn verify_store(store: &Location, audit_key: &Path) -> anyhow::Result<Verified> {
    use crate::store::{PostgresStore, Signature, SqliteStore, Trusted};
    let public_key = std::fs::read_to_string(crate::store::public_path(audit_key))
        .ok()
        .map(|t| t.trim().to_ascii_lowercase());
    let trusted = Trusted {
        public_key,
        published: Vec::new(),
    };
    let v = match store {
        Location::Sqlite(dir) => SqliteStore::verify_dir(dir, &trusted)?,
        Location::Postgres(url) => PostgresStore::verify_url(url, &trusted)?,
    };
    let signature = match &v.signature {
        Signature::Valid(_) => "valid",
        Signature::Invalid => "INVALID",
        Signature::Unchecked => "unchecked (no public key)",
    };
    Ok(Verified::Done {
        at_ms: crate::clock::now_ms(),
        intact: v.problems.is_empty() && !matches!(v.signature, Signature::Invalid),
        entries: v.entries,
        head_id: v.head_id,
        signature: signature.to_owned(),
        problems: v.problems,
    })
}

#[derive(Deserialize)]
pub(super) struct AckForm {
    #[serde(default)]
    csrf: String,
    host: String,
    resource: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    expires: String,
    #[serde(default)]
    back: String,
}

/// An acknowledgement's or revocation's checks: `act`'s, and a host the person sees.
async fn act_on_host(
    c: &Console,
    conn: &Conn,
    headers: &HeaderMap,
    uri: &Uri,
    f: &AckForm,
) -> Result<crate::role::Person, Refused> {
    let person = act(c, conn, headers, uri, &f.csrf, Action::Acknowledge)?;
    c.in_scope(&person, &f.host).await?;
    Ok(person)
}

/// Where to go after an action: a page of the console, never elsewhere.
fn back_to(back: &str) -> String {
    if back.starts_with('/') && !back.starts_with("//") && !back.contains('\\') {
        back.to_owned()
    } else {
        "/drift".to_owned()
    }
}

pub(super) async fn acknowledge(
    State(c): State<Arc<Console>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    uri: Uri,
    Form(f): Form<AckForm>,
) -> Result<Response, Refused> {
    let person = act_on_host(&c, &conn, &headers, &uri, &f).await?;
    if f.reason.trim().is_empty() {
        return Err(problem(
            StatusCode::BAD_REQUEST,
            "Not acknowledged",
            "an acknowledgement needs a reason",
        ));
    }
    let expires_ms = match f.expires.trim() {
        "" => None,
        d => match humantime::parse_duration(d) {
            Ok(d) => Some(crate::clock::now_ms() + d.as_millis() as i64),
            Err(_) => {
                return Err(problem(
                    StatusCode::BAD_REQUEST,
                    "Not acknowledged",
                    &format!("invalid expiry {d:?}: a duration such as 4h or 7d"),
                ));
            }
        },
    };
    let req = AckRequest {
        host: f.host,
        resource: f.resource,
        reason: f.reason,
        by: person.name,
        expires_ms,
    };
    c.fleet.acknowledge(req).await.map_err(fleet_problem)?;
    Ok(Redirect::to(&back_to(&f.back)).into_response())
}

pub(super) async fn revoke(
    State(c): State<Arc<Console>>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    uri: Uri,
    Form(f): Form<AckForm>,
) -> Result<Response, Refused> {
    let person = act_on_host(&c, &conn, &headers, &uri, &f).await?;
    c.fleet
        .revoke_ack(f.host, f.resource, person.name)
        .await
        .map_err(fleet_problem)?;
    Ok(Redirect::to(&back_to(&f.back)).into_response())
}
