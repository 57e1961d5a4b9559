//! `/api/analytics/timeseries` and `/receivables` over the real binary, and
//! `ward analytics rebuild` on a one-process data folder.

use std::time::Duration;

use serde_json::{Value, json};

use crate::audit::{PASSWORD, create_user};
use crate::helpers::{TestApp, Workdir, json_of, ward_command};

const CATCH_UP: Duration = Duration::from_secs(30);

async fn log_in(app: &TestApp, email: &str) -> String {
    let body = json_of(app.login(email, PASSWORD).await, 200).await;
    body["token"].as_str().unwrap().to_string()
}

/// Registers one patient per date (emails made unique by `tag`); returns their ids.
async fn register_on(app: &TestApp, token: &str, tag: &str, dates: &[&str]) -> Vec<String> {
    let mut ids = Vec::new();
    for (number, date) in dates.iter().enumerate() {
        let body = json!({
            "name": format!("Analytics {tag} {number}"),
            "email": format!("analytics-{tag}-{number}@example.com"),
            "address": "1 Test Road, Springfield",
            "dateOfBirth": "1990-01-01",
            "registeredDate": date,
        });
        let created = json_of(app.post(token, "/api/patients", &body).await, 201).await;
        ids.push(created["id"].as_str().unwrap().to_string());
    }
    ids
}

/// Waits until analytics has counted `num_registered` registrations.
async fn caught_up(app: &TestApp, token: &str, num_registered: u64) -> Value {
    app.eventually(CATCH_UP, "analytics to count the registrations", || async {
        let response = app.get(token, "/api/analytics/summary").await;
        let summary: Value = response.json().await.ok()?;
        (summary["patientsRegistered"] == num_registered).then_some(summary)
    })
    .await
}

fn point_values(body: &Value) -> Vec<(String, i64)> {
    let mut values = Vec::new();
    for point in body["points"].as_array().unwrap() {
        values.push((
            point["start"].as_str().unwrap().to_string(),
            point["value"].as_i64().unwrap(),
        ));
    }
    values
}

fn problem_fields(body: &Value) -> Vec<String> {
    let mut fields = Vec::new();
    for error in body["errors"].as_array().unwrap() {
        fields.push(error["field"].as_str().unwrap().to_string());
    }
    fields
}

#[tokio::test]
async fn the_registrations_timeseries_matches_the_registered_patients() {
    // Arrange: the 15 demo patients, plus three registered on days of a week in 2021.
    let dir = Workdir::new();
    let app = TestApp::spawn(&dir.path, &["--demo"]).await;
    let token = app.demo_token().await;
    register_on(
        &app,
        &token,
        "ts",
        &["2021-06-15", "2021-06-15", "2021-06-17"],
    )
    .await;
    caught_up(&app, &token, 18).await;

    // Act
    let daily = app
        .get(
            &token,
            "/api/analytics/timeseries?metric=registrations&from=2021-06-14&to=2021-06-20",
        )
        .await;
    let weekly = app
        .get(&token, "/api/analytics/timeseries?metric=registrations&from=2021-06-01&to=2021-06-30&interval=week")
        .await;
    let monthly = app
        .get(&token, "/api/analytics/timeseries?metric=registrations&from=2021-05-01&to=2021-07-31&interval=month")
        .await;
    let default_range = app
        .get(&token, "/api/analytics/timeseries?metric=registrations")
        .await;

    // Assert: every bucket, zeros included.
    let daily = json_of(daily, 200).await;
    assert_eq!(daily["metric"], "registrations");
    assert_eq!(daily["interval"], "day");
    assert!(daily.get("currency").is_none(), "{daily}");
    let expected: Vec<(String, i64)> = [
        ("2021-06-14", 0),
        ("2021-06-15", 2),
        ("2021-06-16", 0),
        ("2021-06-17", 1),
        ("2021-06-18", 0),
        ("2021-06-19", 0),
        ("2021-06-20", 0),
    ]
    .iter()
    .map(|(start, value)| (start.to_string(), *value))
    .collect();
    assert_eq!(point_values(&daily), expected);
    let weekly = point_values(&json_of(weekly, 200).await);
    // 2021-06-01 was a Tuesday: the first ISO week starts on Monday 2021-05-31.
    assert_eq!(weekly[0].0, "2021-05-31");
    assert_eq!(weekly.len(), 5);
    assert_eq!(weekly[2], ("2021-06-14".to_string(), 3));
    let monthly = point_values(&json_of(monthly, 200).await);
    let expected_months: Vec<(String, i64)> =
        [("2021-05-01", 0), ("2021-06-01", 3), ("2021-07-01", 0)]
            .iter()
            .map(|(start, value)| (start.to_string(), *value))
            .collect();
    assert_eq!(monthly, expected_months);
    assert_eq!(
        json_of(default_range, 200).await["points"]
            .as_array()
            .unwrap()
            .len(),
        30
    );

    // With no money seen, money figures are zeros without a currency.
    let invoiced = app
        .get(
            &token,
            "/api/analytics/timeseries?metric=invoiced&from=2024-01-01&to=2024-01-03",
        )
        .await;
    let invoiced = json_of(invoiced, 200).await;
    assert!(invoiced.get("currency").is_none(), "{invoiced}");
    assert_eq!(
        point_values(&invoiced).iter().map(|(_, v)| *v).sum::<i64>(),
        0
    );
    let receivables = json_of(app.get(&token, "/api/analytics/receivables").await, 200).await;
    assert_eq!(receivables["currency"], Value::Null);
    assert_eq!(receivables["total"], 0);
    assert_eq!(
        receivables["buckets"],
        json!({"0-30": 0, "31-60": 0, "61-90": 0, "90+": 0})
    );
    assert!(receivables["asOf"].is_string());
    let summary = json_of(app.get(&token, "/api/analytics/summary").await, 200).await;
    assert_eq!(summary["activePatients"], 18);
    assert_eq!(summary["paymentsByMethod"], json!({}));
}

#[tokio::test]
async fn bad_parameters_are_400s_naming_them_and_other_roles_get_403() {
    // Arrange
    let dir = Workdir::new();
    let migrate = ward_command(&dir.path, &["migrate"]).output().unwrap();
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    create_user(&dir.path, "clinician@clinic.example", "clinician");
    create_user(&dir.path, "analyst@clinic.example", "analyst");
    let app = TestApp::spawn(&dir.path, &["--demo"]).await;
    let admin = app.demo_token().await;
    let clinician = log_in(&app, "clinician@clinic.example").await;
    let analyst = log_in(&app, "analyst@clinic.example").await;

    // Act + Assert: each bad request names what is wrong.
    let cases: [(&str, &[&str]); 9] = [
        ("/api/analytics/timeseries", &["metric"]),
        ("/api/analytics/timeseries?metric=revenue", &["metric"]),
        (
            "/api/analytics/timeseries?metric=registrations&interval=year",
            &["interval"],
        ),
        (
            "/api/analytics/timeseries?metric=registrations&from=2024-02-30",
            &["from"],
        ),
        (
            "/api/analytics/timeseries?metric=registrations&from=2024-02-02&to=2024-02-01",
            &["from"],
        ),
        (
            "/api/analytics/timeseries?metric=registrations&from=2000-01-01&to=2024-01-01",
            &["to"],
        ),
        (
            "/api/analytics/timeseries?metric=invoiced&currency=euros",
            &["currency"],
        ),
        (
            "/api/analytics/timeseries?metric=registrations&limit=5&sort=asc",
            &["limit", "sort"],
        ),
        (
            "/api/analytics/receivables?currency=EUR&asOf=2024-01-01",
            &["asOf"],
        ),
    ];
    for (path, fields) in cases {
        let response = app.get(&admin, path).await;
        assert_eq!(response.status(), 400, "{path}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(content_type, "application/problem+json", "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(problem_fields(&body), fields, "{path}: {body}");
    }

    // A role without analytics:read is refused; an analyst is not.
    for path in [
        "/api/analytics/timeseries?metric=registrations",
        "/api/analytics/receivables",
    ] {
        assert_eq!(app.get(&clinician, path).await.status(), 403, "{path}");
        assert_eq!(app.get(&analyst, path).await.status(), 200, "{path}");
        let anonymous = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(anonymous.status(), 401, "{path}");
    }
}

#[tokio::test]
async fn analytics_rebuild_reproduces_the_figures_after_a_restart() {
    use crate::billing::{invoice_body, issued_invoice, patient_with_account, pay, payment_body};

    // Arrange: a one-process folder with figures from the demo data, a few more patients (one
    // of them deleted), and money: an invoice paid in part, a refund and a voided invoice.
    let dir = Workdir::new();
    let app = TestApp::spawn(&dir.path, &["--demo"]).await;
    let token = app.demo_token().await;
    let ids = register_on(
        &app,
        &token,
        "rebuild",
        &["2022-02-01", "2022-02-03", "2022-03-01"],
    )
    .await;
    let doomed = &ids[0];
    assert_eq!(
        app.delete(&token, &format!("/api/patients/{doomed}"))
            .await
            .status(),
        204
    );
    let payer = patient_with_account(&app, &token, "payer@rebuild.example").await;
    let invoice = issued_invoice(
        &app,
        &token,
        &invoice_body(&payer, "EUR", &[("VISIT", 2, 4_250)]),
    )
    .await;
    let paid = pay(
        &app,
        &token,
        "rebuild-pay-1",
        &payment_body(&payer, 6_000, invoice["id"].as_str()),
    )
    .await;
    let payment = json_of(paid, 201).await;
    let refund_path = format!(
        "/api/billing/payments/{}/refund",
        payment["id"].as_str().unwrap()
    );
    json_of(
        app.post(&token, &refund_path, &json!({"amount": 1_500}))
            .await,
        201,
    )
    .await;
    let voided = issued_invoice(
        &app,
        &token,
        &invoice_body(&payer, "EUR", &[("NOTE", 1, 700)]),
    )
    .await;
    let void_path = format!(
        "/api/billing/invoices/{}/void",
        voided["id"].as_str().unwrap()
    );
    json_of(
        app.post(&token, &void_path, &json!({"reason": "issued twice"}))
            .await,
        200,
    )
    .await;
    // Explicit days around today, so the answers do not depend on when they are asked.
    let today = chrono::Utc::now().date_naive();
    let from = (today - chrono::Days::new(1)).format("%Y-%m-%d");
    let to = (today + chrono::Days::new(1)).format("%Y-%m-%d");
    let invoiced_path = format!("/api/analytics/timeseries?metric=invoiced&from={from}&to={to}");
    let collected_path =
        format!("/api/analytics/timeseries?metric=collected&from={from}&to={to}&interval=week");
    let paths = [
        "/api/analytics/summary",
        "/api/analytics/timeseries?metric=registrations&from=2022-01-01&to=2022-03-31&interval=week",
        "/api/analytics/timeseries?metric=registrations&from=2015-01-01&to=2025-01-01&interval=month",
        invoiced_path.as_str(),
        collected_path.as_str(),
        "/api/analytics/receivables",
    ];
    // Everything the log will hold has been counted: registrations, the delete, the accounts
    // billing opened for each patient and the money events.
    app.eventually(CATCH_UP, "analytics to count every event", || async {
        let response = app.get(&token, "/api/analytics/summary").await;
        let summary: Value = response.json().await.ok()?;
        let is_complete = summary["patientsRegistered"] == 19
            && summary["patientsDeleted"] == 1
            && summary["billingAccountsOpened"] == 19
            && summary["eventsByType"]["PaymentRefunded"] == 1
            && summary["eventsByType"]["InvoiceVoided"] == 1;
        is_complete.then_some(())
    })
    .await;
    let mut before = Vec::new();
    for path in paths {
        before.push(json_of(app.get(&token, path).await, 200).await);
    }
    assert_eq!(before[0]["activePatients"], 18);
    assert_eq!(
        before[0]["paymentsByMethod"],
        json!({"EUR": {"card": 4_500}})
    );
    let invoiced_total: i64 = point_values(&before[3]).iter().map(|(_, v)| v).sum();
    assert_eq!(invoiced_total, 8_500, "{}", before[3]);
    assert_eq!(
        before[5]["buckets"],
        json!({"0-30": 4_000, "31-60": 0, "61-90": 0, "90+": 0})
    );
    assert!(app.stop().success());

    // Act
    let output = ward_command(&dir.path, &["analytics", "rebuild"])
        .output()
        .unwrap();

    // Assert: it replayed every event, and the restarted server answers exactly as before.
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let replayed: u64 = stdout
        .split_whitespace()
        .skip_while(|word| *word != "replayed")
        .nth(1)
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no event count in {stdout:?}"));
    // 19 registrations, the delete, 19 accounts, 2 issues, a payment, a refund and a void.
    assert!(replayed >= 19 + 1 + 19 + 5, "{stdout}");
    let app = TestApp::spawn(&dir.path, &[]).await;
    let token = app.demo_token().await;
    for (path, expected) in paths.iter().zip(&before) {
        let after = json_of(app.get(&token, path).await, 200).await;
        assert_eq!(&after, expected, "{path}");
    }
}

#[tokio::test]
async fn invoices_and_payments_show_up_in_invoiced_collected_and_receivables() {
    use crate::billing::{invoice_body, issued_invoice, patient_with_account, pay, payment_body};

    // Arrange: an issued invoice of 100.00, a 40.00 card payment on it with 10.00 refunded, and
    // a 5.00 invoice issued then voided, all today.
    let dir = Workdir::new();
    let app = TestApp::spawn(&dir.path, &["--demo"]).await;
    let token = app.demo_token().await;
    let patient_id = patient_with_account(&app, &token, "payer@analytics.example").await;
    let first = issued_invoice(
        &app,
        &token,
        &invoice_body(&patient_id, "EUR", &[("VISIT", 1, 10_000)]),
    )
    .await;
    let first_id = first["id"].as_str().unwrap();
    let paid = pay(
        &app,
        &token,
        "analytics-pay-1",
        &payment_body(&patient_id, 4_000, Some(first_id)),
    )
    .await;
    let payment = json_of(paid, 201).await;
    let refund_path = format!(
        "/api/billing/payments/{}/refund",
        payment["id"].as_str().unwrap()
    );
    json_of(
        app.post(&token, &refund_path, &json!({"amount": 1_000}))
            .await,
        201,
    )
    .await;
    let second = issued_invoice(
        &app,
        &token,
        &invoice_body(&patient_id, "EUR", &[("NOTE", 1, 500)]),
    )
    .await;
    let void_path = format!(
        "/api/billing/invoices/{}/void",
        second["id"].as_str().unwrap()
    );
    json_of(
        app.post(&token, &void_path, &json!({"reason": "issued twice"}))
            .await,
        200,
    )
    .await;

    // Act: wait until analytics has every billing event.
    let summary = app
        .eventually(
            CATCH_UP,
            "analytics to count the billing events",
            || async {
                let response = app.get(&token, "/api/analytics/summary").await;
                let summary: Value = response.json().await.ok()?;
                let is_complete = summary["eventsByType"]["PaymentRefunded"] == 1
                    && summary["eventsByType"]["InvoiceVoided"] == 1;
                is_complete.then_some(summary)
            },
        )
        .await;
    let invoiced = json_of(
        app.get(&token, "/api/analytics/timeseries?metric=invoiced")
            .await,
        200,
    )
    .await;
    let collected = json_of(
        app.get(
            &token,
            "/api/analytics/timeseries?metric=collected&interval=month",
        )
        .await,
        200,
    )
    .await;
    let receivables = json_of(app.get(&token, "/api/analytics/receivables").await, 200).await;

    // Assert: today's figures, in the only currency seen.
    assert_eq!(summary["paymentsByMethod"], json!({"EUR": {"card": 3_000}}));
    assert_eq!(invoiced["currency"], "EUR");
    let invoiced_points = point_values(&invoiced);
    assert_eq!(invoiced_points.last().unwrap().1, 10_000, "{invoiced}");
    assert_eq!(invoiced_points.iter().map(|(_, v)| *v).sum::<i64>(), 10_000);
    assert_eq!(
        point_values(&collected).last().unwrap().1,
        3_000,
        "{collected}"
    );
    assert_eq!(receivables["currency"], "EUR");
    assert_eq!(
        receivables["buckets"],
        json!({"0-30": 7_000, "31-60": 0, "61-90": 0, "90+": 0})
    );
    assert_eq!(receivables["total"], 7_000);
    // Another currency is simply empty.
    let pounds = json_of(
        app.get(&token, "/api/analytics/receivables?currency=GBP")
            .await,
        200,
    )
    .await;
    assert_eq!(pounds["total"], 0);
}
