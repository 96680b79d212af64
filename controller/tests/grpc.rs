//! The controller's gRPC surface over real loopback: health and reflection for stock clients,
//! and malformed agent streams rejected rather than trusted.

use std::time::Duration;

use plumb_controller::server::{self, ServeConfig};
use plumb_proto::v1::{self, agent_message::Msg};
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

async fn controller() -> (tempfile::TempDir, CancellationToken, server::Running) {
    controller_with(|_| {}).await
}

/// A controller on one manifest (`/etc/motd` for every host), with `change` made to its
/// configuration first.
async fn controller_with(
    change: impl FnOnce(&mut ServeConfig),
) -> (tempfile::TempDir, CancellationToken, server::Running) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let manifests = tmp.path().join("manifests");
    std::fs::create_dir_all(&manifests).expect("mkdir");
    std::fs::write(
        manifests.join("m.yaml"),
        "name: m\nhosts: [\"*\"]\nfiles:\n  /etc/motd: {}\n",
    )
    .expect("write");
    let shutdown = CancellationToken::new();
    let cfg = ServeConfig {
        tls: None,
        insecure_plaintext: false,
        metrics: None,
        webhooks: Vec::new(),
        reload_now: Default::default(),
        listen: "127.0.0.1:0".parse().expect("addr"),
        manifests,
        data: tmp.path().join("data"),
        store: None,
        audit_key: tmp.path().join("data/audit.key"),
        heartbeat_interval: Duration::from_secs(5),
        max_connections: None,
        handshake_timeout: server::HANDSHAKE_TIMEOUT,
        max_connection_age: None,
        web: None,
    };
    let mut cfg = cfg;
    change(&mut cfg);
    let running = server::start(cfg, shutdown.clone())
        .await
        .expect("controller starts");
    (tmp, shutdown, running)
}

async fn channel(running: &server::Running) -> Channel {
    Channel::from_shared(format!("http://{}", running.addr))
        .expect("url")
        .connect()
        .await
        .expect("connect")
}

#[tokio::test]
async fn health_and_reflection_let_stock_clients_discover_the_query_service() {
    let (_tmp, shutdown, running) = controller().await;
    let ch = channel(&running).await;

    let mut health = tonic_health::pb::health_client::HealthClient::new(ch.clone());
    let resp = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "plumb.v1.QueryService".into(),
        })
        .await
        .expect("health check")
        .into_inner();
    assert_eq!(
        resp.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );

    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut reflection = ServerReflectionClient::new(ch);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection")
        .into_inner();
    let reply = stream.next().await.expect("a reply").expect("ok");
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("unexpected reply {reply:?}")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in [
        "plumb.v1.QueryService",
        "plumb.v1.AgentService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }

    shutdown.cancel();
    running.wait().await.expect("clean stop");
}

// Stock clients that speak only reflection v1alpha (grpcio-reflection, Postman, Evans, older
// grpcurl) got UNIMPLEMENTED while only v1 was served.
#[tokio::test]
async fn reflection_v1alpha_lists_the_services_and_resolves_their_symbols() {
    use prost::Message as _;
    let (_tmp, shutdown, running) = controller().await;
    let ch = channel(&running).await;
    use tonic_reflection::pb::v1alpha::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let requests = [
        MessageRequest::ListServices(String::new()),
        MessageRequest::FileContainingSymbol("plumb.v1.QueryService".into()),
    ]
    .map(|m| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(m),
    });
    let mut stream = ServerReflectionClient::new(ch)
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .expect("reflection v1alpha is served")
        .into_inner();
    let reply = stream.next().await.expect("a reply").expect("ok");
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("unexpected reply {reply:?}")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.iter().any(|n| n == "plumb.v1.QueryService"),
        "{names:?}"
    );
    let reply = stream.next().await.expect("a reply").expect("ok");
    let Some(MessageResponse::FileDescriptorResponse(files)) = reply.message_response else {
        panic!("unexpected reply {reply:?}")
    };
    let file = prost_types::FileDescriptorProto::decode(&files.file_descriptor_proto[0][..])
        .expect("a file descriptor");
    assert!(
        file.service.iter().any(|s| s.name() == "QueryService"),
        "{:?}",
        file.service
    );

    shutdown.cancel();
    running.wait().await.expect("clean stop");
}

async fn connect_with(ch: Channel, first: Msg) -> tonic::Status {
    let mut client = v1::agent_service_client::AgentServiceClient::new(ch);
    let messages =
        tokio_stream::iter([v1::AgentMessage { msg: Some(first) }]).chain(tokio_stream::pending());
    match client.connect(messages).await {
        Ok(_) => panic!("the controller accepted a malformed stream"),
        Err(status) => status,
    }
}

/// An agent stream for `host_id`, its Hello sent: what to send on, and what comes back.
async fn agent_stream(
    ch: Channel,
    host_id: &str,
) -> (
    tokio::sync::mpsc::Sender<v1::AgentMessage>,
    tonic::Streaming<v1::ControllerMessage>,
) {
    agent_stream_speaking(ch, host_id, plumb_proto::PROTOCOL_VERSION).await
}

/// The same, from an agent of protocol `version`.
async fn agent_stream_speaking(
    ch: Channel,
    host_id: &str,
    version: u32,
) -> (
    tokio::sync::mpsc::Sender<v1::AgentMessage>,
    tonic::Streaming<v1::ControllerMessage>,
) {
    let mut client = v1::agent_service_client::AgentServiceClient::new(ch);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(v1::AgentMessage {
        msg: Some(hello(host_id, version)),
    })
    .await
    .expect("send");
    let inbound = client
        .connect(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("accepted")
        .into_inner();
    (tx, inbound)
}

fn hello(host_id: &str, protocol_version: u32) -> Msg {
    Msg::Hello(v1::Hello {
        host_id: host_id.into(),
        protocol_version,
        ..Default::default()
    })
}

#[tokio::test]
async fn malformed_agent_streams_are_rejected() {
    let (_tmp, shutdown, running) = controller().await;
    let ch = channel(&running).await;

    let s = connect_with(ch.clone(), Msg::Heartbeat(v1::Heartbeat { sent_at_ms: 1 })).await;
    assert_eq!(
        (s.code(), s.message()),
        (
            tonic::Code::InvalidArgument,
            "the first message must be a Hello"
        )
    );

    let s = connect_with(
        ch.clone(),
        hello("../../etc", plumb_proto::PROTOCOL_VERSION),
    )
    .await;
    assert_eq!(s.code(), tonic::Code::InvalidArgument);
    assert!(
        s.message().starts_with("invalid host id"),
        "{}",
        s.message()
    );

    let s = connect_with(ch.clone(), hello("h1", plumb_proto::PROTOCOL_VERSION + 1)).await;
    assert_eq!(s.code(), tonic::Code::InvalidArgument);
    assert!(s.message().contains("protocol version"), "{}", s.message());
    let older = plumb_proto::OLDEST_PROTOCOL_VERSION - 1;
    let s = connect_with(ch.clone(), hello("h1", older)).await;
    assert_eq!(s.code(), tonic::Code::InvalidArgument);
    assert!(s.message().contains("protocol version"), "{}", s.message());

    // None of them became a host.
    let mut query = v1::query_service_client::QueryServiceClient::new(ch);
    let hosts = query
        .list_hosts(v1::ListHostsRequest::default())
        .await
        .expect("hosts")
        .into_inner()
        .hosts;
    assert!(hosts.is_empty(), "{hosts:?}");

    shutdown.cancel();
    running.wait().await.expect("clean stop");
}

/// The parts of the next plan on `inbound`, up to the one that says it is the last.
async fn plan_parts(inbound: &mut tonic::Streaming<v1::ControllerMessage>) -> Vec<v1::Plan> {
    let mut parts = Vec::new();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), inbound.message());
        match next
            .await
            .expect("in time")
            .expect("ok")
            .expect("a message")
            .msg
        {
            Some(v1::controller_message::Msg::Plan(p)) => {
                let last = !p.more;
                parts.push(p);
                if last {
                    return parts;
                }
            }
            other => panic!("expected a plan's part, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_plan_comes_in_parts_to_agents_that_take_them_and_whole_to_older_ones() {
    let declared: Vec<String> = (0..600)
        .map(|i| format!("/etc/app/conf-{i:04}.yaml"))
        .collect();
    let manifest = declared
        .iter()
        .fold("name: m\nhosts: [\"*\"]\nfiles:\n".to_owned(), |m, p| {
            m + &format!("  {p}: {{}}\n")
        });
    let (_tmp, shutdown, running) = controller_with(|cfg| {
        std::fs::write(cfg.manifests.join("m.yaml"), &manifest).expect("write");
    })
    .await;
    let ch = channel(&running).await;

    let (_tx, mut inbound) = agent_stream(ch.clone(), "new").await;
    let parts = plan_parts(&mut inbound).await;
    let whole: usize = parts.iter().map(prost::Message::encoded_len).sum();
    assert!(
        parts.len() > 1 && parts.len() >= whole / plumb_proto::REPORT_BYTES,
        "{} parts for {whole} bytes",
        parts.len()
    );
    for p in &parts {
        assert_eq!(
            (p.generation, p.heartbeat_interval_secs),
            (parts[0].generation, 5)
        );
        let sent = prost::Message::encoded_len(p);
        assert!(
            sent <= plumb_proto::REPORT_BYTES + 32,
            "a part of {sent} bytes"
        );
    }
    let paths: Vec<&str> = parts
        .iter()
        .flat_map(|p| &p.paths)
        .map(|s| s.path.as_str())
        .collect();
    assert_eq!(paths, declared, "every path once, in order");

    let (_tx, mut inbound) =
        agent_stream_speaking(ch, "old", plumb_proto::OLDEST_PROTOCOL_VERSION).await;
    let whole = plan_parts(&mut inbound).await;
    assert_eq!(whole.len(), 1, "an older agent gets its plan whole");
    assert_eq!(whole[0].paths.len(), declared.len());

    shutdown.cancel();
    running.wait().await.expect("clean stop");
}

#[tokio::test]
async fn a_malformed_state_ends_the_stream_and_is_not_recorded() {
    let (_tmp, shutdown, running) = controller().await;
    let ch = channel(&running).await;
    let (tx, mut inbound) = agent_stream(ch.clone(), "h1").await;
    let plan = match inbound.message().await.expect("ok").expect("a plan").msg {
        Some(v1::controller_message::Msg::Plan(p)) => p,
        other => panic!("expected a plan, got {other:?}"),
    };
    assert_eq!(
        plan.paths
            .iter()
            .map(|p| p.path.as_str())
            .collect::<Vec<_>>(),
        ["/etc/motd"]
    );
    // Heartbeats are answered, so an agent with nothing to report still hears the controller.
    let beat = v1::Heartbeat { sent_at_ms: 1 };
    tx.send(v1::AgentMessage {
        msg: Some(Msg::Heartbeat(beat)),
    })
    .await
    .expect("send");
    let reply = tokio::time::timeout(Duration::from_secs(10), inbound.message());
    match reply
        .await
        .expect("an answer in time")
        .expect("ok")
        .expect("a reply")
        .msg
    {
        Some(v1::controller_message::Msg::Heartbeat(h)) => assert!(h.sent_at_ms > 0),
        other => panic!("expected a heartbeat, got {other:?}"),
    }
    let bad = v1::PathState {
        path: "/etc/motd".into(),
        kind: 99,
        ..Default::default()
    };
    tx.send(v1::AgentMessage {
        msg: Some(Msg::Snapshot(v1::Snapshot {
            plan_generation: plan.generation,
            seq: 1,
            states: vec![bad],
            packages: vec![],
            more: false,
        })),
    })
    .await
    .expect("send");
    // The controller drops the stream; the response ends (with or without an error status).
    let _status = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match inbound.message().await {
                Ok(Some(_)) => continue,
                other => return other.map(|_| ()),
            }
        }
    })
    .await
    .expect("the stream ends");
    let mut query = v1::query_service_client::QueryServiceClient::new(ch);
    let resp = query
        .get_drift(v1::GetDriftRequest::default())
        .await
        .expect("drift")
        .into_inner();
    assert!(
        resp.hosts.iter().all(|h| h.drift.is_empty()),
        "nothing was evaluated from it"
    );
    shutdown.cancel();
    running.wait().await.expect("clean stop");
}

/// Passes message bytes through untouched: a client that knows no plumb types at all.
mod raw {
    use bytes::{Buf, BufMut};
    use tonic::Status;
    use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

    #[derive(Default)]
    pub(super) struct RawCodec;
    pub(super) struct Raw;

    impl Encoder for Raw {
        type Item = Vec<u8>;
        type Error = Status;
        fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
            dst.put_slice(&item);
            Ok(())
        }
    }

    impl Decoder for Raw {
        type Item = Vec<u8>;
        type Error = Status;
        fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
            let mut bytes = vec![0; src.remaining()];
            src.copy_to_slice(&mut bytes);
            Ok(Some(bytes))
        }
    }

    impl Codec for RawCodec {
        type Encode = Vec<u8>;
        type Decode = Vec<u8>;
        type Encoder = Raw;
        type Decoder = Raw;
        fn encoder(&mut self) -> Raw {
            Raw
        }
        fn decoder(&mut self) -> Raw {
            Raw
        }
    }
}

/// What a stock client does: learn the service from reflection, then call it by name.
#[tokio::test]
async fn a_client_without_plumb_types_discovers_and_calls_list_hosts() {
    use prost::Message;
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };

    let (_tmp, shutdown, running) = controller().await;
    let ch = channel(&running).await;

    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(
            "plumb.v1.QueryService".into(),
        )),
    };
    let mut stream = ServerReflectionClient::new(ch.clone())
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection")
        .into_inner();
    let reply = stream.next().await.expect("a reply").expect("ok");
    let Some(MessageResponse::FileDescriptorResponse(files)) = reply.message_response else {
        panic!("unexpected reply {reply:?}")
    };
    let method = files
        .file_descriptor_proto
        .iter()
        .map(|bytes| {
            prost_types::FileDescriptorProto::decode(bytes.as_slice()).expect("a descriptor")
        })
        .flat_map(|f| {
            let package = f.package().to_owned();
            f.service.into_iter().map(move |s| (package.clone(), s))
        })
        .find(|(package, s)| package == "plumb.v1" && s.name() == "QueryService")
        .and_then(|(package, s)| {
            let service = format!("{package}.{}", s.name());
            s.method
                .into_iter()
                .find(|m| m.name() == "ListHosts")
                .map(|m| (service, m))
        })
        .map(|(service, m)| (format!("/{service}/{}", m.name()), m))
        .expect("reflection describes QueryService.ListHosts");
    let (path, method) = method;
    assert_eq!(method.input_type(), ".plumb.v1.ListHostsRequest");

    // ListHostsRequest has no fields: its encoding is empty.
    let mut grpc = tonic::client::Grpc::new(ch);
    grpc.ready().await.expect("ready");
    let path = tonic::codegen::http::uri::PathAndQuery::try_from(path).expect("a method path");
    let reply = grpc
        .unary(tonic::Request::new(Vec::new()), path, raw::RawCodec)
        .await
        .expect("the call succeeds")
        .into_inner();
    let hosts = v1::ListHostsResponse::decode(reply.as_slice()).expect("a ListHostsResponse");
    assert!(hosts.hosts.is_empty() && hosts.manifest_errors.is_empty());

    shutdown.cancel();
    running.wait().await.expect("clean stop");
}

/// Issue 13: refusals reached clients as FailedPrecondition whatever they were ("the controller
/// answered FailedPrecondition: no host ..."). Each now has the code a client can act on.
#[tokio::test]
async fn refusals_carry_the_code_that_says_what_was_wrong() {
    let (_tmp, shutdown, running) = controller().await;
    let mut query = v1::query_service_client::QueryServiceClient::new(channel(&running).await);

    let s = query
        .acknowledge(v1::AcknowledgeRequest {
            host_id: "web-9".into(),
            resource: "file:/etc/motd".into(),
            reason: "change 42".into(),
            expires_ms: 0,
        })
        .await
        .expect_err("an unknown host");
    assert_eq!(
        (s.code(), s.message()),
        (
            tonic::Code::NotFound,
            "no host \"web-9\" is known to this controller"
        )
    );

    let s = query
        .get_diff(v1::GetDiffRequest {
            host_id: "web-9".into(),
            path: "/etc/motd".into(),
        })
        .await
        .expect_err("an unknown host");
    assert_eq!(s.code(), tonic::Code::NotFound, "{}", s.message());

    let s = query
        .revoke_ack(v1::RevokeAckRequest {
            host_id: "web-9".into(),
            resource: "file:/etc/motd".into(),
        })
        .await
        .expect_err("nothing to revoke");
    assert_eq!(
        (s.code(), s.message()),
        (
            tonic::Code::NotFound,
            "no acknowledgement for file:/etc/motd on web-9"
        )
    );
    shutdown.cancel();
}

/// An agent that does not act on `GoAway` (an older one): its stream, past the maximum age,
/// still serves for the grace period, then the controller closes it; the host is not offline
/// at once (its agent may be connecting elsewhere), but only once three heartbeats pass with
/// no stream for it.
#[tokio::test]
async fn a_stream_past_its_age_is_asked_to_go_then_closed_and_its_host_offline_only_later() {
    use v1::controller_message::Msg as In;
    let heartbeat = Duration::from_secs(2);
    let (_tmp, shutdown, running) = controller_with(|cfg| {
        cfg.heartbeat_interval = heartbeat;
        cfg.max_connection_age = Some(plumb_controller::fleet::ConnectionAge {
            age: Duration::from_secs(1),
            grace: Duration::from_secs(1),
        });
    })
    .await;
    let ch = channel(&running).await;
    let (tx, mut inbound) = agent_stream(ch.clone(), "h1").await;
    // Heartbeats all along, so that only the age ends this stream.
    let beating = tx.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_millis(300));
        loop {
            every.tick().await;
            let beat = Msg::Heartbeat(v1::Heartbeat { sent_at_ms: 1 });
            if beating
                .send(v1::AgentMessage { msg: Some(beat) })
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let reason = loop {
        match next(&mut inbound)
            .await
            .expect("ok")
            .expect("a message")
            .msg
        {
            Some(In::GoAway(g)) => break g.reason,
            Some(In::Plan(_) | In::Heartbeat(_)) => continue,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(reason.contains("maximum connection age (1s)"), "{reason}");
    // The grace period: the stream still serves (heartbeats answered), then ends.
    match next(&mut inbound).await.expect("ok").expect("served").msg {
        Some(In::Heartbeat(_)) => {}
        other => panic!("expected a heartbeat in the grace period, got {other:?}"),
    }
    while let Ok(Some(_)) = next(&mut inbound).await {}
    let mut query = v1::query_service_client::QueryServiceClient::new(ch);
    assert!(
        !offline_logged(&mut query, "h1").await,
        "not offline the moment its retired stream ends"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !offline_logged(&mut query, "h1").await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "h1 never went offline though no stream came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(tx);
    shutdown.cancel();
    running.wait().await.expect("clean stop");
}

/// The next message on an agent stream, within a deadline.
async fn next(
    inbound: &mut tonic::Streaming<v1::ControllerMessage>,
) -> Result<Option<v1::ControllerMessage>, tonic::Status> {
    tokio::time::timeout(Duration::from_secs(20), inbound.message())
        .await
        .expect("the controller speaks in time")
}

/// Whether `host`'s history holds a `host_offline` entry.
async fn offline_logged(
    query: &mut v1::query_service_client::QueryServiceClient<Channel>,
    host: &str,
) -> bool {
    let history = query
        .get_history(v1::GetHistoryRequest {
            host_id: host.into(),
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("history")
        .into_inner();
    let offline = v1::DriftEventKind::HostOffline as i32;
    history.events.iter().any(|e| e.kind == offline)
}
