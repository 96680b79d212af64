//! Prometheus metrics over plain HTTP (`--metrics-listen`): hosts by status, open drift,
//! events, agent streams, evaluation and store latency. A few lines of HTTP/1.1 on tokio
//! rather than a web framework: one read-only page.

use std::net::SocketAddr;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::fleet::FleetHandle;
use crate::fleet::metrics::{Histogram, Metrics};

/// The Prometheus text exposition (version 0.0.4) of the fleet's metrics.
pub fn render(m: &Metrics) -> String {
    let mut out = String::new();
    out.push_str(
        "# HELP plumb_hosts Hosts known to the controller, by status.\n# TYPE plumb_hosts gauge\n",
    );
    for (status, n) in &m.hosts {
        out.push_str(&format!("plumb_hosts{{status=\"{status}\"}} {n}\n"));
    }
    out.push_str(&format!(
        "# HELP plumb_drift_open Open drift items.\n# TYPE plumb_drift_open gauge\nplumb_drift_open {}\n\
         # HELP plumb_agent_streams Connected agent streams.\n# TYPE plumb_agent_streams gauge\nplumb_agent_streams {}\n\
         # HELP plumb_acknowledgements Acknowledgements in force.\n# TYPE plumb_acknowledgements gauge\nplumb_acknowledgements {}\n",
        m.drift_open, m.agent_streams, m.acknowledgements
    ));
    out.push_str(&format!(
        "# HELP plumb_store_writable Whether the store writes (0: changes wait in memory, agents are not acknowledged).\n# TYPE plumb_store_writable gauge\nplumb_store_writable {}\n\
         # HELP plumb_store_pending_writes Writes waiting for the store, in order.\n# TYPE plumb_store_pending_writes gauge\nplumb_store_pending_writes {}\n\
         # HELP plumb_store_write_failures_total Writes the store refused since the controller started.\n# TYPE plumb_store_write_failures_total counter\nplumb_store_write_failures_total {}\n\
         # HELP plumb_store_dropped_writes_total Writes not kept (too many waiting); their hosts were read again.\n# TYPE plumb_store_dropped_writes_total counter\nplumb_store_dropped_writes_total {}\n",
        u8::from(m.store_writable),
        m.store_pending_writes,
        m.store_write_failures_total,
        m.store_dropped_writes_total,
    ));
    out.push_str("# HELP plumb_events_total Events recorded since the controller started.\n# TYPE plumb_events_total counter\n");
    for (kind, n) in &m.events_total {
        out.push_str(&format!("plumb_events_total{{kind=\"{kind}\"}} {n}\n"));
    }
    histogram(
        &m.evaluation_seconds,
        "plumb_evaluation_seconds",
        "Time to evaluate and record one agent message.",
        &mut out,
    );
    histogram(
        &m.store_seconds,
        "plumb_store_seconds",
        "Time of one store transaction recording drift.",
        &mut out,
    );
    if !m.webhooks.is_empty() {
        // N is the webhook's place in the configuration: URLs may hold secrets.
        out.push_str("# HELP plumb_webhook_events_total Events handled per webhook (by its index in the configuration): delivered, retried attempts, failed (refused or out of attempts), dropped (queue full).\n# TYPE plumb_webhook_events_total counter\n");
        for (i, c) in m.webhooks.iter().enumerate() {
            for (result, n) in [
                ("delivered", c.delivered),
                ("retried", c.retried),
                ("failed", c.failed),
                ("dropped", c.dropped),
            ] {
                out.push_str(&format!(
                    "plumb_webhook_events_total{{webhook=\"{i}\",result=\"{result}\"}} {n}\n"
                ));
            }
        }
    }
    out
}

fn histogram(h: &Histogram, name: &str, help: &str, out: &mut String) {
    out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} histogram\n"));
    for (le, c) in h.buckets() {
        out.push_str(&format!("{name}_bucket{{le=\"{le}\"}} {c}\n"));
    }
    out.push_str(&format!(
        "{name}_bucket{{le=\"+Inf\"}} {}\n{name}_sum {}\n{name}_count {}\n",
        h.count(),
        h.sum(),
        h.count()
    ));
}

/// Serves `/metrics` until `shutdown`; returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    fleet: FleetHandle,
    shutdown: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for metrics"))?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = tokio::select! {
                _ = shutdown.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok(s) => s,
                    Err(_) => continue,
                },
            };
            let fleet = fleet.clone();
            tokio::spawn(async move {
                // The request head only; anything longer than a few KiB is not a scrape.
                let mut buf = vec![0u8; 4096];
                let mut read = 0;
                while read < buf.len() && !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf[read..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read += n,
                    }
                }
                let head = String::from_utf8_lossy(&buf[..read]);
                let response = if head.starts_with("GET /metrics ")
                    || head.starts_with("GET /metrics?")
                {
                    match fleet.metrics().await {
                        Ok(metrics) => {
                            let body = render(&metrics);
                            format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        }
                        Err(_) => "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".into(),
                    }
                } else {
                    "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        .into()
                };
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_figures_render_as_prometheus_text() {
        let mut m = Metrics {
            hosts: [("drifted", 2), ("in_sync", 5)].into(),
            drift_open: 3,
            store_writable: true,
            events_total: [("drift_opened", 4)].into(),
            webhooks: vec![crate::webhook::Counts {
                delivered: 7,
                ..Default::default()
            }],
            ..Metrics::default()
        };
        m.evaluation_seconds.observe(0.002);
        let text = render(&m);
        for line in [
            "plumb_hosts{status=\"drifted\"} 2\n",
            "plumb_hosts{status=\"in_sync\"} 5\n",
            "plumb_drift_open 3\n",
            "plumb_store_writable 1\n",
            "plumb_events_total{kind=\"drift_opened\"} 4\n",
            "plumb_evaluation_seconds_bucket{le=\"0.001\"} 0\n",
            "plumb_evaluation_seconds_bucket{le=\"0.0025\"} 1\n",
            "plumb_evaluation_seconds_bucket{le=\"+Inf\"} 1\n",
            "plumb_evaluation_seconds_count 1\n",
            "plumb_store_seconds_count 0\n",
            "plumb_webhook_events_total{webhook=\"0\",result=\"delivered\"} 7\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from\n{text}");
        }
        let without = render(&Metrics::default());
        assert!(!without.contains("plumb_webhook"), "no webhooks, no series");
    }
}
