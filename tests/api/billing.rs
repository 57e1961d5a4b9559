//! Billing over HTTP, all-in-one and split (the gateway calling the billing role over gRPC):
//! the README's worked example to the cent, invoice statuses and voids, one currency per
//! account, idempotent and concurrent payments, refund limits, rights, and the events.

use std::time::Duration;

use serde_json::{Value, json};

use crate::both_deployments;
use crate::helpers::{TestApp, json_of, patient_body};

both_deployments!(
    the_worked_example_balances_to_the_cent,
    statuses_follow_payments_and_a_void_frees_credit,
    payments_are_counted_once_retried_or_concurrent,
);

const EVENT_WAIT: Duration = Duration::from_secs(20);

/// Registers a patient and waits for its billing account; returns the patient's id.
pub async fn patient_with_account(app: &TestApp, token: &str, email: &str) -> String {
    let created = json_of(
        app.post(token, "/api/patients", &patient_body("Bill Payer", email))
            .await,
        201,
    )
    .await;
    let patient_id = created["id"].as_str().unwrap().to_string();
    let path = format!("/api/billing/accounts/{patient_id}");
    app.eventually(EVENT_WAIT, "the billing account", || async {
        (app.get(token, &path).await.status() == 200).then_some(())
    })
    .await;
    patient_id
}

/// `{"patientId", "currency", "dueDate", "lines"}` with `(code, quantity, unitPrice)` lines.
pub fn invoice_body(patient_id: &str, currency: &str, lines: &[(&str, i64, i64)]) -> Value {
    let lines: Vec<Value> = lines
        .iter()
        .map(|(code, quantity, unit_price)| {
            json!({
                "code": code,
                "description": format!("{code} service"),
                "quantity": quantity,
                "unitPrice": unit_price
            })
        })
        .collect();
    json!({"patientId": patient_id, "currency": currency, "dueDate": "2030-01-31", "lines": lines})
}

/// Creates and issues an invoice; returns the issued invoice.
pub async fn issued_invoice(app: &TestApp, token: &str, body: &Value) -> Value {
    let draft = json_of(app.post(token, "/api/billing/invoices", body).await, 201).await;
    let id = draft["id"].as_str().unwrap();
    json_of(
        app.post(
            token,
            &format!("/api/billing/invoices/{id}/issue"),
            &json!({}),
        )
        .await,
        200,
    )
    .await
}

pub async fn pay(app: &TestApp, token: &str, key: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url("/api/billing/payments"))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap()
}

pub fn payment_body(patient_id: &str, amount: i64, invoice_id_opt: Option<&str>) -> Value {
    let mut body = json!({
        "patientId": patient_id,
        "amount": amount,
        "currency": "EUR",
        "method": "card",
        "reference": "ch_test"
    });
    if let Some(invoice_id) = invoice_id_opt {
        body["invoiceId"] = json!(invoice_id);
    }
    body
}

pub async fn account(app: &TestApp, token: &str, patient_id: &str) -> Value {
    json_of(
        app.get(token, &format!("/api/billing/accounts/{patient_id}"))
            .await,
        200,
    )
    .await
}

pub async fn invoice(app: &TestApp, token: &str, id: &str) -> Value {
    json_of(
        app.get(token, &format!("/api/billing/invoices/{id}")).await,
        200,
    )
    .await
}

pub async fn statement(app: &TestApp, token: &str, patient_id: &str, query: &str) -> Value {
    let path = format!("/api/billing/accounts/{patient_id}/statement{query}");
    json_of(app.get(token, &path).await, 200).await
}

/// The `field`s a 400 problem names.
pub async fn problem_fields(response: reqwest::Response, status: u16) -> Vec<String> {
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    let problem = json_of(response, status).await;
    assert_eq!(content_type, "application/problem+json", "{problem}");
    problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|error| error["field"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn amounts(statement: &Value) -> Vec<(String, i64)> {
    statement["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            (
                entry["kind"].as_str().unwrap().to_string(),
                entry["amount"].as_i64().unwrap(),
            )
        })
        .collect()
}

async fn the_worked_example_balances_to_the_cent(app: &TestApp) {
    // Arrange: a patient whose account has no money movement yet.
    let token = app.demo_token().await;
    let patient_id = patient_with_account(app, &token, "worked.example@example.com").await;
    let fresh = account(app, &token, &patient_id).await;
    assert_eq!(fresh["currency"], Value::Null);
    assert_eq!(fresh["balance"], 0);

    // Act 1: a draft of two lines (1 x 80.00 + 2 x 22.50 = 125.00), then issued.
    let body = json!({
        "patientId": patient_id,
        "currency": "EUR",
        "dueDate": "2030-01-31",
        "lines": [
            {"code": "CONS", "description": "Consultation", "quantity": 1, "unitPrice": 8000},
            {"code": "LAB", "description": "Blood panel", "quantity": 2, "unitPrice": 2250}
        ]
    });
    let draft = json_of(app.post(&token, "/api/billing/invoices", &body).await, 201).await;
    assert_eq!(draft["status"], "draft");
    assert_eq!(draft["total"], 12_500);
    assert_eq!(draft["lines"][1]["amount"], 4_500);
    assert_eq!(draft["overdue"], false);
    let invoice_id = draft["id"].as_str().unwrap().to_string();
    let issued = json_of(
        app.post(
            &token,
            &format!("/api/billing/invoices/{invoice_id}/issue"),
            &json!({}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(issued["status"], "issued");
    assert_eq!(issued["outstanding"], 12_500);
    let charged = account(app, &token, &patient_id).await;
    assert_eq!(
        (charged["currency"].clone(), charged["balance"].clone()),
        (json!("EUR"), json!(12_500))
    );

    // Act 2: a partial payment of 50.00 on the invoice.
    let first = pay(
        app,
        &token,
        "worked-1",
        &payment_body(&patient_id, 5_000, Some(&invoice_id)),
    )
    .await;
    let first = json_of(first, 201).await;
    assert_eq!(
        first["allocations"],
        json!([{"invoiceId": invoice_id, "amount": 5_000}])
    );
    let partly = invoice(app, &token, &invoice_id).await;
    assert_eq!(partly["status"], "partially_paid");
    assert_eq!(
        (partly["paid"].as_i64(), partly["outstanding"].as_i64()),
        (Some(5_000), Some(7_500))
    );

    // Act 3: an overpayment of 100.00: 75.00 settles the invoice, 25.00 is credit.
    let mut transfer = payment_body(&patient_id, 10_000, None);
    transfer["method"] = json!("bank_transfer");
    transfer["reference"] = json!("TR-2026-0042");
    let second = json_of(pay(app, &token, "worked-2", &transfer).await, 201).await;
    assert_eq!(
        second["allocations"],
        json!([{"invoiceId": invoice_id, "amount": 7_500}])
    );
    assert_eq!(invoice(app, &token, &invoice_id).await["status"], "paid");
    assert_eq!(account(app, &token, &patient_id).await["balance"], -2_500);

    // Act 4: 10.00 of the transfer refunded, taken from its unapplied part.
    let second_id = second["id"].as_str().unwrap();
    let refund = app
        .post(
            &token,
            &format!("/api/billing/payments/{second_id}/refund"),
            &json!({"amount": 1_000}),
        )
        .await;
    let refund = json_of(refund, 201).await;
    assert_eq!(
        (refund["amount"].as_i64(), refund["currency"].as_str()),
        (Some(1_000), Some("EUR"))
    );
    assert_eq!(invoice(app, &token, &invoice_id).await["status"], "paid");
    let paid_back = json_of(
        app.get(&token, &format!("/api/billing/payments/{second_id}"))
            .await,
        200,
    )
    .await;
    assert_eq!(paid_back["refunded"], 1_000);

    // Assert: the balance is a 15.00 credit, and the statement adds up to it.
    let settled = account(app, &token, &patient_id).await;
    assert_eq!(settled["balance"], -1_500);
    let full = statement(app, &token, &patient_id, "").await;
    assert_eq!(full["currency"], "EUR");
    assert_eq!(full["openingBalance"], 0);
    assert_eq!(
        amounts(&full),
        [
            ("charge".to_string(), 12_500),
            ("payment".to_string(), -5_000),
            ("payment".to_string(), -10_000),
            ("refund".to_string(), 1_000),
        ]
    );
    assert_eq!(full["closingBalance"], -1_500);
    assert_eq!(full["entries"][0]["invoiceId"], invoice_id.as_str());
    assert_eq!(full["entries"][2]["reference"], "TR-2026-0042");
    assert_eq!(full["entries"][3]["paymentId"], second_id);
    // A period starting tomorrow opens with everything before it and has no entries.
    let tomorrow = (chrono::Utc::now().date_naive() + chrono::Days::new(1)).format("%Y-%m-%d");
    let later = statement(app, &token, &patient_id, &format!("?from={tomorrow}")).await;
    assert_eq!(later["openingBalance"], -1_500);
    assert_eq!(later["entries"], json!([]));
    assert_eq!(later["closingBalance"], -1_500);

    // The events reach the log and are counted once each by analytics.
    app.eventually(EVENT_WAIT, "the billing events to be counted", || async {
        let summary: Value = app
            .get(&token, "/api/analytics/summary")
            .await
            .json()
            .await
            .ok()?;
        let by_type = &summary["eventsByType"];
        let counted = by_type["InvoiceIssued"] == 1
            && by_type["PaymentRecorded"] == 2
            && by_type["PaymentRefunded"] == 1;
        counted.then_some(())
    })
    .await;
}

async fn statuses_follow_payments_and_a_void_frees_credit(app: &TestApp) {
    // Arrange
    let token = app.demo_token().await;
    let patient_id = patient_with_account(app, &token, "statuses@example.com").await;
    let first = issued_invoice(
        app,
        &token,
        &invoice_body(&patient_id, "EUR", &[("A", 1, 3_000)]),
    )
    .await;
    let first_id = first["id"].as_str().unwrap().to_string();

    // Act + Assert: issued -> partially paid; a second issue is a 409.
    json_of(
        pay(app, &token, "s-1", &payment_body(&patient_id, 1_000, None)).await,
        201,
    )
    .await;
    assert_eq!(
        invoice(app, &token, &first_id).await["status"],
        "partially_paid"
    );
    let again = app
        .post(
            &token,
            &format!("/api/billing/invoices/{first_id}/issue"),
            &json!({}),
        )
        .await;
    assert_eq!(again.status(), 409);

    // Voiding reverses the charge: what was paid becomes a 10.00 credit.
    let voided = app
        .client
        .post(app.url(&format!("/api/billing/invoices/{first_id}/void")))
        .bearer_auth(&token)
        .json(&json!({"reason": "issued twice"}))
        .send()
        .await
        .unwrap();
    let voided = json_of(voided, 200).await;
    assert_eq!(
        (voided["status"].as_str(), voided["outstanding"].as_i64()),
        (Some("void"), Some(0))
    );
    assert_eq!(account(app, &token, &patient_id).await["balance"], -1_000);
    let kinds = amounts(&statement(app, &token, &patient_id, "").await);
    assert_eq!(
        kinds.last().unwrap(),
        &("charge_reversal".to_string(), -3_000)
    );

    // The next issue takes the credit (partially paid), a payment finishes it (paid).
    let second = issued_invoice(
        app,
        &token,
        &invoice_body(&patient_id, "EUR", &[("B", 1, 2_500)]),
    )
    .await;
    let second_id = second["id"].as_str().unwrap().to_string();
    assert_eq!(
        (second["status"].as_str(), second["paid"].as_i64()),
        (Some("partially_paid"), Some(1_000))
    );
    json_of(
        pay(
            app,
            &token,
            "s-2",
            &payment_body(&patient_id, 1_500, Some(&second_id)),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(invoice(app, &token, &second_id).await["status"], "paid");
    assert_eq!(account(app, &token, &patient_id).await["balance"], 0);
    let void_paid = app
        .post(
            &token,
            &format!("/api/billing/invoices/{second_id}/void"),
            &json!({}),
        )
        .await;
    assert_eq!(void_paid.status(), 409);

    // A draft voids without touching the ledger; the list filters by patient and status.
    let draft = json_of(
        app.post(
            &token,
            "/api/billing/invoices",
            &invoice_body(&patient_id, "EUR", &[("C", 2, 100)]),
        )
        .await,
        201,
    )
    .await;
    let draft_id = draft["id"].as_str().unwrap();
    let bare_void = app
        .client
        .post(app.url(&format!("/api/billing/invoices/{draft_id}/void")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(bare_void, 200).await["status"], "void");
    assert_eq!(account(app, &token, &patient_id).await["balance"], 0);
    let void_page = json_of(
        app.get(
            &token,
            &format!("/api/billing/invoices?patientId={patient_id}&status=void"),
        )
        .await,
        200,
    )
    .await;
    let void_ids: Vec<&str> = void_page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap())
        .collect();
    assert_eq!(void_ids, [draft_id, first_id.as_str()]);

    // Another currency than the account's is a 400 naming it, for invoices and payments.
    let dollars = app
        .post(
            &token,
            "/api/billing/invoices",
            &invoice_body(&patient_id, "USD", &[("D", 1, 100)]),
        )
        .await;
    assert_eq!(problem_fields(dollars, 400).await, ["currency"]);
    let mut dollar_payment = payment_body(&patient_id, 100, None);
    dollar_payment["currency"] = json!("USD");
    assert_eq!(
        problem_fields(pay(app, &token, "s-usd", &dollar_payment).await, 400).await,
        ["currency"]
    );

    // A write-off settles what is left of an invoice; an adjustment moves the balance.
    let third = issued_invoice(
        app,
        &token,
        &invoice_body(&patient_id, "EUR", &[("E", 1, 700)]),
    )
    .await;
    let third_id = third["id"].as_str().unwrap();
    let write_off = app
        .post(
            &token,
            &format!("/api/billing/accounts/{patient_id}/adjustments"),
            &json!({"amount": 700, "currency": "EUR", "kind": "write_off", "reason": "hardship", "invoiceId": third_id}),
        )
        .await;
    let write_off = json_of(write_off, 201).await;
    assert_eq!(
        (write_off["kind"].as_str(), write_off["amount"].as_i64()),
        (Some("write_off"), Some(-700))
    );
    assert_eq!(invoice(app, &token, third_id).await["status"], "paid");
    let goodwill = app
        .post(
            &token,
            &format!("/api/billing/accounts/{patient_id}/adjustments"),
            &json!({"amount": -250, "currency": "EUR", "kind": "adjustment", "reason": "goodwill"}),
        )
        .await;
    assert_eq!(json_of(goodwill, 201).await["amount"], -250);
    assert_eq!(account(app, &token, &patient_id).await["balance"], -250);
}

async fn payments_are_counted_once_retried_or_concurrent(app: &TestApp) {
    // Arrange: 1000.00 owed.
    let token = app.demo_token().await;
    let patient_id = patient_with_account(app, &token, "payments@example.com").await;
    issued_invoice(
        app,
        &token,
        &invoice_body(&patient_id, "EUR", &[("BIG", 1, 100_000)]),
    )
    .await;

    // Act + Assert: without Idempotency-Key, a 400 naming the header, and nothing recorded.
    let keyless = app
        .post(
            &token,
            "/api/billing/payments",
            &payment_body(&patient_id, 100, None),
        )
        .await;
    assert_eq!(problem_fields(keyless, 400).await, ["Idempotency-Key"]);
    assert_eq!(account(app, &token, &patient_id).await["balance"], 100_000);

    // A retry answers the first payment (201, replayed) and is counted once.
    let body = payment_body(&patient_id, 2_000, None);
    let first = pay(app, &token, "retry-1", &body).await;
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first = json_of(first, 201).await;
    let retry = pay(app, &token, "retry-1", &body).await;
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(json_of(retry, 201).await["id"], first["id"]);
    assert_eq!(account(app, &token, &patient_id).await["balance"], 98_000);
    // The same key with another body is a 422, and records nothing.
    let changed = pay(
        app,
        &token,
        "retry-1",
        &payment_body(&patient_id, 2_001, None),
    )
    .await;
    assert_eq!(changed.status(), 422);
    assert_eq!(account(app, &token, &patient_id).await["balance"], 98_000);

    // Ten concurrent payments with their own keys are each counted exactly once.
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..10 {
        let (client, url, token) = (
            app.client.clone(),
            app.url("/api/billing/payments"),
            token.clone(),
        );
        let body = payment_body(&patient_id, 100 + n, None);
        tasks.spawn(async move {
            let response = client
                .post(url)
                .bearer_auth(token)
                .header("Idempotency-Key", format!("parallel-{n}"))
                .json(&body)
                .send()
                .await
                .unwrap();
            json_of(response, 201).await["id"]
                .as_str()
                .unwrap()
                .to_string()
        });
    }
    let mut ids = tasks.join_all().await;
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 10);
    // 100 + 101 + ... + 109 = 1045.
    assert_eq!(
        account(app, &token, &patient_id).await["balance"],
        98_000 - 1_045
    );

    // Ten concurrent retries of one key record one payment, and all answer it.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let (client, url, token) = (
            app.client.clone(),
            app.url("/api/billing/payments"),
            token.clone(),
        );
        let body = payment_body(&patient_id, 3_000, None);
        tasks.spawn(async move {
            let response = client
                .post(url)
                .bearer_auth(token)
                .header("Idempotency-Key", "storm")
                .json(&body)
                .send()
                .await
                .unwrap();
            json_of(response, 201).await["id"]
                .as_str()
                .unwrap()
                .to_string()
        });
    }
    let mut storm_ids = tasks.join_all().await;
    storm_ids.dedup();
    assert_eq!(storm_ids.len(), 1, "{storm_ids:?}");
    let balance = account(app, &token, &patient_id).await["balance"]
        .as_i64()
        .unwrap();
    assert_eq!(balance, 98_000 - 1_045 - 3_000);
    let full = statement(app, &token, &patient_id, "").await;
    let num_payments = amounts(&full)
        .iter()
        .filter(|(kind, _)| kind == "payment")
        .count();
    assert_eq!(num_payments, 1 + 10 + 1);
    assert_eq!(full["closingBalance"], balance);

    // A refund cannot exceed what is left of the payment.
    let first_id = first["id"].as_str().unwrap();
    let refund_path = format!("/api/billing/payments/{first_id}/refund");
    let too_much = app
        .post(&token, &refund_path, &json!({"amount": 2_001}))
        .await;
    assert_eq!(problem_fields(too_much, 400).await, ["amount"]);
    json_of(
        app.post(&token, &refund_path, &json!({"amount": 1_500}))
            .await,
        201,
    )
    .await;
    let rest_plus_one = app
        .post(&token, &refund_path, &json!({"amount": 501}))
        .await;
    assert_eq!(problem_fields(rest_plus_one, 400).await, ["amount"]);
    json_of(
        app.post(&token, &refund_path, &json!({"amount": 500}))
            .await,
        201,
    )
    .await;
    assert_eq!(
        account(app, &token, &patient_id).await["balance"],
        balance + 2_000
    );
}
