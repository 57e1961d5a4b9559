//! Billing's invariants over random sequences (a seeded xorshift, so a failure replays), and its
//! edges: rights, missing tokens, hostile bodies and query strings.

use serde_json::{Value, json};

use crate::billing::{
    account, invoice, invoice_body, patient_with_account, pay, payment_body, problem_fields,
    statement,
};
use crate::both_deployments;
use crate::helpers::{TestApp, Workdir, json_of};

both_deployments!(random_sequences_keep_balance_statement_and_invoices_consistent);

const SEEDS: [u64; 3] = [0x9e37_79b9_7f4a_7c15, 42, 2026];
const STEPS_PER_SEED: usize = 15;

/// Marsaglia's xorshift64: enough randomness for choosing steps, and no dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// In `0..bound`.
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    fn pick<'a>(&mut self, items: &'a [String]) -> Option<&'a String> {
        if items.is_empty() {
            return None;
        }
        items.get(self.below(items.len() as u64) as usize)
    }
}

async fn random_sequences_keep_balance_statement_and_invoices_consistent(app: &TestApp) {
    let token = app.demo_token().await;
    for seed in SEEDS {
        run_seed(app, &token, seed).await;
    }
}

async fn run_seed(app: &TestApp, token: &str, seed: u64) {
    let patient_id = patient_with_account(app, token, &format!("seed-{seed}@example.com")).await;
    let mut rng = XorShift(seed);
    let mut invoice_ids: Vec<String> = Vec::new();
    let mut payment_ids: Vec<String> = Vec::new();
    for step in 0..STEPS_PER_SEED {
        let what = format!("seed {seed} step {step}");
        match rng.below(6) {
            // A new invoice of 1 to 3 lines, issued two times out of three.
            0 | 1 => {
                let num_lines = 1 + rng.below(3);
                let mut lines = Vec::new();
                for _ in 0..num_lines {
                    lines.push(("L", 1 + rng.below(3) as i64, 100 + rng.below(5_000) as i64));
                }
                let body = invoice_body(&patient_id, "EUR", &lines);
                let draft =
                    json_of(app.post(token, "/api/billing/invoices", &body).await, 201).await;
                let id = draft["id"].as_str().unwrap().to_string();
                if rng.below(3) > 0 {
                    let path = format!("/api/billing/invoices/{id}/issue");
                    json_of(app.post(token, &path, &json!({})).await, 200).await;
                }
                invoice_ids.push(id);
            }
            // A payment, to a named invoice half the time.
            2 => {
                let invoice_id_opt = if rng.below(2) == 0 {
                    rng.pick(&invoice_ids).cloned()
                } else {
                    None
                };
                let amount = 1 + rng.below(8_000) as i64;
                let body = payment_body(&patient_id, amount, invoice_id_opt.as_deref());
                let key = format!("prop-{seed}-{step}");
                let payment = json_of(pay(app, token, &key, &body).await, 201).await;
                payment_ids.push(payment["id"].as_str().unwrap().to_string());
            }
            // A refund of up to a little more than is left: over the rest is a 400.
            3 => {
                let Some(payment_id) = rng.pick(&payment_ids).cloned() else {
                    continue;
                };
                let path = format!("/api/billing/payments/{payment_id}");
                let payment = json_of(app.get(token, &path).await, 200).await;
                let left =
                    payment["amount"].as_i64().unwrap() - payment["refunded"].as_i64().unwrap();
                let amount = 1 + rng.below(left as u64 + 500) as i64;
                let refund = app
                    .post(token, &format!("{path}/refund"), &json!({"amount": amount}))
                    .await;
                if amount <= left {
                    json_of(refund, 201).await;
                } else {
                    assert_eq!(problem_fields(refund, 400).await, ["amount"], "{what}");
                }
            }
            // A void: a draft, issued or partly paid invoice voids; a paid or void one is a 409.
            4 => {
                let Some(invoice_id) = rng.pick(&invoice_ids).cloned() else {
                    continue;
                };
                let before = invoice(app, token, &invoice_id).await;
                let path = format!("/api/billing/invoices/{invoice_id}/void");
                let response = app.post(token, &path, &json!({"reason": "random"})).await;
                let voidable = matches!(
                    before["status"].as_str(),
                    Some("draft" | "issued" | "partially_paid")
                );
                let expected = if voidable { 200 } else { 409 };
                assert_eq!(response.status(), expected, "{what}: {before}");
            }
            // Issuing a random invoice: only a draft may be issued.
            _ => {
                let Some(invoice_id) = rng.pick(&invoice_ids).cloned() else {
                    continue;
                };
                let before = invoice(app, token, &invoice_id).await;
                let path = format!("/api/billing/invoices/{invoice_id}/issue");
                let response = app.post(token, &path, &json!({})).await;
                let expected = if before["status"] == "draft" {
                    200
                } else {
                    409
                };
                assert_eq!(response.status(), expected, "{what}: {before}");
            }
        }
        check_consistency(app, token, &patient_id, &invoice_ids, &payment_ids, &what).await;
    }
}

/// balance == closing balance == the entries' sum; each invoice's status matches what is paid on
/// it; each payment's allocations and refunds fit in it; and what is owed on open invoices minus
/// the payments' unapplied money is the balance.
async fn check_consistency(
    app: &TestApp,
    token: &str,
    patient_id: &str,
    invoice_ids: &[String],
    payment_ids: &[String],
    what: &str,
) {
    let balance = account(app, token, patient_id).await["balance"]
        .as_i64()
        .unwrap();
    let full = statement(app, token, patient_id, "").await;
    let entries_sum: i64 = full["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["amount"].as_i64().unwrap())
        .sum();
    assert_eq!(full["openingBalance"], 0, "{what}");
    assert_eq!(full["closingBalance"], balance, "{what}");
    assert_eq!(entries_sum, balance, "{what}");

    let mut owed = 0;
    for invoice_id in invoice_ids {
        let invoice = invoice(app, token, invoice_id).await;
        let (total, paid, outstanding) = (
            invoice["total"].as_i64().unwrap(),
            invoice["paid"].as_i64().unwrap(),
            invoice["outstanding"].as_i64().unwrap(),
        );
        let status = invoice["status"].as_str().unwrap();
        let consistent = match status {
            "draft" => paid == 0 && outstanding == 0,
            "issued" => paid == 0 && outstanding == total,
            "partially_paid" => 0 < paid && paid < total && outstanding == total - paid,
            "paid" => outstanding == 0 && paid == total,
            "void" => outstanding == 0,
            _ => false,
        };
        assert!(consistent, "{what}: {invoice}");
        owed += outstanding;
    }
    let mut unapplied = 0;
    for payment_id in payment_ids {
        let payment = json_of(
            app.get(token, &format!("/api/billing/payments/{payment_id}"))
                .await,
            200,
        )
        .await;
        let allocated: i64 = payment["allocations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|allocation| allocation["amount"].as_i64().unwrap())
            .sum();
        let left =
            payment["amount"].as_i64().unwrap() - payment["refunded"].as_i64().unwrap() - allocated;
        assert!(left >= 0, "{what}: {payment}");
        unapplied += left;
    }
    assert_eq!(owed - unapplied, balance, "{what}");
}

/// Creates a user with `role` and returns its token.
async fn token_for_role(app: &TestApp, admin_token: &str, role: &str) -> String {
    let email = format!("{role}@billing.test");
    let password = "correct horse battery staple";
    let body = json!({"email": email, "password": password, "role": role});
    json_of(app.post(admin_token, "/api/users", &body).await, 201).await;
    json_of(app.login(&email, password).await, 200).await["token"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn rights_tokens_and_hostile_input_are_clear_4xx() {
    // Arrange
    let dir = Workdir::new();
    let app = TestApp::spawn(&dir.path, &["--demo"]).await;
    let admin = app.demo_token().await;
    let patient_id = patient_with_account(&app, &admin, "hostile@example.com").await;
    let analyst = token_for_role(&app, &admin, "analyst").await;
    let clinician = token_for_role(&app, &admin, "clinician").await;
    let issued = crate::billing::issued_invoice(
        &app,
        &admin,
        &invoice_body(&patient_id, "EUR", &[("X", 1, 1_000)]),
    )
    .await;
    let invoice_id = issued["id"].as_str().unwrap();

    // Rights: an analyst may neither write nor read billing; a clinician reads only.
    let writes: Vec<(String, Value)> = vec![
        (
            "/api/billing/invoices".into(),
            invoice_body(&patient_id, "EUR", &[("X", 1, 1)]),
        ),
        (
            format!("/api/billing/invoices/{invoice_id}/void"),
            json!({}),
        ),
        (
            format!("/api/billing/accounts/{patient_id}/adjustments"),
            json!({"amount": 1, "currency": "EUR", "kind": "adjustment", "reason": "x"}),
        ),
        (
            "/api/billing/payments".into(),
            payment_body(&patient_id, 100, None),
        ),
    ];
    for (path, body) in &writes {
        for token in [&analyst, &clinician] {
            let response = app
                .client
                .post(app.url(path))
                .bearer_auth(token)
                .header("Idempotency-Key", "rights")
                .json(body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 403, "{path}");
        }
        let anonymous = app
            .client
            .post(app.url(path))
            .json(body)
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status(), 401, "{path}");
    }
    let statement_path = format!("/api/billing/accounts/{patient_id}/statement");
    assert_eq!(app.get(&analyst, &statement_path).await.status(), 403);
    assert_eq!(app.get(&clinician, &statement_path).await.status(), 200);
    assert_eq!(
        app.client
            .get(app.url(&statement_path))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(account(&app, &admin, &patient_id).await["balance"], 1_000);

    // Bodies: wrong types, negatives, overflow and unknown members are 400s naming them.
    let mut body = invoice_body(&patient_id, "EUR", &[("X", 1, 1)]);
    body["lines"][0]["quantity"] = json!(-2);
    body["lines"][0]["unitPrice"] = json!(1e30);
    body["dueDate"] = json!(20300131);
    body["discount"] = json!(5);
    let fields = problem_fields(app.post(&admin, "/api/billing/invoices", &body).await, 400).await;
    for field in [
        "lines[0].quantity",
        "lines[0].unitPrice",
        "dueDate",
        "discount",
    ] {
        assert!(
            fields.iter().any(|named| named == field),
            "{field} in {fields:?}"
        );
    }
    let mut payment = payment_body(&patient_id, -5, None);
    payment["amount"] = json!(-5);
    payment["method"] = json!(3);
    payment["tip"] = json!(1);
    let fields = problem_fields(pay(&app, &admin, "hostile-1", &payment).await, 400).await;
    for field in ["amount", "method", "tip"] {
        assert!(
            fields.iter().any(|named| named == field),
            "{field} in {fields:?}"
        );
    }
    let huge = payment_body(&patient_id, 0, None);
    let huge_text = huge
        .to_string()
        .replace("\"amount\":0", "\"amount\":99999999999999999999999");
    let overflow = app
        .client
        .post(app.url("/api/billing/payments"))
        .bearer_auth(&admin)
        .header("Idempotency-Key", "hostile-2")
        .header("content-type", "application/json")
        .body(huge_text)
        .send()
        .await
        .unwrap();
    assert_eq!(problem_fields(overflow, 400).await, ["amount"]);
    let malformed = app
        .client
        .post(app.url("/api/billing/invoices"))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("{\"patientId\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let refund_path = format!("/api/billing/payments/{}/refund", uuid::Uuid::now_v7());
    assert_eq!(
        app.post(&admin, &refund_path, &json!({"amount": 5}))
            .await
            .status(),
        404
    );
    let fields = problem_fields(
        app.post(&admin, &refund_path, &json!({"amount": "5", "x": 1}))
            .await,
        400,
    )
    .await;
    assert_eq!(fields, ["amount", "x"]);

    // Query strings: unknown parameters and malformed dates are named.
    let fields = problem_fields(
        app.get(&admin, "/api/billing/invoices?patient=1&status=late")
            .await,
        400,
    )
    .await;
    assert_eq!(fields, ["patient", "status"]);
    let fields = problem_fields(
        app.get(
            &admin,
            &format!("{statement_path}?from=2026-13-01&to=yesterday"),
        )
        .await,
        400,
    )
    .await;
    assert_eq!(fields, ["from", "to"]);
    assert_eq!(
        app.get(&admin, "/api/billing/invoices/not-a-uuid")
            .await
            .status(),
        400
    );
    assert_eq!(
        app.get(
            &admin,
            &format!("/api/billing/invoices/{}", uuid::Uuid::now_v7())
        )
        .await
        .status(),
        404
    );
    assert_eq!(account(&app, &admin, &patient_id).await["balance"], 1_000);
}
