//! The FHIR R4 Patient endpoints over the fakes: mapping both ways, OperationOutcomes for every
//! failure, media types, 405s and the paged search.

use std::sync::Arc;

use actix_web::test::TestRequest;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::api_app;
use crate::fakes::{ADMIN_TOKEN, ANALYST_TOKEN, FakePatients, fakes_with_store};
use crate::helpers::{Reply, ready_health, send};

const FHIR_JSON: &str = "application/fhir+json";

fn as_admin(request: TestRequest) -> TestRequest {
    request.insert_header(("authorization", format!("Bearer {ADMIN_TOKEN}")))
}

fn fhir_body(request: TestRequest, body: &Value) -> TestRequest {
    request
        .insert_header(("content-type", "application/fhir+json; fhirVersion=4.0"))
        .set_payload(body.to_string())
}

fn chalmers() -> Value {
    json!({
        "resourceType": "Patient",
        "id": "ignored-on-create",
        "active": true,
        "gender": "male",
        "identifier": [{"system": "urn:oid:1.2.36.146.595.217.0.1", "value": "12345"}],
        "name": [{"use": "official", "family": "Chalmers", "given": ["Peter", "James"]}],
        "telecom": [
            {"system": "phone", "value": "(03) 5555 6473"},
            {"system": "email", "value": "peter@example.org"}
        ],
        "address": [{"line": ["534 Erewhon St"], "city": "PleasantVille", "postalCode": "3999"}],
        "birthDate": "1974-12-25"
    })
}

/// Asserts an `OperationOutcome` with `status` whose first issue has `code`; returns it.
fn assert_outcome(reply: &Reply, status: u16, code: &str) -> Value {
    assert_eq!(
        reply.status.as_u16(),
        status,
        "body: {}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.header("content-type"), Some(FHIR_JSON));
    let outcome = reply.json();
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    assert_eq!(outcome["issue"][0]["severity"], "error");
    assert_eq!(outcome["issue"][0]["code"], code, "{outcome}");
    assert!(outcome["issue"][0]["diagnostics"].is_string());
    outcome
}

#[actix_web::test]
async fn metadata_needs_no_token_and_describes_patient() {
    let app = api_app!();
    let request = TestRequest::get().uri("/fhir/metadata").to_request();

    let reply = send(&app, request).await;

    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some(FHIR_JSON));
    let statement = reply.json();
    assert_eq!(statement["resourceType"], "CapabilityStatement");
    assert_eq!(statement["fhirVersion"], "4.0.1");
    assert_eq!(statement["kind"], "instance");
    let patient = &statement["rest"][0]["resource"][0];
    assert_eq!(patient["type"], "Patient");
    let codes: Vec<&str> = patient["interaction"]
        .as_array()
        .unwrap()
        .iter()
        .map(|interaction| interaction["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "read",
            "vread",
            "update",
            "delete",
            "history-instance",
            "create",
            "search-type"
        ]
    );
}

#[actix_web::test]
async fn a_created_patient_maps_both_ways() {
    // Arrange
    let app = api_app!();

    // Act
    let created = send(
        &app,
        fhir_body(
            as_admin(TestRequest::post().uri("/fhir/Patient")),
            &chalmers(),
        )
        .to_request(),
    )
    .await;

    // Assert: the FHIR answer
    assert_eq!(
        created.status,
        201,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    assert_eq!(created.header("content-type"), Some(FHIR_JSON));
    assert_eq!(created.header("etag"), Some("W/\"1\""));
    assert_eq!(created.header("cache-control"), Some("no-store"));
    let patient = created.json();
    let id = patient["id"].as_str().unwrap().to_string();
    assert_ne!(id, "ignored-on-create");
    assert_eq!(
        created.header("location"),
        Some(format!("/fhir/Patient/{id}/_history/1").as_str())
    );
    assert_eq!(patient["resourceType"], "Patient");
    assert_eq!(patient["meta"]["versionId"], "1");
    // Every element is kept as written: Ward's values (the name "Peter James Chalmers", the
    // email, the address "534 Erewhon St, PleasantVille, 3999") say the same.
    for element in ["name", "telecom", "address", "active"] {
        assert_eq!(patient[element], chalmers()[element], "{element}");
    }
    assert_eq!(patient["birthDate"], "1974-12-25");
    // Not modelled, so kept verbatim.
    assert_eq!(patient["gender"], "male");

    // Assert: the same record through the REST API, and read back as FHIR
    let rest = send(
        &app,
        as_admin(TestRequest::get().uri(&format!("/api/patients/{id}"))).to_request(),
    )
    .await
    .json();
    assert_eq!(rest["name"], "Peter James Chalmers");
    assert_eq!(rest["dateOfBirth"], "1974-12-25");
    let read = send(
        &app,
        as_admin(TestRequest::get().uri(&format!("/fhir/Patient/{id}"))).to_request(),
    )
    .await;
    assert_eq!(read.status, 200);
    assert_eq!(read.header("etag"), Some("W/\"1\""));
    assert_eq!(read.json(), patient);
}

#[actix_web::test]
async fn a_one_word_name_is_kept_as_written_and_plain_json_is_accepted() {
    let app = api_app!();
    let mut body = chalmers();
    body["name"] = json!([{"text": "Cher"}]);
    let request = as_admin(TestRequest::post().uri("/fhir/Patient"))
        .insert_header(("content-type", "application/json"))
        .set_payload(body.to_string())
        .to_request();

    let reply = send(&app, request).await;

    assert_eq!(reply.status, 201);
    let patient = reply.json();
    // Ward's name for her is "Cher" too, so the element is answered as written.
    assert_eq!(patient["name"], json!([{"text": "Cher"}]));
}

#[actix_web::test]
async fn only_a_missing_birth_date_is_an_issue_what_ward_does_not_model_is_kept() {
    let patients = Arc::new(FakePatients::default());
    let app = api_app!(fakes_with_store(false, patients.clone()), ready_health());
    let body = json!({
        "resourceType": "Patient",
        "photo": [{"contentType": "image/png"}],
        "deceasedBoolean": false,
        "name": [{"family": "Chalmers"}]
    });

    let reply = send(
        &app,
        fhir_body(as_admin(TestRequest::post().uri("/fhir/Patient")), &body).to_request(),
    )
    .await;

    let outcome = assert_outcome(&reply, 400, "invalid");
    let expressions: Vec<&str> = outcome["issue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|issue| issue["expression"][0].as_str().unwrap())
        .collect();
    assert_eq!(expressions, ["Patient.birthDate"]);
    assert_eq!(patients.count(), 0);
}

#[actix_web::test]
async fn another_resource_type_is_refused() {
    let app = api_app!();
    let mut body = chalmers();
    body["resourceType"] = json!("Practitioner");

    let reply = send(
        &app,
        fhir_body(as_admin(TestRequest::post().uri("/fhir/Patient")), &body).to_request(),
    )
    .await;

    let outcome = assert_outcome(&reply, 400, "invalid");
    assert_eq!(outcome["issue"][0]["expression"][0], "Patient.resourceType");
}

#[actix_web::test]
async fn update_honours_if_match_and_the_id_must_match() {
    // Arrange
    let patients = Arc::new(FakePatients::default());
    let app = api_app!(fakes_with_store(false, patients.clone()), ready_health());
    let created = send(
        &app,
        fhir_body(
            as_admin(TestRequest::post().uri("/fhir/Patient")),
            &chalmers(),
        )
        .to_request(),
    )
    .await
    .json();
    let id = created["id"].as_str().unwrap().to_string();
    let uri = format!("/fhir/Patient/{id}");
    let mut edited = created.clone();
    edited["name"] = json!([{"text": "Jim Chalmers"}]);

    // Act
    let updated = send(
        &app,
        fhir_body(as_admin(TestRequest::put().uri(&uri)), &edited)
            .insert_header(("if-match", "W/\"1\""))
            .to_request(),
    )
    .await;
    let stale = send(
        &app,
        fhir_body(as_admin(TestRequest::put().uri(&uri)), &edited)
            .insert_header(("if-match", "W/\"1\""))
            .to_request(),
    )
    .await;
    let mut other_id = edited.clone();
    other_id["id"] = json!(Uuid::now_v7().to_string());
    let mismatch = send(
        &app,
        fhir_body(as_admin(TestRequest::put().uri(&uri)), &other_id).to_request(),
    )
    .await;
    let bad_if_match = send(
        &app,
        fhir_body(as_admin(TestRequest::put().uri(&uri)), &edited)
            .insert_header(("if-match", "3"))
            .to_request(),
    )
    .await;

    // Assert
    assert_eq!(updated.status, 200);
    assert_eq!(updated.header("etag"), Some("W/\"2\""));
    assert_eq!(updated.json()["name"][0]["text"], "Jim Chalmers");
    assert_eq!(updated.json()["meta"]["versionId"], "2");
    assert_outcome(&stale, 412, "conflict");
    let outcome_of_mismatch = assert_outcome(&mismatch, 400, "invalid");
    assert_eq!(
        outcome_of_mismatch["issue"][0]["expression"][0],
        "Patient.id"
    );
    assert_outcome(&bad_if_match, 400, "invalid");
    assert_eq!(patients.expected_versions(), [Some(1), Some(1)]);
}

#[actix_web::test]
async fn vread_answers_an_older_version_with_its_time() {
    let app = api_app!();
    let created = send(
        &app,
        fhir_body(
            as_admin(TestRequest::post().uri("/fhir/Patient")),
            &chalmers(),
        )
        .to_request(),
    )
    .await
    .json();
    let id = created["id"].as_str().unwrap().to_string();
    let mut edited = created.clone();
    edited["birthDate"] = json!("1974-12-26");
    send(
        &app,
        fhir_body(
            as_admin(TestRequest::put().uri(&format!("/fhir/Patient/{id}"))),
            &edited,
        )
        .to_request(),
    )
    .await;

    let first = send(
        &app,
        as_admin(TestRequest::get().uri(&format!("/fhir/Patient/{id}/_history/1"))).to_request(),
    )
    .await;
    let missing = send(
        &app,
        as_admin(TestRequest::get().uri(&format!("/fhir/Patient/{id}/_history/9"))).to_request(),
    )
    .await;
    let malformed = send(
        &app,
        as_admin(TestRequest::get().uri(&format!("/fhir/Patient/{id}/_history/0"))).to_request(),
    )
    .await;

    assert_eq!(first.status, 200);
    assert_eq!(first.header("etag"), Some("W/\"1\""));
    let resource = first.json();
    assert_eq!(resource["birthDate"], "1974-12-25");
    assert_eq!(resource["meta"]["versionId"], "1");
    assert!(resource["meta"]["lastUpdated"].is_string());
    assert_outcome(&missing, 404, "not-found");
    assert_outcome(&malformed, 400, "invalid");
}

#[actix_web::test]
async fn module_and_http_errors_are_operation_outcomes_with_the_rest_status() {
    let app = api_app!();
    let created = send(
        &app,
        fhir_body(
            as_admin(TestRequest::post().uri("/fhir/Patient")),
            &chalmers(),
        )
        .to_request(),
    )
    .await;
    assert_eq!(created.status, 201);

    let no_token = send(&app, TestRequest::get().uri("/fhir/Patient").to_request()).await;
    assert_outcome(&no_token, 401, "login");
    assert!(
        no_token
            .header("www-authenticate")
            .unwrap()
            .starts_with("Bearer")
    );

    let analyst = TestRequest::get()
        .uri("/fhir/Patient")
        .insert_header(("authorization", format!("Bearer {ANALYST_TOKEN}")))
        .to_request();
    assert_outcome(&send(&app, analyst).await, 403, "forbidden");

    let unknown = as_admin(TestRequest::get().uri(&format!("/fhir/Patient/{}", Uuid::now_v7())));
    assert_outcome(&send(&app, unknown.to_request()).await, 404, "not-found");

    let malformed = as_admin(TestRequest::get().uri("/fhir/Patient/not-a-uuid"));
    assert_outcome(&send(&app, malformed.to_request()).await, 400, "invalid");

    let duplicate = fhir_body(
        as_admin(TestRequest::post().uri("/fhir/Patient")),
        &chalmers(),
    );
    assert_outcome(&send(&app, duplicate.to_request()).await, 409, "duplicate");

    let xml = as_admin(TestRequest::post().uri("/fhir/Patient"))
        .insert_header(("content-type", "application/fhir+xml"))
        .set_payload("<Patient/>");
    assert_outcome(&send(&app, xml.to_request()).await, 415, "not-supported");

    let other_version = as_admin(TestRequest::post().uri("/fhir/Patient"))
        .insert_header(("content-type", "application/fhir+json; fhirVersion=5.0"))
        .set_payload(chalmers().to_string());
    assert_outcome(
        &send(&app, other_version.to_request()).await,
        415,
        "not-supported",
    );

    let huge = as_admin(TestRequest::post().uri("/fhir/Patient"))
        .insert_header(("content-type", FHIR_JSON))
        .set_payload(format!("{{\"text\":\"{}\"}}", "x".repeat(70 * 1024)));
    assert_outcome(&send(&app, huge.to_request()).await, 413, "too-long");

    let broken = as_admin(TestRequest::post().uri("/fhir/Patient"))
        .insert_header(("content-type", FHIR_JSON))
        .set_payload("{\"resourceType\":");
    assert_outcome(&send(&app, broken.to_request()).await, 400, "invalid");

    let patch = as_admin(TestRequest::patch().uri(&format!("/fhir/Patient/{}", Uuid::now_v7())));
    let patch_reply = send(&app, patch.to_request()).await;
    assert_outcome(&patch_reply, 405, "not-supported");
    assert_eq!(patch_reply.header("allow"), Some("GET, PUT, DELETE"));

    let post_metadata = TestRequest::post().uri("/fhir/metadata").to_request();
    let metadata_reply = send(&app, post_metadata).await;
    assert_outcome(&metadata_reply, 405, "not-supported");
    assert_eq!(metadata_reply.header("allow"), Some("GET"));

    let elsewhere = as_admin(TestRequest::get().uri("/fhir/Observation/1"));
    assert_outcome(&send(&app, elsewhere.to_request()).await, 404, "not-found");
}

#[actix_web::test]
async fn the_search_bundle_pages_with_a_next_link() {
    // Arrange
    let app = api_app!();
    for index in 0..3 {
        let mut body = chalmers();
        body["telecom"] = json!([{"system": "email", "value": format!("p{index}@example.org")}]);
        let reply = send(
            &app,
            fhir_body(as_admin(TestRequest::post().uri("/fhir/Patient")), &body).to_request(),
        )
        .await;
        assert_eq!(reply.status, 201);
    }

    // Act
    let first = send(
        &app,
        as_admin(TestRequest::get().uri("/fhir/Patient?_count=2")).to_request(),
    )
    .await;

    // Assert
    assert_eq!(first.status, 200);
    assert_eq!(first.header("content-type"), Some(FHIR_JSON));
    let bundle = first.json();
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["type"], "searchset");
    let entries = bundle["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    let id = entries[0]["resource"]["id"].as_str().unwrap();
    assert!(
        entries[0]["fullUrl"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/fhir/Patient/{id}"))
    );
    assert_eq!(entries[0]["search"]["mode"], "match");
    assert_eq!(bundle["link"][0]["relation"], "self");
    assert_eq!(bundle["link"][1]["relation"], "next");
    let next_url = bundle["link"][1]["url"].as_str().unwrap();
    let next_path = &next_url[next_url.find("/fhir/").unwrap()..];
    assert!(next_path.contains("_cursor="), "{next_path}");

    let second = send(
        &app,
        as_admin(TestRequest::get().uri(next_path)).to_request(),
    )
    .await
    .json();
    assert_eq!(second["entry"].as_array().unwrap().len(), 1);
    assert_eq!(second["link"].as_array().unwrap().len(), 1);
}

#[actix_web::test]
async fn unknown_and_malformed_search_parameters_are_refused_by_name() {
    let app = api_app!();
    let cases = [
        ("gender=female", "gender"),
        ("name:exact=Ada", "name:exact"),
        ("_count=0", "_count"),
        ("birthdate=ne1974-12-25", "birthdate prefix ne"),
        ("birthdate=1974-13-01", "birthdate"),
        ("name=Ada,Bob", "name"),
        ("_sort=gender", "_sort"),
        ("_total=maybe", "_total"),
        ("identifier=urn:oid:1.2.36%7C", "needs a value"),
    ];
    for (query, named) in cases {
        let request = as_admin(TestRequest::get().uri(&format!("/fhir/Patient?{query}")));

        let reply = send(&app, request.to_request()).await;

        let outcome = assert_outcome(&reply, 400, "invalid");
        let diagnostics = outcome["issue"][0]["diagnostics"].as_str().unwrap();
        assert!(diagnostics.contains(named), "{query}: {diagnostics}");
    }
}

#[actix_web::test]
async fn search_parameters_reach_the_module_and_the_next_link_keeps_them() {
    // Arrange: three patients, the fake answers them all, unfiltered
    let patients = Arc::new(FakePatients::default());
    let app = api_app!(fakes_with_store(false, patients.clone()), ready_health());
    for index in 0..3 {
        let mut body = chalmers();
        body["telecom"] = json!([{"system": "email", "value": format!("p{index}@example.org")}]);
        let request = fhir_body(as_admin(TestRequest::post().uri("/fhir/Patient")), &body);
        assert_eq!(send(&app, request.to_request()).await.status, 201);
    }
    let query = "name=pet%20cha&birthdate=ge1970-01-01&birthdate=lt1980-01-01\
                 &identifier=urn:ward:mrn%7CMRN-00000002&email=P1@Example.org&_sort=-birthdate\
                 &_count=1&_total=accurate";

    // Act
    let first = send(
        &app,
        as_admin(TestRequest::get().uri(&format!("/fhir/Patient?{query}"))).to_request(),
    )
    .await;

    // Assert: the module got Ward's search
    assert_eq!(
        first.status,
        200,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    let searches = patients.searches();
    assert_eq!(searches.len(), 1);
    let search = &searches[0];
    assert_eq!(search.name_words, ["pet", "cha"]);
    let bounds: Vec<String> = search
        .birth_dates
        .iter()
        .map(|bound| bound.as_param())
        .collect();
    assert_eq!(bounds, ["ge1970-01-01", "le1979-12-31"]);
    assert_eq!(
        search.identifier_opt.as_deref(),
        Some("urn:ward:mrn|MRN-00000002")
    );
    assert_eq!(search.email_opt.as_deref(), Some("p1@example.org"));
    assert_eq!(search.sort.as_param(), "-birthDate");
    assert_eq!(search.limit, 1);
    assert!(search.with_total);
    assert!(search.after_opt.is_none());

    // Assert: the Bundle has the total and a next link repeating every parameter
    let bundle = first.json();
    assert_eq!(bundle["total"], 3);
    assert_eq!(bundle["entry"].as_array().unwrap().len(), 1);
    let next_url = bundle["link"][1]["url"].as_str().unwrap();
    for parameter in [
        "name=pet%20cha",
        "birthdate=ge1970-01-01",
        "birthdate=lt1980-01-01",
        "identifier=urn%3Award%3Amrn%7CMRN-00000002",
        "email=P1%40Example.org",
        "_sort=-birthdate",
        "_count=1",
        "_total=accurate",
        "_cursor=",
    ] {
        assert!(next_url.contains(parameter), "{parameter} in {next_url}");
    }

    // Act + Assert: following it continues the same search (the cursor matches its filters)
    let next_path = &next_url[next_url.find("/fhir/").unwrap()..];
    let second = send(
        &app,
        as_admin(TestRequest::get().uri(next_path)).to_request(),
    )
    .await;
    assert_eq!(
        second.status,
        200,
        "{}",
        String::from_utf8_lossy(&second.body)
    );
    let searches = patients.searches();
    assert_eq!(searches.len(), 2);
    assert!(searches[1].after_opt.is_some());
    assert_eq!(searches[1].name_words, search.name_words);
    assert_eq!(searches[1].birth_dates, search.birth_dates);
    assert_eq!(searches[1].identifier_opt, search.identifier_opt);
    assert_eq!(searches[1].sort, search.sort);
}

#[actix_web::test]
async fn a_bare_identifier_is_the_mrn_and_total_is_absent_unless_asked() {
    let patients = Arc::new(FakePatients::default());
    let app = api_app!(fakes_with_store(false, patients.clone()), ready_health());

    let reply = send(
        &app,
        as_admin(TestRequest::get().uri("/fhir/Patient?identifier=MRN-00000042&_total=none"))
            .to_request(),
    )
    .await;

    assert_eq!(reply.status, 200);
    assert!(reply.json().get("total").is_none());
    let searches = patients.searches();
    assert_eq!(searches[0].identifier_opt.as_deref(), Some("MRN-00000042"));
    assert!(!searches[0].with_total);
}

#[actix_web::test]
async fn the_mrn_is_an_identifier_that_an_update_may_only_send_back() {
    // Arrange
    let app = api_app!();
    let created = send(
        &app,
        fhir_body(
            as_admin(TestRequest::post().uri("/fhir/Patient")),
            &chalmers(),
        )
        .to_request(),
    )
    .await
    .json();
    let id = created["id"].as_str().unwrap().to_string();
    let uri = format!("/fhir/Patient/{id}");

    // Assert: the client's identifier was ignored, Ward's MRN is answered
    let identifiers = created["identifier"].as_array().unwrap();
    assert_eq!(identifiers.len(), 1);
    let mrn = identifiers[0]["value"].as_str().unwrap().to_string();
    assert!(mrn.starts_with("MRN-"), "{mrn}");
    assert_eq!(identifiers[0]["system"], "urn:ward:mrn");
    assert_eq!(identifiers[0]["use"], "usual");
    assert_eq!(
        identifiers[0]["type"]["coding"][0],
        json!({"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"})
    );

    // Act: send it back unchanged, then changed
    let mut edited = created.clone();
    edited["birthDate"] = json!("1974-12-26");
    let unchanged = send(
        &app,
        fhir_body(as_admin(TestRequest::put().uri(&uri)), &edited).to_request(),
    )
    .await;
    edited["identifier"][0]["value"] = json!("MRN-99999999");
    let changed = send(
        &app,
        fhir_body(as_admin(TestRequest::put().uri(&uri)), &edited).to_request(),
    )
    .await;

    // Assert
    assert_eq!(
        unchanged.status,
        200,
        "{}",
        String::from_utf8_lossy(&unchanged.body)
    );
    assert_eq!(unchanged.json()["identifier"][0]["value"], mrn.as_str());
    let outcome = assert_outcome(&changed, 400, "invalid");
    assert_eq!(outcome["issue"][0]["expression"][0], "Patient.identifier");
    let read = send(&app, as_admin(TestRequest::get().uri(&uri)).to_request()).await;
    assert_eq!(read.json()["meta"]["versionId"], "2");
}

#[actix_web::test]
async fn metadata_lists_the_search_parameters_with_their_types() {
    let app = api_app!();

    let statement = send(&app, TestRequest::get().uri("/fhir/metadata").to_request())
        .await
        .json();

    let params = statement["rest"][0]["resource"][0]["searchParam"]
        .as_array()
        .unwrap();
    let typed: Vec<(&str, &str)> = params
        .iter()
        .map(|param| {
            (
                param["name"].as_str().unwrap(),
                param["type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        typed,
        [
            ("name", "string"),
            ("birthdate", "date"),
            ("identifier", "token"),
            ("email", "token"),
            ("_sort", "string"),
            ("_count", "number"),
            ("_total", "token"),
            ("_cursor", "string"),
        ]
    );
}

#[actix_web::test]
async fn fhir_routes_stay_out_of_the_openapi_document() {
    let app = api_app!();

    let spec = send(&app, TestRequest::get().uri("/openapi.json").to_request())
        .await
        .json();

    let paths = spec["paths"].as_object().unwrap();
    assert!(paths.keys().all(|path| !path.starts_with("/fhir")));
}
