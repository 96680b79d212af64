//! `plumb diverge` and `plumb baseline accept`: how the hosts of baseline groups differ, and
//! a group's state as the manifest that would declare it.

use plumb_common::cli::exit;
use plumb_proto::v1;
use serde_json::json;

use super::output::{Format, emit, emit_json};
use super::query::{client, status_error};
use super::render;
use crate::key::Key;
use crate::server::wire;

/// `plumb diverge [SELECTOR] [RESOURCE]`; a lone argument that names a path or package is the
/// resource. Exit 2 when a group's hosts are not all alike.
pub(super) async fn diverge(
    q: &super::QueryArgs,
    selector: Option<String>,
    resource: Option<String>,
) -> anyhow::Result<i32> {
    let (selector, resource) = match (selector, resource) {
        (Some(one), None) if Key::parse_resource(&one).is_some() => (None, Some(one)),
        other => other,
    };
    if let Some(r) = &resource
        && Key::parse_resource(r).is_none()
    {
        anyhow::bail!(
            "{r:?} names no path or package\nhint: write /etc/x, file:/etc/x or package:NAME"
        );
    }
    let response = client(&q.conn)
        .await?
        .diverge(v1::DivergeRequest {
            selector: selector.unwrap_or_default(),
            resource: resource.unwrap_or_default(),
        })
        .await
        .map_err(status_error)?
        .into_inner();
    let groups: Vec<_> = response
        .groups
        .into_iter()
        .map(wire::divergence_from_proto)
        .collect();
    match q.output {
        Format::Json => {
            let all: Vec<_> = groups.iter().map(crate::json::divergence).collect();
            emit_json(&json!({ "groups": all }))?;
        }
        Format::Table if groups.is_empty() => {
            eprintln!("no baseline compares anything yet (a manifest's baseline: lists what)");
        }
        Format::Table => emit(&render::divergences_table(&groups))?,
    }
    Ok(exit_for(groups.iter().all(|d| d.alike())))
}

/// `plumb baseline accept [--from HOST] SELECTOR`: each group's manifest with values on
/// stdout (YAML documents; JSON with -o json), what was left out on stderr. Exit 2 when
/// something was left out.
pub(super) async fn accept(
    q: &super::QueryArgs,
    selector: String,
    from: Option<String>,
) -> anyhow::Result<i32> {
    let response = client(&q.conn)
        .await?
        .accept_baseline(v1::AcceptBaselineRequest {
            selector,
            from: from.unwrap_or_default(),
        })
        .await
        .map_err(status_error)?
        .into_inner();
    let groups: Vec<_> = response
        .groups
        .into_iter()
        .map(wire::accepted_from_proto)
        .collect();
    let left_out: Vec<String> = groups
        .iter()
        .flat_map(|g| g.undecided.iter().map(move |u| format!("{}: {u}", g.group)))
        .collect();
    match q.output {
        Format::Json => {
            let all: Vec<_> = groups
                .iter()
                .map(
                    |g| json!({"group": g.group, "manifest": g.manifest, "undecided": g.undecided}),
                )
                .collect();
            emit_json(&json!({ "groups": all }))?;
        }
        Format::Table => {
            let docs: Vec<&str> = groups.iter().map(|g| g.manifest.as_str()).collect();
            emit(&docs.join("---\n"))?;
        }
    }
    for l in &left_out {
        eprintln!("left out (not decided): {l}");
    }
    Ok(exit_for(left_out.is_empty()))
}

/// 0 when all is as it should be, else 2 (as `plumb drift`).
fn exit_for(alike: bool) -> i32 {
    if alike { exit::OK } else { exit::DRIFT }
}
