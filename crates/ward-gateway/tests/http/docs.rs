use actix_web::test::TestRequest;
use serde_json::{Value, json};

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
    // A patient registered through FHIR may lack both: always answered, possibly null.
    let required = spec["components"]["schemas"]["Patient"]["required"]
        .as_array()
        .unwrap();
    for field in ["email", "address"] {
        assert!(required.contains(&serde_json::json!(field)), "{field}");
        assert_eq!(
            patient_fields[field]["type"],
            serde_json::json!(["string", "null"]),
            "{field}"
        );
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

#[actix_web::test]
async fn every_route_is_described_with_its_methods() {
    let app = api_app!();

    let spec = send(&app, TestRequest::get().uri("/openapi.json").to_request())
        .await
        .json();

    let expected = [
        ("/auth/login", "post", "200"),
        ("/auth/refresh", "post", "200"),
        ("/auth/logout", "post", "204"),
        ("/auth/password", "post", "204"),
        ("/auth/narrow", "post", "200"),
        ("/api/users", "get", "200"),
        ("/api/users", "post", "201"),
        ("/api/users/{id}", "patch", "200"),
        ("/api/patients/{id}/restore", "post", "200"),
        ("/api/patients/{id}/purge", "post", "204"),
    ];
    for (path, method, success) in expected {
        let operation = &spec["paths"][path][method];
        assert!(
            operation["responses"][success].is_object(),
            "{method} {path}"
        );
    }
    let login_fields = &spec["components"]["schemas"]["LoginResponse"]["properties"];
    assert!(login_fields["refreshToken"].is_object());
    let patch_body = &spec["paths"]["/api/users/{id}"]["patch"]["requestBody"]["content"];
    assert!(patch_body["application/merge-patch+json"].is_object());
    assert!(spec["paths"]["/auth/refresh"]["post"]["security"].is_null());
    assert_eq!(
        spec["paths"]["/auth/logout"]["post"]["security"][0]["bearer"],
        serde_json::json!([])
    );
}

#[actix_web::test]
async fn soft_deleted_patients_are_documented_as_410_on_every_record_operation() {
    let app = api_app!();

    let spec = send(&app, TestRequest::get().uri("/openapi.json").to_request())
        .await
        .json();

    let record = &spec["paths"]["/api/patients/{id}"];
    for method in ["get", "put", "patch", "delete"] {
        assert_eq!(
            record[method]["responses"]["410"]["$ref"], "#/components/responses/Gone",
            "{method}"
        );
    }
    let gone = &spec["components"]["responses"]["Gone"];
    assert!(gone["content"]["application/problem+json"].is_object());
    let restore = &spec["paths"]["/api/patients/{id}/restore"]["post"];
    for status in ["200", "404", "409", "412", "428"] {
        assert!(restore["responses"][status].is_object(), "{status}");
    }
    // Every change that honours If-Match documents the 428 a configured server answers.
    for method in ["put", "patch", "delete"] {
        assert_eq!(
            record[method]["responses"]["428"]["$ref"],
            "#/components/responses/PreconditionRequired",
            "{method}"
        );
    }
    // Restore and purge take no body, so there is no schema to close.
    assert!(restore["requestBody"].is_null());
    let purge = &spec["paths"]["/api/patients/{id}/purge"];
    assert!(purge["post"]["responses"]["403"].is_object());
    assert!(purge["delete"].is_null());
}

/// The object schema of a request body, inside the `allOf` of an at-least-one-member body.
fn body_object<'a>(spec: &'a Value, name: &str) -> &'a Value {
    let schema = &spec["components"]["schemas"][name];
    match schema.get("allOf") {
        Some(all_of) => &all_of[0],
        None => schema,
    }
}

#[actix_web::test]
async fn every_request_body_schema_is_closed_to_unknown_members() {
    let app = api_app!();

    let spec = send(&app, TestRequest::get().uri("/openapi.json").to_request())
        .await
        .json();

    let mut num_bodies = 0;
    for (path, path_item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in path_item.as_object().unwrap() {
            let Some(content) = operation["requestBody"]["content"].as_object() else {
                continue;
            };
            for media in content.values() {
                let reference = media["schema"]["$ref"].as_str().unwrap();
                let name = reference.trim_start_matches("#/components/schemas/");
                let object = body_object(&spec, name);
                assert_eq!(
                    object["additionalProperties"],
                    Value::Bool(false),
                    "{method} {path}: {name}"
                );
                num_bodies += 1;
            }
        }
    }
    // login, refresh, password, narrow, patients POST, PUT and PATCH, merge, unmerge, users
    // POST, PATCH twice; billing's invoice, void, payment, refund and adjustment.
    assert_eq!(num_bodies, 17);
    assert_eq!(
        spec["components"]["schemas"]["RefreshRequest"]["additionalProperties"],
        Value::Bool(false)
    );
}

#[actix_web::test]
async fn request_body_schemas_state_the_bounds_the_parsers_enforce() {
    let app = api_app!();

    let spec = send(&app, TestRequest::get().uri("/openapi.json").to_request())
        .await
        .json();

    let schemas = &spec["components"]["schemas"];
    let refresh = &schemas["RefreshRequest"];
    assert_eq!(refresh["required"], json!(["refreshToken"]));
    assert_eq!(refresh["properties"]["refreshToken"]["minLength"], 1);
    assert_eq!(refresh["properties"]["refreshToken"]["maxLength"], 512);
    let password = &schemas["PasswordChangeRequest"];
    assert_eq!(
        password["required"],
        json!(["currentPassword", "newPassword"])
    );
    let narrow = body_object(&spec, "NarrowRequest");
    assert_eq!(narrow["properties"]["patientId"]["format"], "uuid");
    let expires_in = &narrow["properties"]["expiresInSeconds"];
    assert_eq!(expires_in["minimum"], 1);
    assert_eq!(expires_in["maximum"], 86400);
    assert!(narrow.get("required").is_none());
    // An empty narrowing or patch is invalid by the schema as well: one member must count.
    for (name, members) in [
        (
            "NarrowRequest",
            vec!["readOnly", "patientId", "expiresInSeconds"],
        ),
        ("UserPatchRequest", vec!["role", "disabled"]),
    ] {
        let alternatives = schemas[name]["allOf"][1]["anyOf"].as_array().unwrap();
        let required: Vec<&str> = alternatives
            .iter()
            .map(|alternative| alternative["required"][0].as_str().unwrap())
            .collect();
        assert_eq!(required, members, "{name}");
        for member in members {
            assert!(
                body_object(&spec, name)["properties"][member].is_object(),
                "{name}.{member}"
            );
        }
    }
    assert_eq!(
        schemas["NarrowRequest"]["allOf"][1]["anyOf"][0]["properties"]["readOnly"]["enum"],
        json!([true])
    );
    let new_user = &schemas["NewUserRequest"];
    assert_eq!(new_user["required"], json!(["email", "password", "role"]));
    assert_eq!(new_user["properties"]["email"]["maxLength"], 254);
}

#[actix_web::test]
async fn patient_bodies_state_the_domain_lengths_and_put_tolerates_the_own_id() {
    let app = api_app!();

    let spec = send(&app, TestRequest::get().uri("/openapi.json").to_request())
        .await
        .json();

    let schemas = &spec["components"]["schemas"];
    let create_ref = &spec["paths"]["/api/patients"]["post"]["requestBody"]["content"]["application/json"]
        ["schema"]["$ref"];
    let update_ref = &spec["paths"]["/api/patients/{id}"]["put"]["requestBody"]["content"]["application/json"]
        ["schema"]["$ref"];
    assert_eq!(create_ref, "#/components/schemas/PatientInput");
    assert_eq!(update_ref, "#/components/schemas/PatientUpdate");
    let create = &schemas["PatientInput"];
    let update = &schemas["PatientUpdate"];
    assert_eq!(
        create["required"],
        json!(["name", "email", "address", "dateOfBirth", "registeredDate"])
    );
    assert_eq!(
        update["required"],
        json!(["name", "email", "address", "dateOfBirth"])
    );
    for schema in [create, update] {
        let fields = &schema["properties"];
        assert_eq!(
            fields["name"]["maxLength"],
            ward_bus::patients::NAME_MAX_CHARS
        );
        assert_eq!(
            fields["email"]["maxLength"],
            ward_bus::patients::EMAIL_MAX_CHARS
        );
        assert_eq!(
            fields["address"]["maxLength"],
            ward_bus::patients::ADDRESS_MAX_CHARS
        );
        assert_eq!(fields["dateOfBirth"]["format"], "date");
    }
    assert!(create["properties"].get("id").is_none());
    assert_eq!(update["properties"]["id"]["readOnly"], true);
    assert_eq!(update["properties"]["id"]["format"], "uuid");
}

#[actix_web::test]
async fn the_patient_search_documents_every_parameter_with_its_shape() {
    let app = api_app!();

    let reply = send(&app, TestRequest::get().uri("/openapi.json").to_request()).await;

    let spec = reply.json();
    let parameters = spec["paths"]["/api/patients"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let by_name = |name: &str| -> &Value {
        parameters
            .iter()
            .find(|parameter| parameter["name"] == name)
            .unwrap_or_else(|| panic!("{name} is not documented"))
    };
    for name in [
        "name",
        "email",
        "birthDate",
        "identifier",
        "sort",
        "limit",
        "cursor",
        "total",
    ] {
        assert_eq!(by_name(name)["in"], "query", "{name}");
    }
    assert_eq!(parameters.len(), 8);
    let sort_values = by_name("sort")["schema"].to_string();
    for value in [
        "\"name\"",
        "\"-name\"",
        "\"-birthDate\"",
        "\"registeredDate\"",
    ] {
        assert!(sort_values.contains(value), "{value} in {sort_values}");
    }
    assert!(by_name("total")["schema"].to_string().contains("accurate"));
    assert_eq!(by_name("birthDate")["explode"], true);
    let bound = &spec["components"]["schemas"]["BirthDateBoundParam"];
    assert_eq!(bound["pattern"], "^(eq|ge|le)?[0-9]{4}-[0-9]{2}-[0-9]{2}$");
    let page = &spec["components"]["schemas"]["PatientPage"];
    assert!(page["properties"]["total"].is_object());
    let required = page["required"].to_string();
    assert!(!required.contains("total"), "{required}");
}

#[actix_web::test]
async fn the_create_documents_its_idempotency_and_conditional_headers() {
    let app = api_app!();

    let spec = send(&app, TestRequest::get().uri("/openapi.json").to_request())
        .await
        .json();

    let create = &spec["paths"]["/api/patients"]["post"];
    let mut headers = Vec::new();
    for parameter in create["parameters"].as_array().unwrap() {
        assert_eq!(parameter["in"], "header");
        headers.push(parameter["name"].as_str().unwrap());
    }
    assert_eq!(headers, ["Idempotency-Key", "If-None-Exist"]);
    assert!(create["responses"]["200"]["content"]["application/json"].is_object());
    assert!(create["responses"]["201"].is_object());
    assert_eq!(
        create["responses"]["422"]["$ref"],
        "#/components/responses/Unprocessable"
    );
}

#[actix_web::test]
async fn the_dashboard_is_served_from_the_binary_under_a_strict_csp() {
    let app = api_app!();

    let page = send(&app, TestRequest::get().uri("/dashboard").to_request()).await;
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let html = String::from_utf8(page.body.to_vec()).unwrap();
    assert!(!html.contains("https://"), "no CDN");
    assert!(
        !html.contains("<script>"),
        "no inline script: the CSP would block it"
    );

    for (uri, content_type) in [
        ("/dashboard/dashboard.js", "text/javascript"),
        ("/dashboard/dashboard.css", "text/css"),
    ] {
        let asset = send(&app, TestRequest::get().uri(uri).to_request()).await;
        assert_eq!(asset.status, 200, "{uri}");
        assert!(
            asset
                .header("content-type")
                .unwrap()
                .starts_with(content_type),
            "{uri}"
        );
        assert!(html.contains(uri), "the page loads {uri}");
        assert!(
            !String::from_utf8(asset.body.to_vec())
                .unwrap()
                .contains("https://")
        );
    }

    let missing = send(
        &app,
        TestRequest::get().uri("/dashboard/other.js").to_request(),
    )
    .await;
    assert_eq!(missing.status, 404);
}
