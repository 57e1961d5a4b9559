use actix_web::test::TestRequest;

use crate::api_app;
use crate::helpers::send;

#[actix_web::test]
async fn openapi_json_describes_the_api_in_openapi_3_1() {
    let app = api_app!();

    let reply = send(&app, TestRequest::get().uri("/openapi.json").to_request()).await;

    assert_eq!(reply.status, 200);
    let spec = reply.json();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    let create = &spec["paths"]["/api/patients"]["post"];
    assert!(create.is_object());
    assert!(create["responses"]["201"].is_object());
    for (path, method) in [
        ("/auth/login", "post"),
        ("/api/patients", "post"),
        ("/api/patients/{id}", "put"),
    ] {
        let unsupported = &spec["paths"][path][method]["responses"]["415"];
        assert!(unsupported.is_object(), "{method} {path}");
    }
    let input_fields = spec["components"]["schemas"]["PatientInput"]["properties"]
        .as_object()
        .unwrap();
    assert!(!input_fields.contains_key("unknown"));
    assert_eq!(create["security"][0]["bearer"], serde_json::json!([]));
    assert!(spec["paths"]["/api/patients/{id}"]["delete"].is_object());
    assert_eq!(
        spec["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let bad_request = &spec["components"]["responses"]["BadRequest"];
    assert!(bad_request["content"]["application/problem+json"].is_object());
    let patient_fields = &spec["components"]["schemas"]["Patient"]["properties"];
    for field in [
        "id",
        "name",
        "email",
        "address",
        "dateOfBirth",
        "registeredDate",
    ] {
        assert!(patient_fields[field].is_object(), "{field}");
    }
}

#[actix_web::test]
async fn the_served_description_is_the_public_one() {
    let app = api_app!();

    let reply = send(&app, TestRequest::get().uri("/openapi.json").to_request()).await;

    let expected = serde_json::to_value(ward_gateway::openapi()).unwrap();
    assert_eq!(reply.json(), expected);
}

#[actix_web::test]
async fn docs_is_a_self_contained_html_page() {
    let app = api_app!();

    let reply = send(&app, TestRequest::get().uri("/docs").to_request()).await;

    assert_eq!(reply.status, 200);
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let page = String::from_utf8(reply.body.to_vec()).unwrap();
    assert!(page.contains("openapi.json"));
    assert!(!page.contains("<script src"));
    assert!(!page.contains("<link"));
    assert!(!page.contains("https://"));
}
