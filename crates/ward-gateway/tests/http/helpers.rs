//! Building the app under test and reading its replies.

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::HeaderMap;
use actix_web::test;
use actix_web::web::Bytes;
use serde_json::Value;

/// Builds the public API over the fakes; `$health` decides readiness.
#[macro_export]
macro_rules! api_app {
    () => {
        $crate::api_app!($crate::fakes::fakes(false), $crate::helpers::ready_health())
    };
    ($backends:expr, $health:expr) => {
        $crate::api_app!($backends, $health, ward_gateway::GatewayOptions::default())
    };
    ($backends:expr, $health:expr, $options:expr) => {
        actix_web::test::init_service(actix_web::App::new().configure(
            ward_gateway::api_config_with_backends($backends, $health, $options),
        ))
        .await
    };
}

pub fn ready_health() -> ward_bus::health::Health {
    let health = ward_bus::health::Health::default();
    health.set("gateway", ward_bus::health::ComponentState::Ready);
    health
}

/// A response, read whole.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "body is not JSON ({error}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Asserts an RFC 9457 problem with `status` whose request id matches the header, and
    /// returns its body.
    pub fn problem(&self, status: u16) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json")
        );
        let problem = self.json();
        assert_eq!(problem["status"], status);
        assert!(
            problem["type"]
                .as_str()
                .unwrap()
                .starts_with("https://ward.dev/problems/")
        );
        assert!(problem["title"].is_string());
        assert!(problem["detail"].is_string());
        let request_id = self.header("x-request-id").expect("x-request-id echoed");
        assert_eq!(problem["requestId"], request_id);
        problem
    }

    /// The `(field, message)` pairs of a validation problem.
    pub fn field_errors(&self) -> Vec<(String, String)> {
        let problem = self.problem(400);
        let mut pairs = Vec::new();
        for error in problem["errors"].as_array().expect("errors listed") {
            pairs.push((
                error["field"].as_str().unwrap().to_string(),
                error["message"].as_str().unwrap().to_string(),
            ));
        }
        pairs
    }
}

pub async fn send<S, R, B>(app: &S, request: R) -> Reply
where
    S: Service<R, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let response = test::call_service(app, request).await;
    let status = response.status();
    let headers = response.headers().clone();
    let body = test::read_body(response).await;
    Reply {
        status,
        headers,
        body,
    }
}
