use std::sync::Arc;

use actix_web::test::TestRequest;
use serde_json::{Value, json};
use uuid::Uuid;
use ward_bus::patients::PatientSortField;

use crate::api_app;
use crate::fakes::{ADMIN_TOKEN, ANALYST_TOKEN, FakePatients, fakes_with_store};
use crate::helpers::{ready_health, send};

fn john_doe() -> Value {
    json!({
        "name": "John Doe",
        "email": "john.doe@example.com",
        "address": "123 Main St, Springfield",
        "dateOfBirth": "1985-06-15",
        "registeredDate": "2024-01-10"
    })
}

fn as_admin(request: TestRequest) -> TestRequest {
    request.insert_header(("authorization", format!("Bearer {ADMIN_TOKEN}")))
}

#[actix_web::test]
async fn without_a_token_the_api_is_401_with_a_generated_request_id() {
    // Arrange
    let app = api_app!();
    let request = TestRequest::get().uri("/api/patients").to_request();

    // Act
    let reply = send(&app, request).await;

    // Assert
    let problem = reply.problem(401);
    assert!(
        reply
            .header("www-authenticate")
            .unwrap()
            .starts_with("Bearer")
    );
    assert_eq!(problem["instance"], "/api/patients");
    let request_id = Uuid::parse_str(reply.header("x-request-id").unwrap()).unwrap();
    assert_eq!(request_id.get_version_num(), 7);
}

#[actix_web::test]
async fn a_garbage_token_is_401_and_the_callers_request_id_is_echoed() {
    let app = api_app!();
    let request = TestRequest::get()
        .uri("/api/patients")
        .insert_header(("authorization", "Bearer garbage"))
        .insert_header(("x-request-id", "clinic-42"))
        .to_request();

    let reply = send(&app, request).await;

    let problem = reply.problem(401);
    assert_eq!(problem["requestId"], "clinic-42");
    assert_eq!(reply.header("x-request-id"), Some("clinic-42"));
}

#[actix_web::test]
async fn an_unusable_request_id_is_replaced() {
    let app = api_app!();
    let request = TestRequest::get()
        .uri("/api/patients")
        .insert_header(("x-request-id", "x".repeat(129)))
        .to_request();

    let reply = send(&app, request).await;

    let request_id = reply.header("x-request-id").unwrap();
    assert!(Uuid::parse_str(request_id).is_ok());
}

#[actix_web::test]
async fn every_patient_route_needs_a_token() {
    let app = api_app!();
    let id = Uuid::now_v7();
    let requests = [
        TestRequest::post()
            .uri("/api/patients")
            .set_json(john_doe()),
        TestRequest::get().uri(&format!("/api/patients/{id}")),
        TestRequest::put()
            .uri(&format!("/api/patients/{id}"))
            .set_json(john_doe()),
        TestRequest::delete().uri(&format!("/api/patients/{id}")),
        TestRequest::get().uri(&format!("/api/billing/accounts/{id}")),
        TestRequest::get().uri("/api/analytics/summary"),
    ];
    for request in requests {
        send(&app, request.to_request()).await.problem(401);
    }
}

#[actix_web::test]
async fn create_read_update_delete() {
    let app = api_app!();

    // Create: 201 with Location and the stored record.
    let created = send(
        &app,
        as_admin(TestRequest::post().uri("/api/patients"))
            .set_json(john_doe())
            .to_request(),
    )
    .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let patient = created.json();
    let id = patient["id"].as_str().unwrap().to_string();
    let location = format!("/api/patients/{id}");
    assert_eq!(created.header("location"), Some(location.as_str()));
    let mut expected = john_doe();
    expected["id"] = json!(id);
    expected["version"] = json!(1);
    expected["mrn"] = json!("MRN-00000001");
    expected["identifiers"] = json!([]);
    assert_eq!(patient, expected);

    // Read it back from its Location.
    let read = send(
        &app,
        as_admin(TestRequest::get().uri(&location)).to_request(),
    )
    .await;
    assert_eq!(read.status, 200);
    assert_eq!(read.json(), expected);

    // Update: registeredDate is ignored.
    let mut changes = john_doe();
    changes["name"] = json!("Johnny Doe");
    changes["registeredDate"] = json!("2020-01-01");
    let updated = send(
        &app,
        as_admin(TestRequest::put().uri(&location))
            .set_json(&changes)
            .to_request(),
    )
    .await;
    assert_eq!(updated.status, 200);
    assert_eq!(updated.json()["name"], "Johnny Doe");
    assert_eq!(updated.json()["registeredDate"], "2024-01-10");

    // Delete: 204, then 410 (a soft delete; the record can be restored).
    let deleted = send(
        &app,
        as_admin(TestRequest::delete().uri(&location)).to_request(),
    )
    .await;
    assert_eq!(deleted.status, 204);
    assert!(deleted.body.is_empty());
    let again = send(
        &app,
        as_admin(TestRequest::delete().uri(&location)).to_request(),
    )
    .await;
    let problem = again.problem(410);
    assert_eq!(
        problem["detail"],
        "Patient was deleted; an admin can restore it"
    );
}

#[actix_web::test]
async fn every_missing_field_is_reported_with_the_reference_messages() {
    let app = api_app!();
    let request = as_admin(TestRequest::post().uri("/api/patients"))
        .set_json(json!({}))
        .to_request();

    let reply = send(&app, request).await;

    let expected: Vec<(String, String)> = [
        ("name", "Name is required"),
        ("email", "Email is required"),
        ("address", "Address is required"),
        ("dateOfBirth", "Date of birth is required"),
        ("registeredDate", "Registered date is required"),
    ]
    .into_iter()
    .map(|(field, message)| (field.to_string(), message.to_string()))
    .collect();
    assert_eq!(reply.field_errors(), expected);
}

#[actix_web::test]
async fn a_wrongly_typed_field_is_a_400_naming_it() {
    let app = api_app!();
    let mut body = john_doe();
    body["name"] = json!(5);
    body["dateOfBirth"] = json!("15/06/1985");
    let request = as_admin(TestRequest::post().uri("/api/patients"))
        .set_json(body)
        .to_request();

    let reply = send(&app, request).await;

    let fields: Vec<String> = reply
        .field_errors()
        .into_iter()
        .map(|(field, _)| field)
        .collect();
    assert_eq!(fields, vec!["name", "dateOfBirth"]);
}

#[actix_web::test]
async fn a_duplicate_email_is_409() {
    let app = api_app!();
    for expected_status in [201, 409] {
        let request = as_admin(TestRequest::post().uri("/api/patients"))
            .set_json(john_doe())
            .to_request();
        let reply = send(&app, request).await;
        assert_eq!(reply.status, expected_status);
        if expected_status == 409 {
            assert_eq!(reply.problem(409)["detail"], "Email address already exists");
        }
    }
}

#[actix_web::test]
async fn a_malformed_id_is_a_400_naming_id() {
    let app = api_app!();
    for request in [
        TestRequest::get().uri("/api/patients/not-a-uuid"),
        TestRequest::delete().uri("/api/patients/not-a-uuid"),
        TestRequest::put()
            .uri("/api/patients/not-a-uuid")
            .set_json(john_doe()),
    ] {
        let reply = send(&app, as_admin(request).to_request()).await;
        assert_eq!(reply.field_errors()[0].0, "id");
    }
}

#[actix_web::test]
async fn an_unknown_patient_is_404() {
    let app = api_app!();
    let uri = format!("/api/patients/{}", Uuid::now_v7());

    let read = send(&app, as_admin(TestRequest::get().uri(&uri)).to_request()).await;
    let update = send(
        &app,
        as_admin(TestRequest::put().uri(&uri))
            .set_json(john_doe())
            .to_request(),
    )
    .await;

    assert_eq!(read.problem(404)["detail"], "Patient not found");
    assert_eq!(
        update.problem(404)["type"],
        "https://ward.dev/problems/not-found"
    );
}

#[actix_web::test]
async fn the_list_is_paged_with_a_cursor() {
    let app = api_app!();
    for index in 0..3 {
        let mut body = john_doe();
        body["email"] = json!(format!("patient{index}@example.com"));
        let request = as_admin(TestRequest::post().uri("/api/patients"))
            .set_json(body)
            .to_request();
        assert_eq!(send(&app, request).await.status, 201);
    }

    let first = send(
        &app,
        as_admin(TestRequest::get().uri("/api/patients?limit=2")).to_request(),
    )
    .await;
    assert_eq!(first.status, 200);
    let first_page = first.json();
    assert_eq!(first_page["items"].as_array().unwrap().len(), 2);
    let cursor = first_page["nextCursor"].as_str().unwrap();

    let second = send(
        &app,
        as_admin(TestRequest::get().uri(&format!("/api/patients?limit=2&cursor={cursor}")))
            .to_request(),
    )
    .await;
    let second_page = second.json();
    assert_eq!(second_page["items"].as_array().unwrap().len(), 1);
    assert_eq!(second_page["nextCursor"], Value::Null);
}

#[actix_web::test]
async fn bad_paging_parameters_are_400_naming_them() {
    let app = api_app!();
    let cases = [
        ("/api/patients?limit=abc", "limit"),
        ("/api/patients?limit=0", "limit"),
        ("/api/patients?cursor=garbage", "cursor"),
    ];
    for (uri, field) in cases {
        let reply = send(&app, as_admin(TestRequest::get().uri(uri)).to_request()).await;
        assert_eq!(reply.field_errors()[0].0, field, "{uri}");
    }
}

#[actix_web::test]
async fn a_module_refusal_passes_through_as_403() {
    let app = api_app!();
    let request = TestRequest::get()
        .uri("/api/patients")
        .insert_header(("authorization", format!("Bearer {ANALYST_TOKEN}")))
        .to_request();

    let reply = send(&app, request).await;

    assert_eq!(
        reply.problem(403)["type"],
        "https://ward.dev/problems/forbidden"
    );
}

#[actix_web::test]
async fn an_unknown_search_parameter_is_400_naming_it() {
    let app = api_app!();

    let reply = send(
        &app,
        as_admin(TestRequest::get().uri("/api/patients?name=jo&nmae=jo&colour=red")).to_request(),
    )
    .await;

    let problem = reply.problem(400);
    assert_eq!(problem["errors"][0]["field"], "nmae");
    assert_eq!(problem["errors"][0]["message"], "unknown query parameter");
    assert_eq!(problem["errors"][1]["field"], "colour");
}

#[actix_web::test]
async fn malformed_search_values_are_400_naming_each() {
    let app = api_app!();
    let cases = [
        ("/api/patients?birthDate=1980-02-30", vec!["birthDate"]),
        ("/api/patients?birthDate=gt1980-01-01", vec!["birthDate"]),
        ("/api/patients?sort=age", vec!["sort"]),
        ("/api/patients?sort=--name", vec!["sort"]),
        ("/api/patients?limit=501", vec!["limit"]),
        ("/api/patients?total=maybe", vec!["total"]),
        ("/api/patients?name=a&name=b", vec!["name"]),
        (
            "/api/patients?sort=name&birthDate=x&limit=0",
            vec!["limit", "birthDate"],
        ),
    ];
    for (uri, expected) in cases {
        let reply = send(&app, as_admin(TestRequest::get().uri(uri)).to_request()).await;
        let fields: Vec<String> = reply
            .field_errors()
            .into_iter()
            .map(|(field, _)| field)
            .collect();
        assert_eq!(fields, expected, "{uri}");
    }
}

#[actix_web::test]
async fn a_valid_search_passes_through_to_the_module() {
    // Arrange
    let patients = Arc::new(FakePatients::default());
    let app = api_app!(fakes_with_store(false, patients.clone()), ready_health());
    let uri = "/api/patients?name=Jo%20%C3%A1lv&email=Jo%40Example.org\
        &birthDate=ge1980-01-01&birthDate=le1989-12-31&sort=-registeredDate&limit=7&total=accurate\
        &identifier=MRN-00000042";

    // Act
    let reply = send(&app, as_admin(TestRequest::get().uri(uri)).to_request()).await;

    // Assert
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["total"], 0);
    let search = patients.searches().pop().unwrap();
    assert_eq!(search.name_words, vec!["Jo", "álv"]);
    assert_eq!(search.email_opt.as_deref(), Some("jo@example.org"));
    assert_eq!(search.birth_dates.len(), 2);
    assert_eq!(search.sort.field, PatientSortField::RegisteredDate);
    assert!(search.sort.descending);
    assert_eq!(search.limit, 7);
    assert!(search.with_total);
    assert_eq!(search.identifier_opt.as_deref(), Some("MRN-00000042"));
}

#[actix_web::test]
async fn without_total_the_page_has_no_total_and_a_sorted_cursor_stays_with_its_sort() {
    let app = api_app!();
    for index in 0..3 {
        let mut body = john_doe();
        body["email"] = json!(format!("patient{index}@example.com"));
        let request = as_admin(TestRequest::post().uri("/api/patients"))
            .set_json(body)
            .to_request();
        assert_eq!(send(&app, request).await.status, 201);
    }

    let first = send(
        &app,
        as_admin(TestRequest::get().uri("/api/patients?limit=2&sort=name")).to_request(),
    )
    .await;
    let first_page = first.json();
    assert!(first_page.get("total").is_none());
    let cursor = first_page["nextCursor"].as_str().unwrap().to_string();

    let same_sort = send(
        &app,
        as_admin(
            TestRequest::get().uri(&format!("/api/patients?limit=2&sort=name&cursor={cursor}")),
        )
        .to_request(),
    )
    .await;
    assert_eq!(same_sort.status, 200);
    let other_sort = send(
        &app,
        as_admin(
            TestRequest::get().uri(&format!("/api/patients?limit=2&sort=-name&cursor={cursor}")),
        )
        .to_request(),
    )
    .await;
    assert_eq!(other_sort.field_errors()[0].0, "cursor");
}

#[actix_web::test]
async fn the_mrn_is_answered_and_can_be_sent_back_but_not_changed() {
    // Arrange
    let app = api_app!();
    let created = send(
        &app,
        as_admin(TestRequest::post().uri("/api/patients"))
            .set_json(john_doe())
            .to_request(),
    )
    .await;
    let patient = created.json();
    let mrn = patient["mrn"].as_str().unwrap().to_string();
    assert!(mrn.starts_with("MRN-"));
    let path = format!("/api/patients/{}", patient["id"].as_str().unwrap());

    // Act: PUT the document back with its own number, then with another.
    let mut document = patient.clone();
    document["name"] = json!("John Roe");
    let same = send(
        &app,
        as_admin(TestRequest::put().uri(&path))
            .set_json(document.clone())
            .to_request(),
    )
    .await;
    document["mrn"] = json!("MRN-99999999");
    let other = send(
        &app,
        as_admin(TestRequest::put().uri(&path))
            .set_json(document)
            .to_request(),
    )
    .await;
    let patched = send(
        &app,
        as_admin(TestRequest::patch().uri(&path))
            .insert_header(("content-type", "application/merge-patch+json"))
            .set_payload(json!({"mrn": "MRN-1", "name": ""}).to_string())
            .to_request(),
    )
    .await;

    // Assert
    assert_eq!(same.status, 200);
    assert_eq!(same.json()["mrn"], mrn.as_str());
    assert_eq!(
        other.field_errors()[0],
        ("mrn".into(), "mrn cannot be changed".into())
    );
    let patch_fields: Vec<String> = patched
        .field_errors()
        .into_iter()
        .map(|(field, _)| field)
        .collect();
    assert_eq!(patch_fields, vec!["name", "mrn"]);
}

/// The URL of a patient registered by `reply` (a 201).
fn location_of(reply: &crate::helpers::Reply) -> String {
    assert_eq!(reply.status, 201);
    reply.header("location").unwrap().to_string()
}

fn register_john() -> TestRequest {
    as_admin(TestRequest::post().uri("/api/patients")).set_json(john_doe())
}

#[actix_web::test]
async fn a_deleted_patient_is_410_everywhere_until_restored() {
    // Arrange
    let app = api_app!();
    let location = location_of(&send(&app, register_john().to_request()).await);
    let deleted = send(
        &app,
        as_admin(TestRequest::delete().uri(&location)).to_request(),
    )
    .await;
    assert_eq!(deleted.status, 204);

    // Act
    let requests = [
        TestRequest::get().uri(&location),
        TestRequest::put().uri(&location).set_json(john_doe()),
        TestRequest::patch()
            .uri(&location)
            .insert_header(("content-type", "application/merge-patch+json"))
            .set_payload(r#"{"name":"Jo Doe"}"#),
        TestRequest::delete().uri(&location),
    ];
    let mut replies = Vec::new();
    for request in requests {
        replies.push(send(&app, as_admin(request).to_request()).await);
    }
    let history = send(
        &app,
        as_admin(TestRequest::get().uri(&format!("{location}/history"))).to_request(),
    )
    .await;

    // Assert
    for reply in &replies {
        let problem = reply.problem(410);
        assert_eq!(problem["type"], "https://ward.dev/problems/gone");
        assert_eq!(problem["title"], "Gone");
        assert_eq!(
            problem["detail"],
            "Patient was deleted; an admin can restore it"
        );
    }
    assert_eq!(history.status, 200);
    assert_eq!(history.json()["items"][0]["action"], "delete");
}

#[actix_web::test]
async fn restore_answers_the_record_with_its_etag_and_honours_if_match() {
    // Arrange
    let store = Arc::new(FakePatients::default());
    let app = api_app!(fakes_with_store(false, store.clone()), ready_health());
    let location = location_of(&send(&app, register_john().to_request()).await);
    let restore_uri = format!("{location}/restore");
    let live = send(
        &app,
        as_admin(TestRequest::post().uri(&restore_uri)).to_request(),
    )
    .await;
    send(
        &app,
        as_admin(TestRequest::delete().uri(&location)).to_request(),
    )
    .await;

    // Act
    let stale = send(
        &app,
        as_admin(TestRequest::post().uri(&restore_uri))
            .insert_header(("if-match", r#"W/"1""#))
            .to_request(),
    )
    .await;
    let restored = send(
        &app,
        as_admin(TestRequest::post().uri(&restore_uri))
            .insert_header(("if-match", r#"W/"2""#))
            .to_request(),
    )
    .await;
    let read = send(
        &app,
        as_admin(TestRequest::get().uri(&location)).to_request(),
    )
    .await;
    let unknown = send(
        &app,
        as_admin(TestRequest::post().uri(&format!("/api/patients/{}/restore", Uuid::now_v7())))
            .to_request(),
    )
    .await;
    let analyst = send(
        &app,
        TestRequest::post()
            .uri(&restore_uri)
            .insert_header(("authorization", format!("Bearer {ANALYST_TOKEN}")))
            .to_request(),
    )
    .await;
    let malformed = send(
        &app,
        as_admin(TestRequest::post().uri("/api/patients/nope/restore")).to_request(),
    )
    .await;

    // Assert
    assert_eq!(live.problem(409)["detail"], "Patient is not deleted");
    stale.problem(412);
    assert_eq!(restored.status, 200);
    assert_eq!(restored.header("etag"), Some(r#"W/"3""#));
    assert_eq!(restored.json()["version"], 3);
    assert_eq!(read.status, 200);
    assert_eq!(read.json()["name"], "John Doe");
    unknown.problem(404);
    analyst.problem(403);
    malformed.problem(400);
    assert_eq!(store.expected_versions().last(), Some(&Some(2)));
}

#[actix_web::test]
async fn purge_is_admin_only_and_erases_the_history() {
    // Arrange
    let app = api_app!();
    let location = location_of(&send(&app, register_john().to_request()).await);
    let purge_uri = format!("{location}/purge");

    // Act
    let analyst = send(
        &app,
        TestRequest::post()
            .uri(&purge_uri)
            .insert_header(("authorization", format!("Bearer {ANALYST_TOKEN}")))
            .to_request(),
    )
    .await;
    let purged = send(
        &app,
        as_admin(TestRequest::post().uri(&purge_uri)).to_request(),
    )
    .await;
    let read = send(
        &app,
        as_admin(TestRequest::get().uri(&location)).to_request(),
    )
    .await;
    let history = send(
        &app,
        as_admin(TestRequest::get().uri(&format!("{location}/history"))).to_request(),
    )
    .await;
    let again = send(
        &app,
        as_admin(TestRequest::post().uri(&purge_uri)).to_request(),
    )
    .await;

    // Assert
    analyst.problem(403);
    assert_eq!(purged.status, 204);
    assert!(purged.body.is_empty());
    read.problem(404);
    history.problem(404);
    again.problem(404);
}

#[actix_web::test]
async fn a_retry_with_the_same_idempotency_key_answers_the_first_201() {
    // Arrange
    let store = Arc::new(FakePatients::default());
    let app = api_app!(fakes_with_store(false, store.clone()), ready_health());
    let keyed = || register_john().insert_header(("Idempotency-Key", "visit-42"));
    let first = send(&app, keyed().to_request()).await;

    // Act
    let retried = send(&app, keyed().to_request()).await;

    // Assert
    assert_eq!(first.status, 201);
    assert_eq!(retried.status, 201);
    assert_eq!(retried.header("location"), first.header("location"));
    assert_eq!(retried.header("etag"), first.header("etag"));
    assert_eq!(retried.json()["id"], first.json()["id"]);
    assert_eq!(store.count(), 1);
}

#[actix_web::test]
async fn the_same_idempotency_key_with_another_body_is_a_422_problem() {
    let app = api_app!();
    let keyed = |body: Value| {
        as_admin(TestRequest::post().uri("/api/patients"))
            .insert_header(("Idempotency-Key", "visit-42"))
            .set_json(body)
    };
    send(&app, keyed(john_doe()).to_request()).await;
    let mut other = john_doe();
    other["name"] = json!("Jane Doe");

    let reply = send(&app, keyed(other).to_request()).await;

    let problem = reply.problem(422);
    assert_eq!(
        problem["detail"],
        "this Idempotency-Key was used with a different request"
    );
    assert!(problem["type"].as_str().unwrap().ends_with("unprocessable"));
}

#[actix_web::test]
async fn a_malformed_idempotency_key_is_a_400_naming_the_header() {
    let store = Arc::new(FakePatients::default());
    let app = api_app!(fakes_with_store(false, store.clone()), ready_health());
    let request = register_john().insert_header(("Idempotency-Key", "k".repeat(256)));

    let reply = send(&app, request.to_request()).await;

    let problem = reply.problem(400);
    assert_eq!(problem["errors"][0]["field"], "Idempotency-Key");
    assert_eq!(store.count(), 0);
}

#[actix_web::test]
async fn if_none_exist_answers_a_match_with_200_and_creates_otherwise() {
    // Arrange
    let store = Arc::new(FakePatients::default());
    let app = api_app!(fakes_with_store(false, store.clone()), ready_health());
    let conditional =
        || register_john().insert_header(("If-None-Exist", "email=John.Doe@example.com"));

    // Act: no patient yet, then the same request again
    let created = send(&app, conditional().to_request()).await;
    let matched = send(&app, conditional().to_request()).await;

    // Assert
    assert_eq!(created.status, 201);
    assert_eq!(matched.status, 200);
    assert_eq!(matched.json()["id"], created.json()["id"]);
    assert_eq!(matched.header("location"), created.header("location"));
    assert_eq!(store.count(), 1);
    let search = store.searches().pop().unwrap();
    assert_eq!(search.email_opt.as_deref(), Some("john.doe@example.com"));
    // Two: one match is answered, several are a 412.
    assert_eq!(search.limit, 2);
}

#[actix_web::test]
async fn if_none_exist_by_identifier_passes_the_mrn_and_a_bad_condition_is_400() {
    let store = Arc::new(FakePatients::default());
    let app = api_app!(fakes_with_store(false, store.clone()), ready_health());
    let by_mrn = register_john().insert_header(("If-None-Exist", "identifier=MRN-00000042"));
    send(&app, by_mrn.to_request()).await;
    assert_eq!(
        store.searches().pop().unwrap().identifier_opt.as_deref(),
        Some("MRN-00000042")
    );

    let bad = register_john().insert_header(("If-None-Exist", "name=John"));
    let reply = send(&app, bad.to_request()).await;

    let problem = reply.problem(400);
    assert_eq!(problem["errors"][0]["field"], "If-None-Exist");
    assert_eq!(store.count(), 1);
}
