//! The billing module's contract: accounts, an append-only ledger per account, invoices,
//! payments, refunds, adjustments and statements.
//!
//! Money is always integer minor units (`i64`, e.g. cents) of one ISO 4217 [`Currency`]; an
//! account holds one currency, fixed by its first money movement, and anything in another is
//! `InvalidArgument` naming `currency`. Every balance and statement is a sum over the ledger,
//! never a stored total that could drift.

mod input;
mod iso4217;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;
use ward_core::{CallerContext, WardError, WardResult};

use crate::patients::{IdempotencyKey, PageRequest};

pub type BillingClient = Arc<dyn BillingApi>;

/// The largest amount, either way, of a price, a payment, an adjustment or an invoice total:
/// 10^12 minor units (ten billion in a two-decimal currency), far from `i64` overflow even
/// summed over a long ledger.
pub const AMOUNT_MAX_ABS: i64 = 1_000_000_000_000;
/// The longest invoice line code.
pub const CODE_MAX_CHARS: usize = 32;
/// The longest invoice line description.
pub const DESCRIPTION_MAX_CHARS: usize = 200;
/// The most lines on one invoice.
pub const LINES_MAX: usize = 100;
/// The largest quantity on one line.
pub const QUANTITY_MAX: u32 = 10_000;
/// The longest payment reference.
pub const REFERENCE_MAX_CHARS: usize = 100;
/// The longest reason for an adjustment, a write-off or a void.
pub const REASON_MAX_CHARS: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountStatus {
    Active,
    /// The patient was merged into another as a duplicate; the other's account is the one
    /// that bills. Undone by an unmerge.
    Merged,
}

impl AccountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Active => "ACTIVE",
            AccountStatus::Merged => "MERGED",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "ACTIVE" => Some(AccountStatus::Active),
            "MERGED" => Some(AccountStatus::Merged),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingAccount {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub status: AccountStatus,
    pub opened_at: DateTime<Utc>,
    /// Fixed by the account's first ledger entry; `None` until then.
    pub currency_opt: Option<Currency>,
    /// The ledger's sum in minor units: positive, the patient owes; negative, a credit.
    pub balance: i64,
}

/// An ISO 4217 alphabetic code (`EUR`), known to the standard; upper case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency(String);

impl Currency {
    /// Parses a code, ignoring surrounding spaces and case; an unknown code is
    /// `InvalidArgument` naming `field`.
    pub fn parse(raw: &str, field: &str) -> WardResult<Self> {
        let code = raw.trim().to_ascii_uppercase();
        if !iso4217::is_active_code(&code) {
            return Err(WardError::invalid_field(
                field,
                format!("{field} must be an active ISO 4217 currency code, such as EUR"),
            ));
        }
        Ok(Self(code))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What the ledger records; each entry's `amount` is signed as it moves the balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LedgerKind {
    /// An issued invoice's total (+).
    Charge,
    /// A voided invoice's total reversed (-).
    ChargeReversal,
    /// Money received (-).
    Payment,
    /// Money returned (+).
    Refund,
    /// A manual correction, either sign.
    Adjustment,
    /// Debt given up (-).
    WriteOff,
}

impl LedgerKind {
    /// As in JSON and the database: `charge`, `charge_reversal`, `payment`, `refund`,
    /// `adjustment`, `write_off`.
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerKind::Charge => "charge",
            LedgerKind::ChargeReversal => "charge_reversal",
            LedgerKind::Payment => "payment",
            LedgerKind::Refund => "refund",
            LedgerKind::Adjustment => "adjustment",
            LedgerKind::WriteOff => "write_off",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            LedgerKind::Charge,
            LedgerKind::ChargeReversal,
            LedgerKind::Payment,
            LedgerKind::Refund,
            LedgerKind::Adjustment,
            LedgerKind::WriteOff,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == raw)
    }
}

/// One append-only ledger row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub at: DateTime<Utc>,
    pub kind: LedgerKind,
    /// Signed minor units, as the entry moves the balance.
    pub amount: i64,
    pub currency: Currency,
    /// What the entry is about, for a person: the invoice number, the payment's external
    /// reference, the adjustment's reason.
    pub reference: String,
    pub invoice_id_opt: Option<Uuid>,
    pub payment_id_opt: Option<Uuid>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InvoiceStatus {
    Draft,
    Issued,
    PartiallyPaid,
    Paid,
    Void,
}

impl InvoiceStatus {
    /// `draft`, `issued`, `partially_paid`, `paid`, `void`.
    pub fn as_str(self) -> &'static str {
        match self {
            InvoiceStatus::Draft => "draft",
            InvoiceStatus::Issued => "issued",
            InvoiceStatus::PartiallyPaid => "partially_paid",
            InvoiceStatus::Paid => "paid",
            InvoiceStatus::Void => "void",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            InvoiceStatus::Draft,
            InvoiceStatus::Issued,
            InvoiceStatus::PartiallyPaid,
            InvoiceStatus::Paid,
            InvoiceStatus::Void,
        ]
        .into_iter()
        .find(|status| status.as_str() == raw)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceLine {
    pub code: String,
    pub description: String,
    pub quantity: u32,
    /// Minor units; may be negative for a discount line.
    pub unit_price: i64,
    /// `quantity * unit_price`, checked for overflow when parsed.
    pub amount: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub status: InvoiceStatus,
    pub currency: Currency,
    pub lines: Vec<InvoiceLine>,
    /// The sum of the lines; never negative.
    pub total: i64,
    /// What payments, credit and write-offs have settled; `total - paid` is outstanding.
    pub paid: i64,
    pub due_date: NaiveDate,
    pub created_at: DateTime<Utc>,
    pub issued_at_opt: Option<DateTime<Utc>>,
    pub voided_at_opt: Option<DateTime<Utc>>,
}

impl Invoice {
    /// What is still owed on it: 0 for a draft or a void invoice.
    pub fn outstanding(&self) -> i64 {
        match self.status {
            InvoiceStatus::Draft | InvoiceStatus::Void => 0,
            InvoiceStatus::Issued | InvoiceStatus::PartiallyPaid | InvoiceStatus::Paid => {
                (self.total - self.paid).max(0)
            }
        }
    }

    /// Issued or partially paid, and `today` is after the due date.
    pub fn is_overdue(&self, today: NaiveDate) -> bool {
        let is_open = matches!(
            self.status,
            InvoiceStatus::Issued | InvoiceStatus::PartiallyPaid
        );
        is_open && today > self.due_date
    }
}

/// A draft invoice's lines as a client sent them; [`NewInvoice::parse`] checks them all and
/// reports every failing field at once (`lines[2].quantity`).
#[derive(Debug, Clone, Default)]
pub struct InvoiceInput {
    pub patient_id: Option<String>,
    pub currency: Option<String>,
    pub due_date: Option<String>,
    pub lines: Option<Vec<InvoiceLineInput>>,
}

#[derive(Debug, Clone, Default)]
pub struct InvoiceLineInput {
    pub code: Option<String>,
    pub description: Option<String>,
    pub quantity: Option<i64>,
    pub unit_price: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInvoice {
    pub patient_id: Uuid,
    pub currency: Currency,
    pub due_date: NaiveDate,
    pub lines: Vec<InvoiceLine>,
}

/// Filters for listing invoices, newest first; each filter is optional.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceQuery {
    pub patient_id_opt: Option<Uuid>,
    pub status_opt: Option<InvoiceStatus>,
    pub page: PageRequest,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoicePage {
    pub items: Vec<Invoice>,
    /// Pass back as `cursor` for the next page; `None` on the last page.
    pub next_cursor_opt: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentMethod {
    Card,
    Cash,
    BankTransfer,
    Cheque,
    Insurance,
    Other,
}

impl PaymentMethod {
    /// `card`, `cash`, `bank_transfer`, `cheque`, `insurance`, `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentMethod::Card => "card",
            PaymentMethod::Cash => "cash",
            PaymentMethod::BankTransfer => "bank_transfer",
            PaymentMethod::Cheque => "cheque",
            PaymentMethod::Insurance => "insurance",
            PaymentMethod::Other => "other",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            PaymentMethod::Card,
            PaymentMethod::Cash,
            PaymentMethod::BankTransfer,
            PaymentMethod::Cheque,
            PaymentMethod::Insurance,
            PaymentMethod::Other,
        ]
        .into_iter()
        .find(|method| method.as_str() == raw)
    }
}

#[derive(Debug, Clone, Default)]
pub struct PaymentInput {
    pub patient_id: Option<String>,
    pub amount: Option<i64>,
    pub currency: Option<String>,
    pub method: Option<String>,
    pub reference: Option<String>,
    pub invoice_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPayment {
    pub patient_id: Uuid,
    /// Minor units, > 0.
    pub amount: i64,
    pub currency: Currency,
    pub method: PaymentMethod,
    /// The processor's or bank's reference; may be empty.
    pub reference: String,
    /// Apply to this invoice first; without it the payment settles the oldest open invoices.
    pub invoice_id_opt: Option<Uuid>,
}

/// How much of a payment went to one invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    pub invoice_id: Uuid,
    pub amount: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub amount: i64,
    pub currency: Currency,
    pub method: PaymentMethod,
    pub reference: String,
    pub received_at: DateTime<Utc>,
    /// What is applied to invoices now; the rest of `amount - refunded` is the account's credit.
    pub allocations: Vec<Allocation>,
    pub refunded: i64,
}

/// A recorded payment, and whether this call recorded it (`false`: an `Idempotency-Key`
/// retry answered with the first call's payment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentReceipt {
    pub payment: Payment,
    pub newly_recorded: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    pub id: Uuid,
    pub payment_id: Uuid,
    pub patient_id: Uuid,
    pub amount: i64,
    pub currency: Currency,
    pub refunded_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
pub struct AdjustmentInput {
    pub amount: Option<i64>,
    pub currency: Option<String>,
    /// `adjustment` or `write_off`.
    pub kind: Option<String>,
    pub reason: Option<String>,
    pub invoice_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAdjustment {
    pub patient_id: Uuid,
    /// Signed as it moves the balance; a write-off is negative.
    pub amount: i64,
    pub currency: Currency,
    /// [`LedgerKind::Adjustment`] or [`LedgerKind::WriteOff`].
    pub kind: LedgerKind,
    /// Required: a manual entry must say why.
    pub reason: String,
    /// A write-off may settle this invoice.
    pub invoice_id_opt: Option<Uuid>,
}

/// An account's ledger over the UTC days `from..=to`: `to` is inclusive, so `from=2024-01-01&
/// to=2024-01-31` is all of January.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub patient_id: Uuid,
    pub currency_opt: Option<Currency>,
    pub from_opt: Option<NaiveDate>,
    pub to_opt: Option<NaiveDate>,
    /// The sum of every entry before `from` (0 without `from`).
    pub opening_balance: i64,
    /// In the order they were posted.
    pub entries: Vec<LedgerEntry>,
    /// `opening_balance` plus every entry.
    pub closing_balance: i64,
}

/// The reference's `BillingRequest{patientId,name,email}`.
#[derive(Debug, Clone)]
pub struct OpenAccountRequest {
    pub patient_id: Uuid,
    pub name: String,
    pub email: String,
}

#[async_trait]
pub trait BillingApi: Send + Sync + 'static {
    /// Opens the patient's account, or returns the one already open: exactly one per patient.
    /// Needs `billing:write`.
    async fn create_billing_account(
        &self,
        ctx: &CallerContext,
        request: OpenAccountRequest,
    ) -> WardResult<BillingAccount>;

    /// Needs `billing:read`; `NotFound` ("Billing account not found") when none is open.
    async fn get_account_by_patient(
        &self,
        ctx: &CallerContext,
        patient_id: Uuid,
    ) -> WardResult<BillingAccount>;

    /// A draft invoice. Needs `billing:write`; `NotFound` without an open account; `Conflict`
    /// (`AlreadyExists`) when the account was merged into another patient's; a currency other
    /// than the account's is `InvalidArgument` naming `currency` (the first invoice or payment
    /// fixes it).
    async fn create_invoice(&self, ctx: &CallerContext, invoice: NewInvoice)
    -> WardResult<Invoice>;

    /// Needs `billing:read`; `NotFound` ("Invoice not found").
    async fn get_invoice(&self, ctx: &CallerContext, invoice_id: Uuid) -> WardResult<Invoice>;

    /// Newest first. Needs `billing:read`.
    async fn list_invoices(
        &self,
        ctx: &CallerContext,
        query: InvoiceQuery,
    ) -> WardResult<InvoicePage>;

    /// Draft to issued: posts the total as a charge, applies the account's credit, emits
    /// `InvoiceIssued`. Needs `billing:write`; any other status is `Conflict` naming it.
    async fn issue_invoice(&self, ctx: &CallerContext, invoice_id: Uuid) -> WardResult<Invoice>;

    /// A draft becomes void with no ledger entry; an issued or partly paid one posts a charge
    /// reversal and frees what was applied to it as credit, and emits `InvoiceVoided`. Needs
    /// `billing:write`; a paid invoice ("refund the payments first"), a void one and one with
    /// a write-off are `Conflict`. A reason of more than [`REASON_MAX_CHARS`] is
    /// `InvalidArgument` naming `reason`.
    async fn void_invoice(
        &self,
        ctx: &CallerContext,
        invoice_id: Uuid,
        reason: String,
    ) -> WardResult<Invoice>;

    /// Records a payment once per `key` (same caller, same body: the first payment again;
    /// another body: `Unprocessable`); applies it to the named invoice, else the oldest open
    /// ones; the rest is credit. Emits `PaymentRecorded`. Needs `billing:write`; a named invoice
    /// that is not this patient's is `InvalidArgument` naming `invoiceId` (a draft, paid or void
    /// one simply takes nothing); a merged account is `Conflict`.
    async fn record_payment(
        &self,
        ctx: &CallerContext,
        payment: NewPayment,
        key: IdempotencyKey,
    ) -> WardResult<PaymentReceipt>;

    /// Needs `billing:read`; `NotFound` ("Payment not found").
    async fn get_payment(&self, ctx: &CallerContext, payment_id: Uuid) -> WardResult<Payment>;

    /// Returns up to what is left of the payment (more is `InvalidArgument` naming `amount`),
    /// reopening invoices it had paid when its credit does not cover it. Emits
    /// `PaymentRefunded`. With a key, a retry answers the first refund. Needs `billing:write`.
    async fn refund_payment(
        &self,
        ctx: &CallerContext,
        payment_id: Uuid,
        amount: i64,
        key_opt: Option<IdempotencyKey>,
    ) -> WardResult<Refund>;

    /// Posts an adjustment or write-off and emits `LedgerAdjusted`. Needs `billing:write`. A
    /// write-off naming an invoice settles up to that invoice's outstanding amount (the invoice
    /// must be issued or partly paid, else `Conflict`); the rest only lowers the balance.
    async fn post_adjustment(
        &self,
        ctx: &CallerContext,
        adjustment: NewAdjustment,
    ) -> WardResult<LedgerEntry>;

    /// The account's ledger over the UTC days `from..=to` (both inclusive, either optional: entries
    /// with `from 00:00 <= at < (to + 1 day) 00:00`). Needs `billing:read`;
    /// `NotFound` without an account; `from` after `to` is `InvalidArgument`.
    async fn statement(
        &self,
        ctx: &CallerContext,
        patient_id: Uuid,
        from_opt: Option<NaiveDate>,
        to_opt: Option<NaiveDate>,
    ) -> WardResult<Statement>;

    async fn check_ready(&self) -> WardResult<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invoice(status: InvoiceStatus, total: i64, paid: i64) -> Invoice {
        let due_date = NaiveDate::from_ymd_opt(2024, 3, 31).unwrap();
        Invoice {
            id: Uuid::nil(),
            patient_id: Uuid::nil(),
            status,
            currency: Currency::parse("EUR", "currency").unwrap(),
            lines: Vec::new(),
            total,
            paid,
            due_date,
            created_at: Utc::now(),
            issued_at_opt: None,
            voided_at_opt: None,
        }
    }

    #[test]
    fn only_issued_invoices_owe_anything() {
        assert_eq!(invoice(InvoiceStatus::Draft, 500, 0).outstanding(), 0);
        assert_eq!(invoice(InvoiceStatus::Void, 500, 0).outstanding(), 0);
        assert_eq!(invoice(InvoiceStatus::Issued, 500, 0).outstanding(), 500);
        assert_eq!(
            invoice(InvoiceStatus::PartiallyPaid, 500, 120).outstanding(),
            380
        );
        assert_eq!(invoice(InvoiceStatus::Paid, 500, 500).outstanding(), 0);
    }

    #[test]
    fn an_open_invoice_is_overdue_from_the_day_after_its_due_date() {
        let due = NaiveDate::from_ymd_opt(2024, 3, 31).unwrap();
        let next_day = NaiveDate::from_ymd_opt(2024, 4, 1).unwrap();
        let issued = invoice(InvoiceStatus::Issued, 500, 0);
        assert!(!issued.is_overdue(due));
        assert!(issued.is_overdue(next_day));
        assert!(invoice(InvoiceStatus::PartiallyPaid, 500, 1).is_overdue(next_day));
        for status in [
            InvoiceStatus::Draft,
            InvoiceStatus::Paid,
            InvoiceStatus::Void,
        ] {
            assert!(!invoice(status, 500, 0).is_overdue(next_day), "{status:?}");
        }
    }

    #[test]
    fn kinds_statuses_and_methods_round_trip_their_names() {
        for kind in [
            "charge",
            "charge_reversal",
            "payment",
            "refund",
            "adjustment",
            "write_off",
        ] {
            assert_eq!(LedgerKind::parse(kind).unwrap().as_str(), kind);
        }
        for status in ["draft", "issued", "partially_paid", "paid", "void"] {
            assert_eq!(InvoiceStatus::parse(status).unwrap().as_str(), status);
        }
        assert_eq!(PaymentMethod::parse("cheque").unwrap().as_str(), "cheque");
        assert_eq!(PaymentMethod::parse("Card"), None);
    }
}
