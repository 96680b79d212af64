//! Who is asking the console, and whether they may: the person from a proxy's headers, a
//! client certificate or the local admin; their session; an action's checks (a current
//! session's CSRF token, from the console's own origin, and the role); refusals as pages.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::pages::{self, Viewer};
use super::{Conn, Console, session};
use crate::role::{Action, Person};
use crate::server::identity::Peer;

/// A refusal or an error, answered as a page that says why.
#[derive(Debug)]
pub(super) struct Refused {
    status: StatusCode,
    title: &'static str,
    message: String,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        (
            self.status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            pages::problem(self.title, &self.message),
        )
            .into_response()
    }
}

pub(super) fn problem(status: StatusCode, title: &'static str, message: &str) -> Refused {
    Refused {
        status,
        title,
        message: message.to_owned(),
    }
}

pub(super) fn fleet_problem(e: crate::fleet::FleetError) -> Refused {
    use crate::fleet::FleetError as E;
    let status = match &e {
        E::UnknownHost(_) | E::NotDeclared { .. } | E::NoOpenDrift { .. } | E::NoAck { .. } => {
            StatusCode::NOT_FOUND
        }
        E::ContentWithheld(_) => StatusCode::FORBIDDEN,
        E::ExpiryInPast | E::BadWindow(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    problem(status, "Not done", &e.to_string())
}

/// The person behind a request, or the page that says why there is none: the proxy's word
/// where it comes from a trusted address and names a user, else the client certificate, else
/// (plain loopback, no proxy) the local admin.
pub(super) fn person(
    console: &Console,
    conn: &Conn,
    headers: &HeaderMap,
) -> Result<Person, Refused> {
    let named = console.proxy.as_ref().and_then(|proxy| {
        let user = headers
            .get(proxy.user_header.as_str())
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|u| !u.is_empty())?;
        proxy
            .trusted
            .contains(&conn.remote)
            .then_some((proxy, user))
    });
    if let Some((proxy, user)) = named {
        let groups = headers
            .get(proxy.groups_header.as_str())
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let groups: Vec<&str> = groups.split(',').map(str::trim).collect();
        let role = groups
            .iter()
            .filter_map(|g| proxy.roles.get(*g).copied())
            .max()
            .or(proxy.default_role);
        return match role {
            Some(role) => Ok(Person {
                name: user.to_owned(),
                role,
                scope: proxy.scope_of(&groups),
            }),
            None => Err(problem(
                StatusCode::FORBIDDEN,
                "No role",
                &format!(
                    "{user} is in no group that has a role here (web.proxy.roles in controller.yaml)"
                ),
            )),
        };
    }
    match &conn.cert {
        Some(Peer::Operator(p)) => Ok(p.clone()),
        Some(_) => Err(problem(
            StatusCode::FORBIDDEN,
            "Not an operator",
            "only operator certificates may use the console",
        )),
        None if !console.tls && console.proxy.is_none() => Ok(Person::local()),
        None => Err(problem(
            StatusCode::UNAUTHORIZED,
            "Not signed in",
            &match (&console.proxy, console.tls) {
                (Some(proxy), true) => format!(
                    "present your operator certificate (import it into the browser as PKCS#12, \
                     as `plumb certs issue` says), or come through the authenticating proxy \
                     (it names you in {})",
                    proxy.user_header
                ),
                (Some(proxy), false) => format!(
                    "come through the authenticating proxy (it names you in {})",
                    proxy.user_header
                ),
                (None, _) => "present your operator certificate (import it into the browser \
                              as PKCS#12, as `plumb certs issue` says)"
                    .to_owned(),
            },
        )),
    }
}

/// A page's person and session: the token forms carry, and the cookie to set for a new one.
pub(super) struct Visit {
    pub(super) person: Person,
    csrf: String,
    cookie: Option<String>,
    manifests: String,
}

impl Visit {
    pub(super) fn viewer(&self) -> Viewer<'_> {
        Viewer {
            person: &self.person,
            csrf: &self.csrf,
            manifests: &self.manifests,
        }
    }

    pub(super) fn allow(&self, action: Action) -> Result<(), Refused> {
        self.person
            .allow(action)
            .map_err(|r| problem(StatusCode::FORBIDDEN, "Not allowed", &r.to_string()))
    }

    /// An HTML answer, setting the session's cookie where it is new.
    pub(super) fn page(self, body: String) -> Response {
        let mut r = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response();
        if let Some(c) = self.cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
            r.headers_mut().insert(header::SET_COOKIE, c);
        }
        r
    }
}

pub(super) fn visit(console: &Console, conn: &Conn, headers: &HeaderMap) -> Result<Visit, Refused> {
    let person = person(console, conn, headers)?;
    let token = session::cookie(headers);
    let mut sessions = console.sessions.lock().unwrap_or_else(|p| p.into_inner());
    let (csrf, new) = sessions.enter(token.as_deref(), &person, crate::clock::now_ms());
    Ok(Visit {
        person,
        cookie: new.map(|token| session::set_cookie(&token, console.tls)),
        csrf,
        manifests: console.manifests.display().to_string(),
    })
}

/// An action's checks: a person whose session is current, its token, and a same-origin form.
/// The request's own authority is `Host` (HTTP/1.1) or in its URI (HTTP/2).
pub(super) fn act(
    console: &Console,
    conn: &Conn,
    headers: &HeaderMap,
    uri: &axum::http::Uri,
    csrf: &str,
    action: Action,
) -> Result<Person, Refused> {
    let person = person(console, conn, headers)?;
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return Err(problem(
            StatusCode::FORBIDDEN,
            "Refused",
            "a form from another site was refused",
        ));
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or(uri.authority().map(|a| a.as_str()));
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let scheme = if console.tls { "https" } else { "http" };
        if host.is_none_or(|host| origin != format!("{scheme}://{host}")) {
            return Err(problem(
                StatusCode::FORBIDDEN,
                "Refused",
                "a form from another origin was refused",
            ));
        }
    }
    let token = session::cookie(headers);
    let sessions = console.sessions.lock().unwrap_or_else(|p| p.into_inner());
    if !sessions.check(token.as_deref(), &person, csrf, crate::clock::now_ms()) {
        return Err(problem(
            StatusCode::FORBIDDEN,
            "Session expired",
            "your session expired or this form is not from it: reload the page and try again",
        ));
    }
    drop(sessions);
    person
        .allow(action)
        .map_err(|r| problem(StatusCode::FORBIDDEN, "Not allowed", &r.to_string()))?;
    Ok(person)
}
