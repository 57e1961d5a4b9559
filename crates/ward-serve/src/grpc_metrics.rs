//! A tower layer on the gRPC server that counts and times every call by service, method and
//! status code (`ward_grpc_server_requests_total`, `ward_grpc_server_request_duration_seconds`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tonic::Code;
use tonic::codegen::http::{HeaderMap, Request, Response};
use tower::{Layer, Service};
use ward_bus::metrics::{UNMATCHED_ROUTE, observe_grpc_request};

/// Wraps the gRPC routes in [`GrpcMetrics`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct GrpcMetricsLayer;

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics { inner }
    }
}

/// Records each call once its response head is ready. Ward's methods are all unary, so the head
/// carries the outcome: an error's `grpc-status` is in the headers (trailers-only), and a head
/// without one belongs to a successful call whose status follows in the trailers.
#[derive(Debug, Clone)]
pub(crate) struct GrpcMetrics<S> {
    inner: S,
}

type BoxedFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for GrpcMetrics<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    ResBody: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxedFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let path = request.uri().path().to_string();
        let started = Instant::now();
        let responding = self.inner.call(request);
        Box::pin(async move {
            let outcome = responding.await;
            let code = match &outcome {
                Ok(response) => code_of(response.headers()),
                Err(_) => Code::Unknown,
            };
            let (service, method) = service_and_method(&path, code);
            observe_grpc_request(service, method, code_name(code), started.elapsed());
            outcome
        })
    }
}

/// The status code a response head carries; none means OK (see [`GrpcMetrics`]).
fn code_of(headers: &HeaderMap) -> Code {
    let status_opt = headers
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<i32>().ok());
    match status_opt {
        Some(status) => Code::from_i32(status),
        None => Code::Ok,
    }
}

/// Splits `/ward.v1.PatientService/GetPatient`. Paths come from the client, so a call no
/// service answered (Unimplemented) is labelled `unmatched`: every other label names a method
/// the server has, which keeps the series bounded.
fn service_and_method(path: &str, code: Code) -> (&str, &str) {
    let split_opt = path.strip_prefix('/').and_then(|rest| rest.split_once('/'));
    match split_opt {
        Some((service, method)) if code != Code::Unimplemented => (service, method),
        _ => (UNMATCHED_ROUTE, UNMATCHED_ROUTE),
    }
}

/// The code's canonical name, as other gRPC libraries label it (`OK`, `NotFound`, ...).
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use tonic::codegen::http::HeaderValue;

    use super::*;

    #[test]
    fn a_head_without_status_is_ok_and_an_error_head_has_its_code() {
        let mut headers = HeaderMap::new();
        assert_eq!(code_of(&headers), Code::Ok);
        headers.insert("grpc-status", HeaderValue::from_static("5"));
        assert_eq!(code_of(&headers), Code::NotFound);
        assert_eq!(code_name(code_of(&headers)), "NotFound");
    }

    #[test]
    fn unknown_methods_do_not_become_labels() {
        let path = "/ward.v1.PatientService/GetPatient";
        assert_eq!(
            service_and_method(path, Code::NotFound),
            ("ward.v1.PatientService", "GetPatient")
        );
        assert_eq!(
            service_and_method("/random/1234", Code::Unimplemented),
            ("unmatched", "unmatched")
        );
        assert_eq!(
            service_and_method("no-slash", Code::Ok),
            ("unmatched", "unmatched")
        );
    }
}
