//! A minimal OpenTelemetry collector for tests: OTLP/HTTP with protobuf bodies, the wire format
//! `ward` exports traces in.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One span as the collector received it.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    pub service_name: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub name: String,
    pub kind: SpanKind,
    pub attributes: HashMap<String, String>,
}

impl ReceivedSpan {
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// A minimal OTLP/HTTP collector: `POST /v1/traces` with a protobuf `ExportTraceServiceRequest`,
/// answered 200 with an empty `ExportTraceServiceResponse`, over HTTP/1.1 keep-alive.
///
/// It runs on a thread of its own, so a test blocked waiting for `ward` to exit (and flush its
/// spans here) does not stall it.
pub struct OtlpReceiver {
    addr: SocketAddr,
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    pub paths: Arc<Mutex<Vec<String>>>,
    stop_tx_opt: Option<tokio::sync::oneshot::Sender<()>>,
}

impl OtlpReceiver {
    pub fn start() -> OtlpReceiver {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let paths = Arc::new(Mutex::new(Vec::new()));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (task_spans, task_paths) = (spans.clone(), paths.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = TcpListener::from_std(std_listener).unwrap();
                let accept_loop = async {
                    while let Ok((stream, _)) = listener.accept().await {
                        tokio::spawn(serve_connection(
                            stream,
                            task_spans.clone(),
                            task_paths.clone(),
                        ));
                    }
                };
                tokio::select! {
                    () = accept_loop => {}
                    _ = stop_rx => {}
                }
            });
        });
        OtlpReceiver {
            addr,
            spans,
            paths,
            stop_tx_opt: Some(stop_tx),
        }
    }

    /// The base URL, as an operator sets `telemetry.otlp_endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn spans_of_trace(&self, trace_id: &str) -> Vec<ReceivedSpan> {
        let spans = self.spans.lock().unwrap();
        spans
            .iter()
            .filter(|span| span.trace_id == trace_id)
            .cloned()
            .collect()
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        if let Some(stop_tx) = self.stop_tx_opt.take() {
            let _ = stop_tx.send(());
        }
    }
}

async fn serve_connection(
    mut stream: TcpStream,
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    paths: Arc<Mutex<Vec<String>>>,
) {
    let mut buffer = Vec::new();
    loop {
        let Some(head_end) = read_until_head_end(&mut stream, &mut buffer).await else {
            return;
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
        let path = head.split(' ').nth(1).unwrap_or_default().to_string();
        let content_length: usize = head
            .lines()
            .filter_map(|line| line.split_once(':'))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, value)| value.trim().parse().ok())
            .unwrap_or(0);
        let body_start = head_end + 4;
        while buffer.len() < body_start + content_length {
            let mut chunk = [0u8; 16 * 1024];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
        let body = buffer[body_start..body_start + content_length].to_vec();
        buffer.drain(..body_start + content_length);
        let request = ExportTraceServiceRequest::decode(body.as_slice())
            .expect("the exporter sends an ExportTraceServiceRequest");
        paths.lock().unwrap().push(path);
        spans.lock().unwrap().extend(received_spans(request));
        let response =
            "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
        if stream.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Reads until `buffer` holds a whole request head; returns where it ends, or `None` at EOF.
async fn read_until_head_end(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            return Some(end);
        }
        let mut chunk = [0u8; 16 * 1024];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
}

fn received_spans(request: ExportTraceServiceRequest) -> Vec<ReceivedSpan> {
    let mut received = Vec::new();
    for resource_spans in request.resource_spans {
        let resource_attributes = resource_spans
            .resource
            .map(|resource| resource.attributes)
            .unwrap_or_default();
        let service_name = attributes_of(&resource_attributes)
            .remove("service.name")
            .unwrap_or_default();
        for scope_spans in resource_spans.scope_spans {
            for span in scope_spans.spans {
                received.push(ReceivedSpan {
                    service_name: service_name.clone(),
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    kind: SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified),
                    attributes: attributes_of(&span.attributes),
                    name: span.name,
                });
            }
        }
    }
    received
}

fn attributes_of(attributes: &[KeyValue]) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for attribute in attributes {
        let text = match attribute
            .value
            .as_ref()
            .and_then(|value| value.value.as_ref())
        {
            Some(AnyValue::StringValue(text)) => text.clone(),
            Some(AnyValue::IntValue(number)) => number.to_string(),
            Some(AnyValue::BoolValue(flag)) => flag.to_string(),
            Some(AnyValue::DoubleValue(number)) => number.to_string(),
            Some(other) => format!("{other:?}"),
            None => String::new(),
        };
        map.insert(attribute.key.clone(), text);
    }
    map
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
