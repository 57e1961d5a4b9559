//! The gRPC pieces every module's client and server adapter share: the error table's tonic side,
//! the caller's identity in metadata, peer channels, health checks and proto field conversions.
//!
//! A [`WardError`] crosses the network whole: the server adapter sets the status code from the
//! table in STYLE.md §3 and puts the error, as JSON, in the `ward-error-bin` metadata entry; the
//! client decodes it, so a `NotFound` stays a `NotFound` however many hops it makes. Statuses
//! without that entry (a proxy, a dead peer, a deadline) map by code.

use std::error::Error as _;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use uuid::Uuid;
use ward_core::{CallerContext, ErrorCode, FieldError, Role, WardError, WardResult};

use crate::patients::DATE_FORMAT;
use crate::token::TokenVerifier;

/// The binary metadata entry that carries the full [`WardError`] as JSON.
pub const ERROR_METADATA_KEY: &str = "ward-error-bin";

/// The metadata entry that carries the request id, as the gateway's HTTP header does.
pub const REQUEST_ID_METADATA_KEY: &str = "x-request-id";

/// The metadata entry that carries `Bearer <token>`.
pub const AUTHORIZATION_METADATA_KEY: &str = "authorization";

/// The metadata entry that carries the client's network address (see
/// [`CallerContext::client_addr`]), so a remote auth module can throttle logins per address.
pub const CLIENT_ADDR_METADATA_KEY: &str = "x-client-addr";

/// How long a peer gets to accept a TCP connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long one call to a peer may take, end to end.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a readiness probe waits for a peer's health answer.
pub const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(3);

const REQUEST_ID_MAX_CHARS: usize = 128;

/// Longer than any IPv6 text form (45 characters); longer values are ignored.
const CLIENT_ADDR_MAX_CHARS: usize = 64;

/// Returns the gRPC code for an error code: the tonic column of the table in STYLE.md §3.
pub fn grpc_code(code: ErrorCode) -> Code {
    match code {
        ErrorCode::InvalidArgument => Code::InvalidArgument,
        ErrorCode::Unauthenticated => Code::Unauthenticated,
        ErrorCode::Forbidden => Code::PermissionDenied,
        ErrorCode::NotFound => Code::NotFound,
        // No gRPC code means "gone"; the exact kind travels in `ward-error-bin`.
        ErrorCode::Gone => Code::NotFound,
        ErrorCode::AlreadyExists => Code::AlreadyExists,
        ErrorCode::PreconditionFailed => Code::FailedPrecondition,
        // The exact kind travels in `ward-error-bin`.
        ErrorCode::PreconditionRequired => Code::FailedPrecondition,
        // The request itself is at fault; the exact kind travels in `ward-error-bin`.
        ErrorCode::Unprocessable => Code::InvalidArgument,
        ErrorCode::TooManyRequests => Code::ResourceExhausted,
        ErrorCode::Timeout => Code::DeadlineExceeded,
        ErrorCode::Unavailable => Code::Unavailable,
        ErrorCode::Internal => Code::Internal,
    }
}

/// Returns the status a server adapter answers with: the code from the table, the public detail
/// as message, and the whole error as JSON in `ward-error-bin`.
pub fn status_from_error(error: &WardError) -> Status {
    let code = grpc_code(error.error_code());
    let mut metadata = MetadataMap::new();
    match serde_json::to_vec(&WireError::from_error(error)) {
        Ok(json) => {
            metadata.insert_bin(ERROR_METADATA_KEY, MetadataValue::from_bytes(&json));
        }
        // Cannot happen for a struct of strings; the code and message still go out.
        Err(serialize_error) => {
            tracing::error!(%serialize_error, "cannot encode an error for gRPC metadata");
        }
    }
    Status::with_metadata(code, error.public_detail(), metadata)
}

/// The JSON in `ward-error-bin`: `{"kind":"not_found","detail":"Patient not found","errors":[]}`.
///
/// Spelled out here, the one place that defines it (`WardError` has no serde form of its own).
/// `kind` names are the wire format: renaming one breaks older peers.
#[derive(Debug, Serialize, Deserialize)]
struct WireError {
    kind: String,
    detail: String,
    #[serde(default)]
    errors: Vec<FieldError>,
}

impl WireError {
    fn from_error(error: &WardError) -> Self {
        let (kind, detail) = match error {
            WardError::InvalidArgument { detail, .. } => ("invalid_argument", detail),
            WardError::Unauthenticated(detail) => ("unauthenticated", detail),
            WardError::Forbidden(detail) => ("forbidden", detail),
            WardError::NotFound(detail) => ("not_found", detail),
            WardError::Gone(detail) => ("gone", detail),
            WardError::AlreadyExists(detail) => ("already_exists", detail),
            WardError::PreconditionFailed(detail) => ("precondition_failed", detail),
            WardError::PreconditionRequired(detail) => ("precondition_required", detail),
            WardError::Unprocessable(detail) => ("unprocessable", detail),
            WardError::TooManyRequests(detail) => ("too_many_requests", detail),
            WardError::Timeout(detail) => ("timeout", detail),
            WardError::Unavailable(detail) => ("unavailable", detail),
            WardError::Internal(detail) => ("internal", detail),
        };
        Self {
            kind: kind.to_string(),
            detail: detail.clone(),
            errors: error.field_errors().to_vec(),
        }
    }

    /// Returns `None` for a kind this build does not know.
    fn into_error(self) -> Option<WardError> {
        let detail = self.detail;
        let error = match self.kind.as_str() {
            "invalid_argument" => WardError::InvalidArgument {
                detail,
                errors: self.errors,
            },
            "unauthenticated" => WardError::Unauthenticated(detail),
            "forbidden" => WardError::Forbidden(detail),
            "not_found" => WardError::NotFound(detail),
            "gone" => WardError::Gone(detail),
            "already_exists" => WardError::AlreadyExists(detail),
            "precondition_failed" => WardError::PreconditionFailed(detail),
            "precondition_required" => WardError::PreconditionRequired(detail),
            "unprocessable" => WardError::Unprocessable(detail),
            "too_many_requests" => WardError::TooManyRequests(detail),
            "timeout" => WardError::Timeout(detail),
            "unavailable" => WardError::Unavailable(detail),
            "internal" => WardError::Internal(detail),
            _ => return None,
        };
        Some(error)
    }
}

/// Returns the error a status stands for, without naming the peer; see [`error_from_peer_status`].
pub fn error_from_status(status: &Status) -> WardError {
    error_from_peer_status(status, "the peer")
}

/// Returns the error a peer's status stands for.
///
/// The `ward-error-bin` entry wins when present and readable, so the kind is kept exactly.
/// Otherwise the status came from the transport or a foreign server: `Cancelled` and
/// `DeadlineExceeded` are `Timeout`, `Unavailable` is `Unavailable`, and so is a status our own
/// transport made from a broken connection (it carries the I/O or HTTP/2 error as its source: a
/// peer closing mid-call while it stops); anything else is `Internal`. `peer` (e.g. "patients
/// peer at http://patients:50051") says which peer failed.
pub fn error_from_peer_status(status: &Status, peer: &str) -> WardError {
    if let Some(error) = decode_error_metadata(status.metadata()) {
        return error;
    }
    let message = status.message();
    let is_broken_connection = std::error::Error::source(status).is_some();
    match status.code() {
        Code::Cancelled | Code::DeadlineExceeded => {
            WardError::Timeout(format!("{peer}: no answer in time: {message}"))
        }
        Code::Unavailable => WardError::Unavailable(format!("{peer}: unreachable: {message}")),
        Code::Unknown | Code::Internal if is_broken_connection => WardError::Unavailable(format!(
            "{peer}: the connection broke during the call: {message}"
        )),
        other => WardError::Internal(format!("{peer} answered {other:?}: {message}")),
    }
}

fn decode_error_metadata(metadata: &MetadataMap) -> Option<WardError> {
    let value = metadata.get_bin(ERROR_METADATA_KEY)?;
    let bytes = match value.to_bytes() {
        Ok(bytes) => bytes,
        Err(decode_error) => {
            tracing::warn!(%decode_error, "unreadable ward-error-bin metadata; mapping by code");
            return None;
        }
    };
    match serde_json::from_slice::<WireError>(&bytes) {
        Ok(wire_error) => {
            let kind = wire_error.kind.clone();
            let error_opt = wire_error.into_error();
            if error_opt.is_none() {
                tracing::warn!(
                    kind,
                    "unknown error kind in ward-error-bin; mapping by code"
                );
            }
            error_opt
        }
        Err(decode_error) => {
            tracing::warn!(%decode_error, "unreadable ward-error-bin metadata; mapping by code");
            None
        }
    }
}

/// Returns a server adapter's answer: the message on success, else the status for the error.
///
/// Failures are logged here, once, with the request id: internal errors at error level,
/// dependency failures at warn, the caller's own mistakes at debug (STYLE.md §3).
pub fn respond<T>(
    ctx: &CallerContext,
    method: &'static str,
    result: WardResult<T>,
) -> Result<tonic::Response<T>, Status> {
    match result {
        Ok(message) => Ok(tonic::Response::new(message)),
        Err(error) => {
            let request_id = ctx.request_id();
            match error.error_code() {
                ErrorCode::Internal => {
                    tracing::error!(request_id, method, %error, "internal error")
                }
                ErrorCode::Unavailable | ErrorCode::Timeout => {
                    tracing::warn!(request_id, method, %error, "dependency failed")
                }
                ErrorCode::InvalidArgument
                | ErrorCode::Unauthenticated
                | ErrorCode::Forbidden
                | ErrorCode::NotFound
                | ErrorCode::Gone
                | ErrorCode::AlreadyExists
                | ErrorCode::PreconditionFailed
                | ErrorCode::PreconditionRequired
                | ErrorCode::Unprocessable
                | ErrorCode::TooManyRequests => {
                    tracing::debug!(request_id, method, %error, "request rejected")
                }
            }
            Err(status_from_error(&error))
        }
    }
}

/// Wraps `message` in a request carrying the caller's token (`authorization: Bearer <token>`,
/// when it has one), request id (`x-request-id`), client address (`x-client-addr`, when
/// known) and the current span's trace context (`traceparent`, when traced).
///
/// [`CallerContext::system`] never travels: it has no token, so the remote module sees an
/// anonymous caller.
pub fn outgoing_request<T>(message: T, ctx: &CallerContext) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let metadata = request.metadata_mut();
    if let Some(token) = ctx.token() {
        match MetadataValue::try_from(format!("Bearer {token}")) {
            Ok(mut value) => {
                // Keeps the token out of debug output of the metadata.
                value.set_sensitive(true);
                metadata.insert(AUTHORIZATION_METADATA_KEY, value);
            }
            Err(_) => {
                tracing::debug!(
                    request_id = ctx.request_id(),
                    "token not sendable as metadata; calling without it"
                );
            }
        }
    }
    if let Ok(value) = MetadataValue::try_from(ctx.request_id()) {
        metadata.insert(REQUEST_ID_METADATA_KEY, value);
    }
    if let Some(client_addr) = ctx.client_addr()
        && let Ok(value) = MetadataValue::try_from(client_addr)
    {
        metadata.insert(CLIENT_ADDR_METADATA_KEY, value);
    }
    crate::trace_context::inject_into_metadata(metadata);
    request
}

/// Returns who is calling: authenticated when `authorization` holds a valid bearer token, else
/// anonymous. Never rejects: the module's own `ctx.require` answers `Unauthenticated`, and calls
/// that need no token (login) still work.
///
/// The request id is the caller's when it is 1 to 128 visible ASCII characters, else a new UUID v7.
/// The client address (`x-client-addr`) is kept when it is 1 to 64 visible ASCII characters, else
/// ignored. It is only as trustworthy as the peer: the bus is internal, reached by Ward's own
/// processes only.
pub fn caller_from_request<T>(
    request: &tonic::Request<T>,
    verifier: &TokenVerifier,
) -> CallerContext {
    let metadata = request.metadata();
    let request_id = request_id_from_metadata(metadata);
    let ctx = match bearer_token(metadata) {
        None => CallerContext::anonymous(request_id),
        Some(token) => match verifier.verify(token, Utc::now()) {
            Ok(principal) => CallerContext::authenticated(principal, token, request_id),
            Err(_) => {
                tracing::debug!(request_id, "bearer token rejected; calling as anonymous");
                CallerContext::anonymous(request_id)
            }
        },
    };
    match client_addr_from_metadata(metadata) {
        Some(client_addr) => ctx.with_client_addr(client_addr),
        None => ctx,
    }
}

fn client_addr_from_metadata(metadata: &MetadataMap) -> Option<&str> {
    let raw = metadata.get(CLIENT_ADDR_METADATA_KEY)?.to_str().ok()?;
    let is_right_length = (1..=CLIENT_ADDR_MAX_CHARS).contains(&raw.len());
    let is_sane = is_right_length && raw.bytes().all(|byte| byte.is_ascii_graphic());
    is_sane.then_some(raw)
}

fn request_id_from_metadata(metadata: &MetadataMap) -> String {
    let caller_id_opt = metadata
        .get(REQUEST_ID_METADATA_KEY)
        .and_then(|value| value.to_str().ok())
        .filter(|raw| is_sane_request_id(raw));
    match caller_id_opt {
        Some(request_id) => request_id.to_string(),
        None => ward_core::id::new_id().to_string(),
    }
}

/// 1 to 128 visible ASCII characters: safe in logs and headers (as the gateway accepts).
fn is_sane_request_id(raw: &str) -> bool {
    let is_right_length = (1..=REQUEST_ID_MAX_CHARS).contains(&raw.len());
    is_right_length && raw.bytes().all(|byte| byte.is_ascii_graphic())
}

/// Returns the token of `authorization: Bearer <token>` (scheme case-insensitive), if any.
fn bearer_token(metadata: &MetadataMap) -> Option<&str> {
    let value = metadata.get(AUTHORIZATION_METADATA_KEY)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    if scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() {
        Some(token)
    } else {
        None
    }
}

/// Returns a channel balanced over every address of `role`'s peers.
///
/// Connections are made lazily, on the first call, and remade after a failure, so a peer that is
/// down at start-up never fails it: calls answer `Unavailable` until the peer is back. Each
/// endpoint gets [`CONNECT_TIMEOUT`] and [`REQUEST_TIMEOUT`]. An address that is not a usable
/// `http://host:port` URL is `InvalidArgument` naming `peers.<role>`.
pub async fn connect_peer(role: Role, addresses: &[String]) -> WardResult<Channel> {
    let setting = format!("peers.{role}");
    if addresses.is_empty() {
        return Err(WardError::invalid_field(
            &setting,
            format!("{setting} lists no address"),
        ));
    }
    let mut endpoints = Vec::with_capacity(addresses.len());
    for address in addresses {
        endpoints.push(peer_endpoint(&setting, address)?);
    }
    // `balance_list` panics past its buffer of 1024 endpoints; a channel sized to the list cannot.
    let (channel, changes_tx) = Channel::balance_channel(endpoints.len());
    for endpoint in endpoints {
        let key = endpoint.uri().to_string();
        let change = tonic::transport::channel::Change::Insert(key, endpoint);
        if changes_tx.try_send(change).is_err() {
            return Err(WardError::Internal(format!(
                "cannot register a {setting} address with the balancer"
            )));
        }
    }
    Ok(channel)
}

fn peer_endpoint(setting: &str, address: &str) -> WardResult<Endpoint> {
    let invalid =
        |why: &str| WardError::invalid_field(setting, format!("{setting} = {address}: {why}"));
    let endpoint = Endpoint::from_shared(address.trim().to_string())
        .map_err(|error| invalid(&format!("not a URL ({error})")))?;
    let uri = endpoint.uri();
    match uri.scheme_str() {
        Some("http") => {}
        // This build has no TLS client; failing here beats a confusing error on every call.
        Some("https") => {
            return Err(invalid(
                "https peers need TLS, which this build does not include; use http:// on the \
                 private network",
            ));
        }
        _ => {
            return Err(invalid(
                "a peer is a gRPC URL such as http://patients:50051",
            ));
        }
    }
    if uri.host().is_none() {
        return Err(invalid("the URL has no host"));
    }
    Ok(endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT))
}

/// The pauses before the second and third attempt of [`call_with_reconnect`]: short, as a
/// restarted peer usually accepts again at once; the longer second one gives a peer still
/// starting a little more time.
const RECONNECT_DELAYS: [Duration; 2] = [Duration::from_millis(50), Duration::from_millis(250)];

/// Tells whether `status` means the request never reached a server: the channel failed to open a
/// connection for it.
///
/// True only for a transport-made `Unavailable` whose source chain holds tonic's
/// [`tonic::ConnectError`], the marker its connector puts on every failure to connect (refused,
/// timed out, unresolvable). A status a server answered with never has a source, and a Ward
/// server's carries `ward-error-bin`, so neither counts, whatever its code: a call the server may
/// have acted on is never retried.
pub fn is_connect_failure(status: &Status) -> bool {
    if status.code() != Code::Unavailable || status.metadata().get_bin(ERROR_METADATA_KEY).is_some()
    {
        return false;
    }
    let mut source_opt = status.source();
    while let Some(source) = source_opt {
        if source.downcast_ref::<tonic::ConnectError>().is_some() {
            return true;
        }
        source_opt = source.source();
    }
    false
}

/// Runs `attempt` (one call to a peer) up to three times, again only after a connect failure
/// ([`is_connect_failure`]), pausing 50 ms and then 250 ms; otherwise returns its first answer,
/// and after three connect failures the last one.
///
/// Safe for calls that are not idempotent: a connect failure means no byte of the request was
/// sent, so no server can have acted on it. It matters after a peer restarts: the channel
/// reconnects lazily and hands the failure of a connect attempt made while the peer was down to
/// the next call, which would otherwise fail although the peer is back.
pub async fn call_with_reconnect<T, F, Fut>(mut attempt: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let mut delays = RECONNECT_DELAYS.iter();
    loop {
        let status = match attempt().await {
            Ok(value) => return Ok(value),
            Err(status) => status,
        };
        if !is_connect_failure(&status) {
            return Err(status);
        }
        let Some(delay) = delays.next() else {
            return Err(status);
        };
        tracing::debug!(
            status_message = status.message(),
            "peer connection failed before the request was sent; trying again"
        );
        tokio::time::sleep(*delay).await;
    }
}

/// Describes a role's peers for error messages: "patients peer at http://a:50051, http://b:50051".
pub fn peer_description(role: Role, addresses: &[String]) -> String {
    if addresses.is_empty() {
        format!("{role} peer")
    } else {
        format!("{role} peer at {}", addresses.join(", "))
    }
}

/// Asks the standard gRPC health service behind `channel` whether `service_name` (for example
/// `ward.v1.PatientService`) is serving; anything else is `Unavailable`, naming `peer`.
pub async fn check_serving(channel: Channel, service_name: &str, peer: &str) -> WardResult<()> {
    let mut health = HealthClient::new(channel);
    let request = HealthCheckRequest {
        service: service_name.to_string(),
    };
    let answer = tokio::time::timeout(HEALTH_CHECK_TIMEOUT, health.check(request)).await;
    let response = match answer {
        Err(_elapsed) => {
            return Err(WardError::Unavailable(format!(
                "{peer}: no health answer within {} s",
                HEALTH_CHECK_TIMEOUT.as_secs()
            )));
        }
        Ok(Err(status)) if status.code() == Code::NotFound => {
            return Err(WardError::Unavailable(format!(
                "{peer}: does not serve {service_name}"
            )));
        }
        Ok(Err(status)) => {
            return Err(WardError::Unavailable(format!(
                "{peer}: unreachable: {}",
                status.message()
            )));
        }
        Ok(Ok(response)) => response.into_inner(),
    };
    match response.status() {
        ServingStatus::Serving => Ok(()),
        other => Err(WardError::Unavailable(format!(
            "{peer}: {service_name} is not serving ({})",
            other.as_str_name()
        ))),
    }
}

/// Formats an instant for a proto field: RFC 3339 in UTC, with as many fraction digits as needed,
/// so it parses back to the same instant.
pub fn format_timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Parses an RFC 3339 proto field; a bad value is `InvalidArgument` naming `field`.
pub fn parse_timestamp(raw: &str, field: &str) -> WardResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(raw.trim())
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| WardError::invalid_field(field, format!("{field} must be an RFC 3339 time")))
}

/// Parses a `yyyy-MM-dd` proto field; a bad value is `InvalidArgument` naming `field`.
pub fn parse_date(raw: &str, field: &str) -> WardResult<NaiveDate> {
    NaiveDate::parse_from_str(raw.trim(), DATE_FORMAT).map_err(|_| {
        WardError::invalid_field(
            field,
            format!("{field} must be a date in yyyy-MM-dd format"),
        )
    })
}

/// Parses a UUID proto field; a bad value is `InvalidArgument` naming `field`.
pub fn parse_uuid(raw: &str, field: &str) -> WardResult<Uuid> {
    ward_core::id::parse_id(raw, field)
}

/// Turns a failure to read a peer's reply into `Internal`: the peer broke the contract, which is
/// no fault of the caller. The detail names the field, never its value (it may be PHI).
pub fn malformed_reply(peer: &str, error: WardError) -> WardError {
    WardError::Internal(format!("{peer} sent a malformed reply: {error}"))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use chrono::TimeZone;
    use ward_core::UserRole;

    use super::*;
    use crate::auth::UserInfo;
    use crate::token::{TokenIssuer, generate_key_files};

    fn every_kind() -> Vec<WardError> {
        vec![
            WardError::invalid(
                "Name is required; Email should be valid",
                vec![
                    FieldError {
                        field: "name".into(),
                        message: "Name is required".into(),
                    },
                    FieldError {
                        field: "email".into(),
                        message: "Email should be valid".into(),
                    },
                ],
            ),
            WardError::Unauthenticated("a valid bearer token is required".into()),
            WardError::Forbidden("role analyst lacks the right patients:read".into()),
            WardError::NotFound("Patient not found".into()),
            WardError::Gone("Patient was deleted; an admin can restore it".into()),
            WardError::AlreadyExists("Email address already exists".into()),
            WardError::PreconditionFailed("version mismatch".into()),
            WardError::PreconditionRequired("this write needs If-Match".into()),
            WardError::Unprocessable(
                "this Idempotency-Key was used with a different request".into(),
            ),
            WardError::TooManyRequests("slow down".into()),
            WardError::Timeout("database: no answer".into()),
            WardError::Unavailable("database unreachable".into()),
            WardError::Internal("database: disk I/O error at /secret/path".into()),
        ]
    }

    #[test]
    fn every_kind_round_trips_through_a_status_unchanged() {
        for error in every_kind() {
            // Act
            let status = status_from_error(&error);
            let back = error_from_status(&status);

            // Assert
            assert_eq!(back, error);
            assert_eq!(status.code(), grpc_code(error.error_code()));
            assert_eq!(status.message(), error.public_detail());
        }
    }

    #[test]
    fn codes_follow_the_table_and_internal_detail_stays_out_of_the_message() {
        let status = status_from_error(&WardError::Forbidden("no".into()));
        assert_eq!(status.code(), Code::PermissionDenied);
        let status = status_from_error(&WardError::TooManyRequests("no".into()));
        assert_eq!(status.code(), Code::ResourceExhausted);
        let status = status_from_error(&WardError::Internal("secret detail".into()));
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("secret"));
    }

    #[test]
    fn a_status_through_a_second_hop_keeps_its_kind() {
        let first_hop = status_from_error(&WardError::NotFound("Patient not found".into()));
        let relayed = status_from_error(&error_from_status(&first_hop));
        assert_eq!(
            error_from_status(&relayed),
            WardError::NotFound("Patient not found".into())
        );
    }

    #[test]
    fn a_status_without_the_entry_maps_by_code() {
        let cases = [
            (Code::Cancelled, ErrorCode::Timeout),
            (Code::DeadlineExceeded, ErrorCode::Timeout),
            (Code::Unavailable, ErrorCode::Unavailable),
            (Code::NotFound, ErrorCode::Internal),
            (Code::Unauthenticated, ErrorCode::Internal),
            (Code::Unknown, ErrorCode::Internal),
            (Code::Internal, ErrorCode::Internal),
        ];
        for (code, expected) in cases {
            let error = error_from_peer_status(&Status::new(code, "boom"), "patients peer at x");
            assert_eq!(error.error_code(), expected, "{code:?}");
            assert!(error.to_string().contains("patients peer at x"), "{error}");
        }
    }

    #[test]
    fn a_connection_broken_mid_call_is_unavailable_not_internal() {
        // What tonic's transport makes of a reset: a status carrying the I/O error as its source.
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let status = Status::from_error(Box::new(reset));
        assert_eq!(status.code(), Code::Unknown);
        let error = error_from_peer_status(&status, "patients peer at x");
        assert!(matches!(error, WardError::Unavailable(_)), "{error}");
        assert!(error.to_string().contains("connection broke"), "{error}");
    }

    #[test]
    fn a_garbled_entry_falls_back_to_the_code() {
        let mut metadata = MetadataMap::new();
        metadata.insert_bin(ERROR_METADATA_KEY, MetadataValue::from_bytes(b"not json"));
        let status = Status::with_metadata(Code::Unavailable, "down", metadata);
        assert!(matches!(
            error_from_status(&status),
            WardError::Unavailable(_)
        ));
    }

    #[test]
    fn the_wire_form_names_the_kind() {
        let error = WardError::invalid_field("email", "Email should be valid");
        let wire = serde_json::to_value(WireError::from_error(&error)).unwrap();
        assert_eq!(wire["kind"], "invalid_argument");
        assert_eq!(wire["errors"][0]["field"], "email");
        let not_found = serde_json::to_value(WireError::from_error(&WardError::NotFound(
            "Patient not found".into(),
        )))
        .unwrap();
        assert_eq!(not_found["kind"], "not_found");
        assert_eq!(not_found["detail"], "Patient not found");
        let gone_status = status_from_error(&WardError::Gone("Patient was deleted".into()));
        assert_eq!(gone_status.code(), Code::NotFound);
        let gone = serde_json::to_value(WireError::from_error(&WardError::Gone(
            "Patient was deleted".into(),
        )))
        .unwrap();
        assert_eq!(gone["kind"], "gone");
    }

    #[test]
    fn an_unknown_kind_falls_back_to_the_code() {
        let mut metadata = MetadataMap::new();
        let json = br#"{"kind":"teapot","detail":"short and stout"}"#;
        metadata.insert_bin(ERROR_METADATA_KEY, MetadataValue::from_bytes(json));
        let status = Status::with_metadata(Code::DeadlineExceeded, "late", metadata);
        assert!(matches!(error_from_status(&status), WardError::Timeout(_)));
    }

    /// A fresh key pair in its own temporary folder, removed afterwards.
    fn issuer_and_verifier() -> (TokenIssuer, TokenVerifier) {
        let folder = std::env::temp_dir().join(format!("ward-grpc-test-{}", Uuid::new_v4()));
        let private_path = folder.join("auth.key");
        let public_path = folder.join("auth.pub");
        generate_key_files(&private_path, &public_path).unwrap();
        let issuer = TokenIssuer::from_file(&private_path).unwrap();
        let verifier = TokenVerifier::from_file(&public_path).unwrap();
        let _ = std::fs::remove_dir_all(&folder);
        (issuer, verifier)
    }

    fn request_with(
        authorization_opt: Option<&str>,
        request_id_opt: Option<&str>,
    ) -> tonic::Request<()> {
        let mut request = tonic::Request::new(());
        if let Some(authorization) = authorization_opt {
            let value = MetadataValue::try_from(authorization).unwrap();
            request
                .metadata_mut()
                .insert(AUTHORIZATION_METADATA_KEY, value);
        }
        if let Some(request_id) = request_id_opt {
            let value = MetadataValue::try_from(request_id).unwrap();
            request
                .metadata_mut()
                .insert(REQUEST_ID_METADATA_KEY, value);
        }
        request
    }

    #[test]
    fn no_token_or_a_garbage_token_is_anonymous() {
        let (_, verifier) = issuer_and_verifier();
        for authorization_opt in [
            None,
            Some("Bearer garbage"),
            Some("Basic abc"),
            Some("Bearer "),
        ] {
            let ctx =
                caller_from_request(&request_with(authorization_opt, Some("req-1")), &verifier);
            assert!(ctx.principal().is_none(), "{authorization_opt:?}");
            assert!(!ctx.is_system());
            assert_eq!(ctx.request_id(), "req-1");
            assert!(matches!(
                ctx.require(ward_core::Right::PatientsRead),
                Err(WardError::Unauthenticated(_))
            ));
        }
    }

    #[test]
    fn a_valid_token_is_authenticated_and_forwarded_again() {
        // Arrange
        let (issuer, verifier) = issuer_and_verifier();
        let user = UserInfo {
            id: Uuid::now_v7(),
            email: "clinician@ward.test".into(),
            role: UserRole::Clinician,
            disabled: false,
        };
        let session = issuer
            .issue(&user, Uuid::now_v7(), 600, Utc::now())
            .unwrap();
        let authorization = format!("bearer {}", session.token);

        // Act
        let ctx = caller_from_request(
            &request_with(Some(&authorization), Some("req-2")),
            &verifier,
        );

        // Assert
        let principal = ctx.principal().unwrap();
        assert_eq!(principal.user_id, user.id);
        assert_eq!(principal.role, UserRole::Clinician);
        assert_eq!(ctx.token(), Some(session.token.as_str()));
        let forwarded = outgoing_request((), &ctx);
        let again = caller_from_request(&forwarded, &verifier);
        let again_principal = again.principal().unwrap();
        assert_eq!(again_principal.user_id, principal.user_id);
        assert_eq!(again_principal.session_id, principal.session_id);
        assert_eq!(again_principal.rights, principal.rights);
        assert_eq!(again.request_id(), "req-2");
    }

    #[test]
    fn a_token_signed_by_another_key_is_anonymous() {
        let (issuer, _) = issuer_and_verifier();
        let (_, other_verifier) = issuer_and_verifier();
        let user = UserInfo {
            id: Uuid::now_v7(),
            email: "admin@ward.test".into(),
            role: UserRole::Admin,
            disabled: false,
        };
        let session = issuer
            .issue(&user, Uuid::now_v7(), 600, Utc::now())
            .unwrap();
        let authorization = format!("Bearer {}", session.token);
        let ctx = caller_from_request(&request_with(Some(&authorization), None), &other_verifier);
        assert!(ctx.principal().is_none());
    }

    #[test]
    fn insane_request_ids_are_replaced() {
        let (_, verifier) = issuer_and_verifier();
        let too_long = "x".repeat(129);
        for request_id_opt in [None, Some(""), Some("has space"), Some(too_long.as_str())] {
            let ctx = caller_from_request(&request_with(None, request_id_opt), &verifier);
            assert!(
                Uuid::parse_str(ctx.request_id()).is_ok(),
                "{request_id_opt:?}"
            );
        }
    }

    #[test]
    fn the_client_addr_travels_and_round_trips() {
        let (_, verifier) = issuer_and_verifier();
        let ctx = CallerContext::anonymous("req-3").with_client_addr("2001:db8::1");
        let forwarded = outgoing_request((), &ctx);
        assert_eq!(
            forwarded.metadata().get(CLIENT_ADDR_METADATA_KEY).unwrap(),
            "2001:db8::1"
        );
        let again = caller_from_request(&forwarded, &verifier);
        assert_eq!(again.client_addr(), Some("2001:db8::1"));
        assert_eq!(again.request_id(), "req-3");

        let without = outgoing_request((), &CallerContext::anonymous("req-4"));
        assert!(without.metadata().get(CLIENT_ADDR_METADATA_KEY).is_none());
        assert_eq!(caller_from_request(&without, &verifier).client_addr(), None);
    }

    #[test]
    fn insane_client_addrs_are_ignored() {
        let (_, verifier) = issuer_and_verifier();
        let too_long = "1".repeat(65);
        let longest = "1".repeat(64);
        for (raw, expected_opt) in [
            ("", None),
            ("has space", None),
            (too_long.as_str(), None),
            (longest.as_str(), Some(longest.as_str())),
            ("192.0.2.1", Some("192.0.2.1")),
        ] {
            let mut request = request_with(None, Some("req-5"));
            let value = MetadataValue::try_from(raw).unwrap();
            request
                .metadata_mut()
                .insert(CLIENT_ADDR_METADATA_KEY, value);
            let ctx = caller_from_request(&request, &verifier);
            assert_eq!(ctx.client_addr(), expected_opt, "{raw:?}");
        }
    }

    #[test]
    fn system_context_travels_without_a_token() {
        let request = outgoing_request((), &CallerContext::system("demo"));
        assert!(request.metadata().get(AUTHORIZATION_METADATA_KEY).is_none());
        assert_eq!(
            request.metadata().get(REQUEST_ID_METADATA_KEY).unwrap(),
            "system:demo"
        );
    }

    #[tokio::test]
    async fn bad_peer_addresses_name_the_setting() {
        for address in ["not a url", "ftp://x:1", "https://patients:50051"] {
            let error = connect_peer(Role::Patients, &[address.to_string()])
                .await
                .unwrap_err();
            assert_eq!(error.error_code(), ErrorCode::InvalidArgument, "{address}");
            assert_eq!(error.field_errors()[0].field, "peers.patients");
        }
        let error = connect_peer(Role::Billing, &[]).await.unwrap_err();
        assert_eq!(error.field_errors()[0].field, "peers.billing");
    }

    #[tokio::test]
    async fn several_peers_connect_lazily() {
        let addresses = vec![
            "http://127.0.0.1:1".to_string(),
            "http://127.0.0.1:2".to_string(),
        ];
        assert!(connect_peer(Role::Auth, &addresses).await.is_ok());
    }

    /// The status a call gets from a lazy channel to a port nobody listens on.
    async fn real_connect_failure() -> Status {
        let channel = Endpoint::from_static("http://127.0.0.1:1").connect_lazy();
        let request = HealthCheckRequest {
            service: String::new(),
        };
        HealthClient::new(channel)
            .check(request)
            .await
            .expect_err("nothing listens on port 1")
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_failure() {
        let status = real_connect_failure().await;
        assert_eq!(status.code(), Code::Unavailable);
        assert!(is_connect_failure(&status), "{status:?}");

        // The balanced channel the modules use reports it the same way.
        let addresses = vec!["http://127.0.0.1:1".to_string()];
        let channel = connect_peer(Role::Patients, &addresses).await.unwrap();
        let request = HealthCheckRequest {
            service: String::new(),
        };
        let status = HealthClient::new(channel).check(request).await.unwrap_err();
        assert!(is_connect_failure(&status), "{status:?}");
    }

    #[test]
    fn statuses_a_server_answers_are_not_connect_failures() {
        let from_module = status_from_error(&WardError::Unavailable("database down".into()));
        assert!(!is_connect_failure(&from_module));
        assert!(!is_connect_failure(&Status::unavailable("x")));
        assert!(!is_connect_failure(&Status::internal("tcp connect error")));
    }

    #[tokio::test]
    async fn a_connect_failure_is_retried_until_the_call_succeeds() {
        let attempts = AtomicUsize::new(0);
        let result = call_with_reconnect(|| {
            let attempt = attempts.fetch_add(1, Ordering::SeqCst);
            async move {
                if attempt == 0 {
                    Err(real_connect_failure().await)
                } else {
                    Ok(attempt)
                }
            }
        })
        .await;
        assert_eq!(result.unwrap(), 1);
        assert_eq!(attempts.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn retries_stop_after_three_connect_failures() {
        let attempts = AtomicUsize::new(0);
        let result: Result<(), Status> = call_with_reconnect(|| {
            attempts.fetch_add(1, Ordering::SeqCst);
            async { Err(real_connect_failure().await) }
        })
        .await;
        assert!(is_connect_failure(&result.unwrap_err()));
        assert_eq!(attempts.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_status_from_a_server_is_not_retried() {
        let attempts = AtomicUsize::new(0);
        let result: Result<(), Status> = call_with_reconnect(|| {
            attempts.fetch_add(1, Ordering::SeqCst);
            async { Err(status_from_error(&WardError::Unavailable("db down".into()))) }
        })
        .await;
        assert_eq!(result.unwrap_err().code(), Code::Unavailable);
        assert_eq!(attempts.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_peer_restarted_on_its_port_is_reached_again() {
        // Arrange: a port that refuses, then a health server on it, as after a restart.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let address = format!("http://127.0.0.1:{port}");
        let channel = connect_peer(Role::Patients, &[address]).await.unwrap();
        let check = || {
            let mut health = HealthClient::new(channel.clone());
            async move {
                let request = HealthCheckRequest {
                    service: String::new(),
                };
                health.check(request).await
            }
        };
        let down = check().await.unwrap_err();
        assert!(is_connect_failure(&down), "{down:?}");
        let incoming =
            tonic::transport::server::TcpIncoming::bind(([127, 0, 0, 1], port).into()).unwrap();
        let (_reporter, health_service) = tonic_health::server::health_reporter();
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(health_service)
                .serve_with_incoming(incoming),
        );

        // Act
        let answer = call_with_reconnect(check).await;

        // Assert
        assert_eq!(
            answer.unwrap().into_inner().status(),
            ServingStatus::Serving
        );
        server.abort();
    }

    #[test]
    fn timestamps_round_trip_exactly() {
        let at = Utc.timestamp_opt(1_700_000_000, 123_456_000).unwrap();
        assert_eq!(
            parse_timestamp(&format_timestamp(at), "openedAt").unwrap(),
            at
        );
        let error = parse_timestamp("yesterday", "openedAt").unwrap_err();
        assert_eq!(error.field_errors()[0].field, "openedAt");
        assert!(parse_date("2024-02-30", "date").is_err());
        assert!(parse_uuid("nope", "patientId").is_err());
    }
}
