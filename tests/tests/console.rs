//! The web console, served by the real controller with a real agent: over plain HTTP for what
//! a browser would not show (who is asked, refusals, headers, sessions, CSRF), and in headless
//! Chromium for what a person does (drift arriving live, acknowledging from the page, a viewer
//! who cannot), with a screenshot of each page under `target/console-screenshots/`.

use std::fs;
use std::net::SocketAddr;
use std::path::Path;

use plumb_tests::browser::{Answer, Browser, form, http, screenshots_dir};
use plumb_tests::{Controller, start_agent, wait_for, write_tree};
use serde_json::json;

/// Operators come through an authenticating proxy on loopback: `ops` are operators, `staff`
/// viewers, `audit` auditors.
/// `dbs` are operators of the database hosts only.
const CONFIG: &str = "web:\n  proxy:\n    trusted: [127.0.0.1]\n    roles: {ops: operator, staff: viewer, audit: auditor, dbs: operator}\n    scopes: {dbs: {hosts: [\"db-*\"]}}\n";

const MANIFEST: &str = "name: m\nhosts: [\"*\"]\nfiles:\n  /etc/motd:\n    content: \"hi\\n\"\n    diff: true\n  /etc/app.conf:\n    content: \"port=80\\n\"\n";

struct Site {
    _tmp: tempfile::TempDir,
    c: Controller,
    console: SocketAddr,
    root: std::path::PathBuf,
    _agent: plumb_tests::Proc,
}

fn site() -> Site {
    let tmp = tempfile::tempdir().expect("temp dir");
    let m = tmp.path().join("manifests");
    fs::create_dir_all(&m).expect("mkdir");
    fs::write(m.join("m.yaml"), MANIFEST).expect("write");
    let config = tmp.path().join("controller.yaml");
    fs::write(&config, CONFIG).expect("write");
    let root = tmp.path().join("root");
    write_tree(
        &root,
        &[("etc/motd", "hi\n"), ("etc/app.conf", "port=80\n")],
    );
    let c = Controller::start_with(
        &m,
        &tmp.path().join("data"),
        "127.0.0.1:0",
        &[
            "--config",
            config.to_str().expect("utf-8"),
            "--web-listen",
            "127.0.0.1:0",
        ],
        "http",
    );
    let console = c
        .console_url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("a loopback address");
    let agent = start_agent(&c.url, "web-1", &root, &["role=web"]);
    c.expect_drift("web-1", &[]);
    Site {
        _tmp: tmp,
        c,
        console,
        root,
        _agent: agent,
    }
}

/// A person as the proxy names them.
fn as_(user: &str, groups: &str) -> Vec<(&'static str, String)> {
    vec![
        ("X-Forwarded-User", user.to_owned()),
        ("X-Forwarded-Groups", groups.to_owned()),
    ]
}

fn get(site: &Site, who: &[(&'static str, String)], path: &str, cookie: Option<&str>) -> Answer {
    send(site, "GET", who, path, cookie, &[], "")
}

fn post(
    site: &Site,
    who: &[(&'static str, String)],
    path: &str,
    cookie: Option<&str>,
    extra: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut extra = extra.to_vec();
    extra.push(("Content-Type", "application/x-www-form-urlencoded"));
    send(site, "POST", who, path, cookie, &extra, body)
}

/// One request to the console as `who`, with the session `cookie` and `extra` headers.
fn send(
    site: &Site,
    method: &str,
    who: &[(&'static str, String)],
    path: &str,
    cookie: Option<&str>,
    extra: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut headers: Vec<(&str, &str)> = who.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let cookie = cookie.map(|c| format!("plumb_session={c}"));
    if let Some(c) = &cookie {
        headers.push(("Cookie", c));
    }
    headers.extend_from_slice(extra);
    http(site.console, method, path, &headers, body)
}

/// The session cookie a page set, and the CSRF token it carries.
fn session(a: &Answer) -> (String, String) {
    let cookie = a
        .header("set-cookie")
        .and_then(|c| c.strip_prefix("plumb_session="))
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_owned();
    let csrf = a
        .body
        .split("<meta name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a CSRF token")
        .to_owned();
    (cookie, csrf)
}

fn says(a: &Answer, status: u16, text: &str) {
    assert_eq!(a.status, status, "{}", a.body);
    assert!(a.body.contains(text), "wanted {text:?} in: {}", a.body);
}

#[test]
fn the_console_knows_who_asks_and_allows_each_only_what_their_role_does() {
    let site = site();
    let (olga, vera, ann) = (
        as_("olga", "ops"),
        as_("vera", "staff"),
        as_("ann", "audit"),
    );
    write_tree(&site.root, &[("etc/motd", "<script>alert(1)</script>\n")]);
    wait_for("the drift", || {
        let v = site.c.json(&["drift", "web-1"]);
        (v["hosts"][0]["drift"].as_array()?.len() == 1).then_some(())
    });

    // Nobody named, or someone with no role: refused, saying why.
    says(&get(&site, &[], "/", None), 401, "X-Forwarded-User");
    says(
        &get(&site, &as_("mallory", "nobody"), "/", None),
        403,
        "mallory is in no group that has a role here",
    );

    // A viewer sees the fleet, under a strict policy, with a session of their own.
    let page = get(&site, &vera, "/drift", None);
    says(&page, 200, "vera · viewer");
    let csp = page.header("content-security-policy").expect("a CSP");
    assert!(
        csp.contains("script-src 'self'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    let cookie = page.header("set-cookie").expect("a cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        page.body.contains("file:/etc/motd") && !page.body.contains("action=\"/actions/ack\""),
        "a viewer sees drift and no way to acknowledge it"
    );
    assert!(
        page.body
            .contains("<a href=\"/manifests/m.yaml#L4\">m.yaml:4</a>"),
        "each row links to the line that declares it: {}",
        page.body
    );
    says(
        &get(&site, &vera, "/history", None),
        403,
        "vera (viewer) may not read the event log: that needs the operator, auditor or admin role",
    );
    says(
        &get(&site, &vera, "/report.csv", None),
        403,
        "may not read the event log",
    );
    let (vera_cookie, vera_csrf) = session(&page);
    let ack = |csrf: &str| {
        form(&[
            ("csrf", csrf),
            ("host", "web-1"),
            ("resource", "file:/etc/motd"),
            ("reason", "known: ticket OPS-7"),
            ("expires", "1d"),
            ("back", "/drift"),
        ])
    };
    says(
        &post(
            &site,
            &vera,
            "/actions/ack",
            Some(&vera_cookie),
            &[],
            &ack(&vera_csrf),
        ),
        403,
        "vera (viewer) may not acknowledge drift or revoke an acknowledgement: that needs the operator or admin role",
    );

    // An operator's action needs their own session's token, from the console itself.
    says(
        &post(&site, &olga, "/actions/ack", None, &[], &ack("guess")),
        403,
        "your session expired",
    );
    let (cookie, csrf) = session(&get(&site, &olga, "/drift", None));
    says(
        &post(
            &site,
            &olga,
            "/actions/ack",
            Some(&cookie),
            &[],
            &ack("guess"),
        ),
        403,
        "your session expired or this form is not from it",
    );
    says(
        &post(
            &site,
            &vera,
            "/actions/ack",
            Some(&cookie),
            &[],
            &ack(&csrf),
        ),
        403,
        "your session expired or this form is not from it",
    );
    says(
        &post(
            &site,
            &olga,
            "/actions/ack",
            Some(&cookie),
            &[("Sec-Fetch-Site", "cross-site")],
            &ack(&csrf),
        ),
        403,
        "a form from another site was refused",
    );
    says(
        &post(
            &site,
            &olga,
            "/actions/ack",
            Some(&cookie),
            &[("Origin", "http://evil.example")],
            &ack(&csrf),
        ),
        403,
        "a form from another origin was refused",
    );
    let done = post(
        &site,
        &olga,
        "/actions/ack",
        Some(&cookie),
        &[],
        &ack(&csrf),
    );
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.header("location"), Some("/drift"));
    let acks = site.c.json(&["ack", "list"]);
    assert_eq!(acks["acks"][0]["by"], "olga", "{acks}");
    assert_eq!(acks["acks"][0]["reason"], "known: ticket OPS-7");

    // The drift page's filters, each way.
    let matches = |query: &str| -> String {
        let page = get(&site, &olga, &format!("/drift?{query}"), None);
        assert_eq!(page.status, 200, "{}", page.body);
        page.body
            .split("<span id=\"drift-total\">")
            .nth(1)
            .and_then(|r| r.split('<').next())
            .expect("a count")
            .to_owned()
    };
    for (query, n) in [
        ("host=web-*", "1"),
        ("host=web", "1"),
        ("host=db-*", "0"),
        ("label=role%3Dweb", "1"),
        ("label=role%3Ddb", "0"),
        ("manifest=m.yaml", "1"),
        ("manifest=other.yaml", "0"),
        ("resource=file%3A%2Fetc%2Fmotd", "1"),
        ("resource=package%3A", "0"),
        ("attribute=sha256", "1"),
        ("attribute=mode", "0"),
        ("acknowledged=yes", "1"),
        ("acknowledged=no", "0"),
        ("unauthorised=1", "1"),
        ("host=web-*&attribute=sha256&acknowledged=yes", "1"),
    ] {
        assert_eq!(matches(query), n, "/drift?{query}");
    }

    // Content: an operator's diff, escaped; an auditor may not.
    says(
        &get(&site, &ann, "/hosts/web-1/diff?path=%2Fetc%2Fmotd", None),
        403,
        "ann (auditor) may not read file content (diff): that needs the operator or admin role",
    );
    let diff = get(&site, &olga, "/hosts/web-1/diff?path=%2Fetc%2Fmotd", None);
    says(&diff, 200, "+&lt;script&gt;alert(1)&lt;/script&gt;");
    assert!(
        !diff.body.contains("<script>alert"),
        "content from a host is never markup"
    );

    // The auditor reads the log and verifies the chain; every read is an entry of its own.
    let (ann_cookie, ann_csrf) = session(&get(&site, &ann, "/", None));
    let verified = post(
        &site,
        &ann,
        "/history/verify",
        Some(&ann_cookie),
        &[],
        &form(&[("csrf", &ann_csrf)]),
    );
    assert_eq!(verified.status, 303, "{}", verified.body);
    says(
        &get(&site, &ann, "/history", Some(&ann_cookie)),
        200,
        "Intact at",
    );
    let csv = get(&site, &ann, "/report.csv?since=1d", Some(&ann_cookie));
    assert_eq!(csv.status, 200, "{}", csv.body);
    assert!(
        csv.header("content-disposition")
            .is_some_and(|d| d.contains("attachment")),
        "a download"
    );
    assert!(csv.body.contains("file:/etc/motd"), "{}", csv.body);
    let history = site.c.json(&["history", "--limit", "100"]);
    let events = history["events"].as_array().expect("events");
    let read = |kind: &str, by: &str| {
        events
            .iter()
            .any(|e| e["event"] == kind && e["expected"].as_str().is_some_and(|x| x.contains(by)))
    };
    assert!(read("content_read", "olga (operator)"), "{history:#}");
    assert!(read("log_read", "ann (auditor)"), "{history:#}");
    assert!(!read("content_read", "ann"), "a refused read is no read");

    // A person limited to other hosts: web-1 does not exist for them.
    let dora = as_("dora", "dbs");
    let page = get(&site, &dora, "/", None);
    says(&page, 200, "dora · operator · hosts db-*");
    assert!(
        page.body.contains("<b id=\"host-count\">0</b>"),
        "{}",
        page.body
    );
    says(
        &get(&site, &dora, "/drift", None),
        200,
        "0</span> items match",
    );
    says(
        &get(&site, &dora, "/hosts/web-1", None),
        404,
        "no host &quot;web-1&quot;",
    );
    let history = get(&site, &dora, "/history", None);
    assert_eq!(history.status, 200);
    assert!(
        history.body.contains("<tbody></tbody>"),
        "neither web-1's entries nor the controller's: {}",
        history.body
    );
    let (dora_cookie, dora_csrf) = session(&page);
    says(
        &post(
            &site,
            &dora,
            "/actions/revoke",
            Some(&dora_cookie),
            &[],
            &ack(&dora_csrf),
        ),
        404,
        "no host &quot;web-1&quot;",
    );

    // The manifest line a row links to; nothing outside the manifest directory.
    let m = get(&site, &olga, "/manifests/m.yaml", None);
    says(&m, 200, "id=\"L4\"");
    assert_eq!(
        get(&site, &olga, "/manifests/%2E%2E/controller.yaml", None).status,
        404
    );
}

/// What a person does in a browser: watches drift arrive without reloading, acknowledges it
/// from the page (and the CLI agrees), and, as a viewer, finds no way to do so and is refused
/// when trying anyway.
#[test]
fn in_a_browser_drift_arrives_live_is_acknowledged_and_a_viewer_cannot() {
    let Some(b) = Browser::start() else { return };
    let site = site();
    let base = format!("http://{}", site.console);
    b.set_headers(&[("X-Forwarded-User", "olga"), ("X-Forwarded-Groups", "ops")]);

    b.goto(&format!("{base}/"));
    wait_for("the overview", || {
        (b.text("#host-count")?.trim() == "1").then_some(())
    });
    wait_for("the live stream", || {
        (b.text("#live-state")? == "live").then_some(())
    });
    b.screenshot("overview");

    b.goto(&format!("{base}/drift"));
    wait_for("the live stream", || {
        (b.text("#live-state")? == "live").then_some(())
    });
    assert_eq!(b.text("#drift-total").as_deref(), Some("0"));
    // A mark in the page: a reload would wipe it.
    b.eval("window.plumbMark = 42;", json!([]));
    write_tree(&site.root, &[("etc/app.conf", "port=8080\n")]);
    wait_for("the row to appear without a reload", || {
        (b.text("#drift-total")? == "1").then_some(())
    });
    assert_eq!(b.eval("return window.plumbMark;", json!([])), json!(42));
    assert_eq!(
        b.count("tr[data-resource=\"file:/etc/app.conf\"]"),
        1,
        "the row itself"
    );
    b.screenshot("drift");

    // Acknowledge from the page.
    b.fill(
        "form.ack input[name=reason]",
        "deploy of 8080, ticket OPS-9",
    );
    b.click("form.ack button");
    wait_for("the acknowledgement", || {
        b.text("td.acked")?.contains("olga").then_some(())
    });
    let acks = site.c.json(&["ack", "list"]);
    assert_eq!(acks["acks"][0]["by"], "olga", "{acks}");
    assert_eq!(acks["acks"][0]["reason"], "deploy of 8080, ticket OPS-9");

    b.goto(&format!("{base}/hosts/web-1"));
    wait_for("the host page", || {
        b.text("h1")?.contains("web-1").then_some(())
    });
    assert!(b.count("table#log tbody tr") > 0, "its timeline");
    b.screenshot("host");
    b.click("a[href^=\"/hosts/web-1/diff\"]");
    wait_for("the diff", || {
        b.text("main")?
            .contains("The content is as declared")
            .then_some(())
    });
    b.screenshot("diff");
    b.goto(&format!("{base}/drift"));
    // The row's link to the line that declares it.
    let link = b.eval(
        "return document.querySelector('a[href^=\"/manifests/\"]').href;",
        json!([]),
    );
    let link = link.as_str().expect("a link to the manifest").to_owned();
    assert!(link.ends_with("/manifests/m.yaml#L7"), "{link}");
    b.goto(&link);
    wait_for("the manifest, at the line", || {
        (b.count("tr#L7:target") == 1).then_some(())
    });
    b.screenshot("manifest");
    b.goto(&format!("{base}/history"));
    wait_for("the history page", || {
        (b.count("table#log tbody tr") > 0).then_some(())
    });
    b.click("section.verify button");
    wait_for("the chain's verification", || {
        b.text("#chain-status")?.contains("Intact").then_some(())
    });
    b.screenshot("history");
    b.goto(&format!("{base}/report?since=1d"));
    wait_for("the report", || {
        (b.count("svg.chart rect") > 0).then_some(())
    });
    b.screenshot("report");

    // A viewer: no form to acknowledge with, and refused when posting one anyway.
    b.set_headers(&[
        ("X-Forwarded-User", "vera"),
        ("X-Forwarded-Groups", "staff"),
    ]);
    b.goto(&format!("{base}/drift"));
    wait_for("the viewer's page", || {
        b.text(".who")?.contains("vera").then_some(())
    });
    assert_eq!(b.count("form.ack, form[action=\"/actions/revoke\"]"), 0);
    assert_eq!(
        b.count("nav a[href=\"/history\"]"),
        0,
        "no history for a viewer"
    );
    b.screenshot("drift-as-viewer");
    let refused = b.eval_async(
        "const done = arguments[arguments.length - 1];
         const csrf = document.querySelector('meta[name=csrf-token]').content;
         const body = new URLSearchParams({csrf, host: 'web-1', resource: 'file:/etc/app.conf', back: '/drift'});
         fetch('/actions/revoke', {method: 'POST', body, credentials: 'same-origin'})
           .then(async r => done([r.status, await r.text()]));",
        json!([]),
    );
    assert_eq!(refused[0], json!(403), "{refused}");
    assert!(
        refused[1]
            .as_str()
            .is_some_and(|t| t.contains("vera (viewer) may not acknowledge drift")),
        "{refused}"
    );
    let acks = site.c.json(&["ack", "list"]);
    assert_eq!(
        acks["acks"].as_array().map(Vec::len),
        Some(1),
        "still acknowledged"
    );
    for page in [
        "overview",
        "drift",
        "host",
        "diff",
        "manifest",
        "history",
        "report",
        "drift-as-viewer",
    ] {
        assert!(
            Path::new(&screenshots_dir().join(format!("{page}.png"))).exists(),
            "{page}"
        );
    }
}
