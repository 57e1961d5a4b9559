//! Random sequences of invoices, payments, refunds, voids and manual entries (a fixed list of
//! seeds, so a failure replays): after every step the balance is the ledger's sum and agrees
//! with what the invoices still owe and what the payments left as credit.

use uuid::Uuid;
use ward_bus::BillingApi;
use ward_bus::billing::{AdjustmentInput, InvoiceStatus, LedgerKind, NewAdjustment};
use ward_core::WardError;

use crate::helpers::{Backend, Harness, fresh_key, invoice, payment};

/// splitmix64: enough randomness for choosing steps, with no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut mixed = self.0;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        mixed ^ (mixed >> 31)
    }

    /// In `low..=high`.
    fn between(&mut self, low: i64, high: i64) -> i64 {
        low + (self.next() % (high - low + 1) as u64) as i64
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        if items.is_empty() {
            return None;
        }
        Some(items[(self.next() % items.len() as u64) as usize])
    }
}

/// An error a random step may meet by design (a void of a paid invoice, a refund too large...).
fn is_expected_refusal(error: &WardError) -> bool {
    matches!(
        error,
        WardError::AlreadyExists(_) | WardError::InvalidArgument { .. }
    )
}

/// How many steps of each kind succeeded (create, issue, void, pay, refund, manual entry), and
/// how many were refused by design.
#[derive(Default)]
struct Tally {
    num_succeeded: [usize; 6],
    num_refused: usize,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        for (mine, theirs) in self.num_succeeded.iter_mut().zip(other.num_succeeded) {
            *mine += theirs;
        }
        self.num_refused += other.num_refused;
    }

    /// Fails unless every kind of step succeeded and some were refused: a sequence generator
    /// that never voids or refunds would prove little.
    fn assert_covers_every_step(&self) {
        assert!(
            self.num_succeeded.iter().all(|num| *num > 0),
            "{:?}",
            self.num_succeeded
        );
        assert!(self.num_refused > 0);
    }
}

fn kind_of(choice: i64) -> usize {
    match choice {
        0 | 1 => 0,
        2 | 3 => 1,
        4 => 2,
        5 | 6 => 3,
        7 | 8 => 4,
        _ => 5,
    }
}

async fn random_sequence(app: &Harness, seed: u64, num_steps: usize) -> Tally {
    let mut tally = Tally::default();
    let mut rng = Rng(seed);
    let patient_id = app.open_account().await;
    let mut invoice_ids: Vec<Uuid> = Vec::new();
    let mut payment_ids: Vec<Uuid> = Vec::new();
    for step in 0..num_steps {
        let choice = rng.between(0, 9);
        let outcome = match choice {
            0 | 1 => {
                let num_lines = rng.between(1, 3) as usize;
                let lines: Vec<(i64, i64)> = (0..num_lines)
                    .map(|_| (rng.between(1, 4), rng.between(50, 1500)))
                    .collect();
                app.service
                    .create_invoice(&app.ctx, invoice(patient_id, "EUR", &lines))
                    .await
                    .map(|created| invoice_ids.push(created.id))
            }
            2 | 3 => match rng.pick(&invoice_ids) {
                Some(invoice_id) => app
                    .service
                    .issue_invoice(&app.ctx, invoice_id)
                    .await
                    .map(drop),
                None => continue,
            },
            4 => match rng.pick(&invoice_ids) {
                Some(invoice_id) => app
                    .service
                    .void_invoice(&app.ctx, invoice_id, "random".into())
                    .await
                    .map(drop),
                None => continue,
            },
            5 | 6 => {
                let named_opt = if rng.between(0, 1) == 0 {
                    rng.pick(&invoice_ids)
                } else {
                    None
                };
                let amount = rng.between(1, 3000);
                app.service
                    .record_payment(
                        &app.ctx,
                        payment(patient_id, amount, named_opt),
                        fresh_key(),
                    )
                    .await
                    .map(|receipt| payment_ids.push(receipt.payment.id))
            }
            7 | 8 => match rng.pick(&payment_ids) {
                Some(payment_id) => {
                    let amount = rng.between(1, 1500);
                    app.service
                        .refund_payment(&app.ctx, payment_id, amount, None)
                        .await
                        .map(drop)
                }
                None => continue,
            },
            _ => {
                let is_write_off = rng.between(0, 1) == 0;
                let invoice_id_opt = if is_write_off {
                    rng.pick(&invoice_ids)
                } else {
                    None
                };
                let input = AdjustmentInput {
                    amount: Some(rng.between(-500, 500))
                        .filter(|amount| *amount != 0)
                        .or(Some(7)),
                    currency: Some("EUR".into()),
                    kind: Some(
                        if is_write_off {
                            "write_off"
                        } else {
                            "adjustment"
                        }
                        .into(),
                    ),
                    reason: Some("random".into()),
                    invoice_id: invoice_id_opt.map(|id| id.to_string()),
                };
                let adjustment = NewAdjustment::parse(patient_id, input).unwrap();
                app.service
                    .post_adjustment(&app.ctx, adjustment)
                    .await
                    .map(drop)
            }
        };
        match outcome {
            Ok(()) => tally.num_succeeded[kind_of(choice)] += 1,
            Err(error) => {
                assert!(
                    is_expected_refusal(&error),
                    "seed {seed} step {step} choice {choice}: {error:?}"
                );
                tally.num_refused += 1;
            }
        }
        check_invariants(app, patient_id, &invoice_ids, &payment_ids, seed, step).await;
    }
    tally
}

async fn check_invariants(
    app: &Harness,
    patient_id: Uuid,
    invoice_ids: &[Uuid],
    payment_ids: &[Uuid],
    seed: u64,
    step: usize,
) {
    let context = format!("seed {seed} step {step}");
    let balance = app.balance(patient_id).await;
    assert_eq!(balance, app.ledger_sum(patient_id).await, "{context}");
    let mut outstanding_sum = 0;
    let mut paid_sum = 0;
    for invoice_id in invoice_ids {
        let invoice = app
            .service
            .get_invoice(&app.ctx, *invoice_id)
            .await
            .unwrap();
        let outstanding = invoice.outstanding();
        assert!(
            (0..=invoice.total).contains(&outstanding),
            "{context}: {invoice:?}"
        );
        assert!(
            (0..=invoice.total).contains(&invoice.paid),
            "{context}: {invoice:?}"
        );
        let expected_status = match invoice.status {
            InvoiceStatus::Draft | InvoiceStatus::Void => {
                assert_eq!(invoice.paid, 0, "{context}: {invoice:?}");
                invoice.status
            }
            _ if invoice.paid >= invoice.total => InvoiceStatus::Paid,
            _ if invoice.paid == 0 => InvoiceStatus::Issued,
            _ => InvoiceStatus::PartiallyPaid,
        };
        assert_eq!(invoice.status, expected_status, "{context}: {invoice:?}");
        outstanding_sum += outstanding;
        paid_sum += invoice.paid;
    }
    let mut credit_sum = 0;
    let mut allocated_sum = 0;
    for payment_id in payment_ids {
        let payment = app
            .service
            .get_payment(&app.ctx, *payment_id)
            .await
            .unwrap();
        let allocated: i64 = payment
            .allocations
            .iter()
            .map(|allocation| allocation.amount)
            .sum();
        assert!(
            payment
                .allocations
                .iter()
                .all(|allocation| allocation.amount > 0),
            "{context}"
        );
        assert!(
            (0..=payment.amount).contains(&payment.refunded),
            "{context}: {payment:?}"
        );
        let credit = payment.amount - payment.refunded - allocated;
        assert!(credit >= 0, "{context}: {payment:?}");
        credit_sum += credit;
        allocated_sum += allocated;
    }
    let written_off_sum = paid_sum - allocated_sum;
    assert!(written_off_sum >= 0, "{context}");
    let statement = app
        .service
        .statement(&app.ctx, patient_id, None, None)
        .await
        .unwrap();
    let manual_sum: i64 = statement
        .entries
        .iter()
        .filter(|entry| matches!(entry.kind, LedgerKind::Adjustment | LedgerKind::WriteOff))
        .map(|entry| entry.amount)
        .sum();
    assert_eq!(statement.closing_balance, balance, "{context}");
    // What invoices owe, less the payments' credit; manual entries move the balance on their
    // own, except for the part of a write-off that settled an invoice (already out of
    // `outstanding_sum`).
    assert_eq!(
        balance,
        outstanding_sum - credit_sum + manual_sum + written_off_sum,
        "{context}"
    );
}

const SEEDS: [u64; 6] = [1, 7, 42, 2024, 0xDEAD_BEEF, 987_654_321];

#[tokio::test]
async fn random_sequences_keep_the_books_balanced_on_sqlite() {
    let app = Harness::start(Backend::Sqlite).await;
    let mut tally = Tally::default();
    for seed in SEEDS {
        tally.add(random_sequence(&app, seed, 60).await);
    }
    tally.assert_covers_every_step();
    app.finish().await;
}

#[tokio::test]
async fn random_sequences_keep_the_books_balanced_on_postgres() {
    let app = Harness::start(Backend::Postgres).await;
    let mut tally = Tally::default();
    for seed in &SEEDS[..2] {
        tally.add(random_sequence(&app, *seed, 40).await);
    }
    tally.assert_covers_every_step();
    app.finish().await;
}
