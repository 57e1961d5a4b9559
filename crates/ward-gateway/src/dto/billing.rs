//! Billing's JSON: accounts, invoices, payments, refunds, ledger entries and statements, and the
//! query strings of the invoice list and the statement. Money is integer minor units (cents) of
//! the `currency` beside it; request bodies are in [`bodies`].

mod bodies;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use ward_bus::billing::{
    AccountStatus, BillingAccount, Invoice, InvoicePage, InvoiceQuery, InvoiceStatus, LedgerEntry,
    LedgerKind, Payment, PaymentMethod, Refund, Statement,
};
use ward_bus::patients::{DATE_FORMAT, PageRequest};
use ward_core::{FieldError, WardResult};

pub(crate) use self::bodies::{
    AdjustmentBody, InvoiceBody, InvoiceLineBody, PaymentBody, RefundBody, VoidBody, void_reason,
};
use super::fields::{field_error, invalid};

/// The longest unknown parameter name quoted back in a problem; the name is the caller's text.
const UNKNOWN_PARAMETER_ECHO_MAX_CHARS: usize = 100;

/// A billing account's state.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[schema(as = AccountStatus)]
pub(crate) enum AccountStatusDto {
    Active,
    /// The patient was merged into another; that patient's account bills.
    Merged,
}

impl From<AccountStatus> for AccountStatusDto {
    fn from(status: AccountStatus) -> Self {
        match status {
            AccountStatus::Active => Self::Active,
            AccountStatus::Merged => Self::Merged,
        }
    }
}

/// A patient's billing account; exactly one per patient.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = BillingAccount)]
pub(crate) struct BillingAccountResponse {
    id: Uuid,
    patient_id: Uuid,
    status: AccountStatusDto,
    /// RFC 3339.
    opened_at: DateTime<Utc>,
    /// The ISO 4217 code fixed by the account's first money movement; `null` until then.
    #[schema(example = "EUR")]
    currency: Option<String>,
    /// The ledger's sum in minor units: positive, the patient owes; negative, a credit.
    #[schema(example = 4000)]
    balance: i64,
}

impl From<BillingAccount> for BillingAccountResponse {
    fn from(account: BillingAccount) -> Self {
        Self {
            id: account.id,
            patient_id: account.patient_id,
            status: account.status.into(),
            opened_at: account.opened_at,
            currency: account
                .currency_opt
                .map(|currency| currency.as_str().to_string()),
            balance: account.balance,
        }
    }
}

/// Where an invoice stands.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = InvoiceStatus)]
pub(crate) enum InvoiceStatusDto {
    /// Editable; not on the ledger.
    Draft,
    /// Charged; nothing paid yet.
    Issued,
    PartiallyPaid,
    Paid,
    /// Cancelled; an issued invoice's charge was reversed.
    Void,
}

impl From<InvoiceStatus> for InvoiceStatusDto {
    fn from(status: InvoiceStatus) -> Self {
        match status {
            InvoiceStatus::Draft => Self::Draft,
            InvoiceStatus::Issued => Self::Issued,
            InvoiceStatus::PartiallyPaid => Self::PartiallyPaid,
            InvoiceStatus::Paid => Self::Paid,
            InvoiceStatus::Void => Self::Void,
        }
    }
}

/// How a payment was made.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = PaymentMethod)]
pub(crate) enum PaymentMethodDto {
    Card,
    Cash,
    BankTransfer,
    Cheque,
    Insurance,
    Other,
}

impl From<PaymentMethod> for PaymentMethodDto {
    fn from(method: PaymentMethod) -> Self {
        match method {
            PaymentMethod::Card => Self::Card,
            PaymentMethod::Cash => Self::Cash,
            PaymentMethod::BankTransfer => Self::BankTransfer,
            PaymentMethod::Cheque => Self::Cheque,
            PaymentMethod::Insurance => Self::Insurance,
            PaymentMethod::Other => Self::Other,
        }
    }
}

/// What a ledger entry records; its amount is signed as it moves the balance.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = LedgerKind)]
pub(crate) enum LedgerKindDto {
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

impl From<LedgerKind> for LedgerKindDto {
    fn from(kind: LedgerKind) -> Self {
        match kind {
            LedgerKind::Charge => Self::Charge,
            LedgerKind::ChargeReversal => Self::ChargeReversal,
            LedgerKind::Payment => Self::Payment,
            LedgerKind::Refund => Self::Refund,
            LedgerKind::Adjustment => Self::Adjustment,
            LedgerKind::WriteOff => Self::WriteOff,
        }
    }
}

// Describes the `kind` of an adjustment body; never built.
/// The manual entries a client may post.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = AdjustmentKind)]
#[allow(dead_code)]
pub(crate) enum LedgerKindInput {
    Adjustment,
    WriteOff,
}

/// One invoice line.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = InvoiceLine)]
pub(crate) struct InvoiceLineResponse {
    #[schema(example = "CONS")]
    code: String,
    #[schema(example = "Consultation")]
    description: String,
    #[schema(minimum = 1, example = 2)]
    quantity: u32,
    /// Minor units; negative for a discount.
    #[schema(example = 4500)]
    unit_price: i64,
    /// `quantity * unitPrice`.
    #[schema(example = 9000)]
    amount: i64,
}

/// An invoice. Money is in minor units of `currency`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Invoice)]
pub(crate) struct InvoiceResponse {
    id: Uuid,
    patient_id: Uuid,
    status: InvoiceStatusDto,
    #[schema(example = "EUR")]
    currency: String,
    lines: Vec<InvoiceLineResponse>,
    /// The sum of the lines.
    #[schema(minimum = 0, example = 12000)]
    total: i64,
    /// What payments, credit and write-offs have settled.
    #[schema(example = 5000)]
    paid: i64,
    /// What is still owed: 0 for a draft or a void invoice.
    #[schema(example = 7000)]
    outstanding: i64,
    due_date: NaiveDate,
    /// Issued or partially paid, and today (UTC) is after the due date.
    overdue: bool,
    created_at: DateTime<Utc>,
    issued_at: Option<DateTime<Utc>>,
    voided_at: Option<DateTime<Utc>>,
}

impl InvoiceResponse {
    /// The invoice as seen on `today` (UTC), which decides `overdue`.
    pub(crate) fn at(invoice: Invoice, today: NaiveDate) -> Self {
        let overdue = invoice.is_overdue(today);
        let outstanding = invoice.outstanding();
        let mut lines = Vec::with_capacity(invoice.lines.len());
        for line in invoice.lines {
            lines.push(InvoiceLineResponse {
                code: line.code,
                description: line.description,
                quantity: line.quantity,
                unit_price: line.unit_price,
                amount: line.amount,
            });
        }
        Self {
            id: invoice.id,
            patient_id: invoice.patient_id,
            status: invoice.status.into(),
            currency: invoice.currency.as_str().to_string(),
            lines,
            total: invoice.total,
            paid: invoice.paid,
            outstanding,
            due_date: invoice.due_date,
            overdue,
            created_at: invoice.created_at,
            issued_at: invoice.issued_at_opt,
            voided_at: invoice.voided_at_opt,
        }
    }

    pub(crate) fn id(&self) -> Uuid {
        self.id
    }
}

/// One page of invoices, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = InvoicePage)]
pub(crate) struct InvoicePageResponse {
    items: Vec<InvoiceResponse>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    next_cursor: Option<String>,
}

impl InvoicePageResponse {
    pub(crate) fn at(page: InvoicePage, today: NaiveDate) -> Self {
        let mut items = Vec::with_capacity(page.items.len());
        for invoice in page.items {
            items.push(InvoiceResponse::at(invoice, today));
        }
        Self {
            items,
            next_cursor: page.next_cursor_opt,
        }
    }
}

/// How much of a payment went to one invoice.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = PaymentAllocation)]
pub(crate) struct AllocationResponse {
    invoice_id: Uuid,
    #[schema(example = 5000)]
    amount: i64,
}

/// A recorded payment.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Payment)]
pub(crate) struct PaymentResponse {
    id: Uuid,
    patient_id: Uuid,
    #[schema(minimum = 1, example = 5000)]
    amount: i64,
    #[schema(example = "EUR")]
    currency: String,
    method: PaymentMethodDto,
    #[schema(example = "ch_3PQ8")]
    reference: String,
    received_at: DateTime<Utc>,
    /// What is applied to invoices now; the rest of `amount - refunded` is the account's credit.
    allocations: Vec<AllocationResponse>,
    /// What was given back so far.
    #[schema(minimum = 0, example = 0)]
    refunded: i64,
}

impl From<Payment> for PaymentResponse {
    fn from(payment: Payment) -> Self {
        let mut allocations = Vec::with_capacity(payment.allocations.len());
        for allocation in payment.allocations {
            allocations.push(AllocationResponse {
                invoice_id: allocation.invoice_id,
                amount: allocation.amount,
            });
        }
        Self {
            id: payment.id,
            patient_id: payment.patient_id,
            amount: payment.amount,
            currency: payment.currency.as_str().to_string(),
            method: payment.method.into(),
            reference: payment.reference,
            received_at: payment.received_at,
            allocations,
            refunded: payment.refunded,
        }
    }
}

impl PaymentResponse {
    pub(crate) fn id(&self) -> Uuid {
        self.id
    }
}

/// Money given back from a payment.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Refund)]
pub(crate) struct RefundResponse {
    id: Uuid,
    payment_id: Uuid,
    patient_id: Uuid,
    #[schema(minimum = 1, example = 1000)]
    amount: i64,
    #[schema(example = "EUR")]
    currency: String,
    refunded_at: DateTime<Utc>,
}

impl From<Refund> for RefundResponse {
    fn from(refund: Refund) -> Self {
        Self {
            id: refund.id,
            payment_id: refund.payment_id,
            patient_id: refund.patient_id,
            amount: refund.amount,
            currency: refund.currency.as_str().to_string(),
            refunded_at: refund.refunded_at,
        }
    }
}

/// One ledger entry.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = LedgerEntry)]
pub(crate) struct LedgerEntryResponse {
    id: Uuid,
    at: DateTime<Utc>,
    kind: LedgerKindDto,
    /// Minor units, signed as the entry moves the balance.
    #[schema(example = -5000)]
    amount: i64,
    #[schema(example = "EUR")]
    currency: String,
    /// The invoice number, the payment's reference, or the adjustment's reason.
    reference: String,
    invoice_id: Option<Uuid>,
    payment_id: Option<Uuid>,
}

impl From<LedgerEntry> for LedgerEntryResponse {
    fn from(entry: LedgerEntry) -> Self {
        Self {
            id: entry.id,
            at: entry.at,
            kind: entry.kind.into(),
            amount: entry.amount,
            currency: entry.currency.as_str().to_string(),
            reference: entry.reference,
            invoice_id: entry.invoice_id_opt,
            payment_id: entry.payment_id_opt,
        }
    }
}

/// An account's ledger over the UTC days `from..=to`: the balance before, every entry, the
/// balance after.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Statement)]
pub(crate) struct StatementResponse {
    patient_id: Uuid,
    /// `null` while the account has no money movement.
    #[schema(example = "EUR")]
    currency: Option<String>,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    /// The sum of every entry before `from` (0 without `from`).
    opening_balance: i64,
    /// In the order they were posted.
    entries: Vec<LedgerEntryResponse>,
    /// `openingBalance` plus every entry.
    closing_balance: i64,
}

impl From<Statement> for StatementResponse {
    fn from(statement: Statement) -> Self {
        let mut entries = Vec::with_capacity(statement.entries.len());
        for entry in statement.entries {
            entries.push(LedgerEntryResponse::from(entry));
        }
        Self {
            patient_id: statement.patient_id,
            currency: statement
                .currency_opt
                .map(|currency| currency.as_str().to_string()),
            from: statement.from_opt,
            to: statement.to_opt,
            opening_balance: statement.opening_balance,
            entries,
            closing_balance: statement.closing_balance,
        }
    }
}

// Describes the query for the OpenAPI document; [`parse_invoice_query`] reads the real one.
/// `GET /api/billing/invoices` query; the filters combine with AND.
#[derive(IntoParams)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
#[allow(dead_code)]
pub(crate) struct InvoiceListParams {
    /// Only this patient's invoices.
    patient_id: Option<Uuid>,
    /// Only invoices in this status.
    #[param(inline, value_type = Option<InvoiceStatusDto>)]
    status: Option<String>,
    /// Page size, 1 to 500; 50 when absent.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<String>,
    /// The `nextCursor` of the previous page, with the same filters.
    cursor: Option<String>,
}

/// Reads the invoice list's query, naming every failing or unknown parameter at once.
pub(crate) fn parse_invoice_query(pairs: Vec<(String, String)>) -> WardResult<InvoiceQuery> {
    let mut errors: Vec<FieldError> = Vec::new();
    let mut slots = QuerySlots::default();
    for (name, value) in pairs {
        let slot = match name.as_str() {
            "patientId" => &mut slots.patient_id_opt,
            "status" => &mut slots.status_opt,
            "limit" => &mut slots.limit_opt,
            "cursor" => &mut slots.cursor_opt,
            _ => {
                unknown_parameter(&name, &mut errors);
                continue;
            }
        };
        fill_once(slot, &name, value, &mut errors);
    }
    let patient_id_opt = match slots.patient_id_opt {
        Some(raw) => match ward_core::id::parse_id(&raw, "patientId") {
            Ok(id) => Some(id),
            Err(error) => {
                errors.extend(error.field_errors().iter().cloned());
                None
            }
        },
        None => None,
    };
    let status_opt = match slots.status_opt {
        Some(raw) => {
            let status_opt = InvoiceStatus::parse(raw.trim());
            if status_opt.is_none() {
                errors.push(field_error(
                    "status",
                    "status must be draft, issued, partially_paid, paid or void",
                ));
            }
            status_opt
        }
        None => None,
    };
    let limit_opt = match slots.limit_opt {
        Some(raw) => match raw.trim().parse::<i64>() {
            Ok(limit) => Some(limit),
            Err(_) => {
                errors.push(field_error("limit", "limit must be an integer"));
                None
            }
        },
        None => None,
    };
    let page_result = PageRequest::parse(limit_opt, slots.cursor_opt.as_deref());
    match page_result {
        Ok(page) if errors.is_empty() => Ok(InvoiceQuery {
            patient_id_opt,
            status_opt,
            page,
        }),
        Ok(_) => Err(invalid(errors)),
        Err(error) => {
            errors.extend(error.field_errors().iter().cloned());
            if errors.is_empty() {
                return Err(error);
            }
            Err(invalid(errors))
        }
    }
}

#[derive(Default)]
struct QuerySlots {
    patient_id_opt: Option<String>,
    status_opt: Option<String>,
    limit_opt: Option<String>,
    cursor_opt: Option<String>,
}

// Describes the query for the OpenAPI document; [`parse_statement_period`] reads the real one.
/// `GET /api/billing/accounts/{patientId}/statement` query: the UTC days `from..=to`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(crate) struct StatementParams {
    /// The first day (UTC) included; without it, from the account's first entry.
    #[param(value_type = Option<String>, format = Date, example = "2026-01-01")]
    from: Option<String>,
    /// The last day (UTC) included; without it, up to now.
    #[param(value_type = Option<String>, format = Date, example = "2026-02-01")]
    to: Option<String>,
}

/// A statement's period: `from` and `to`, each optional, `yyyy-MM-dd`; a malformed, repeated or
/// unknown parameter is a 400 naming it.
pub(crate) fn parse_statement_period(
    pairs: Vec<(String, String)>,
) -> WardResult<(Option<NaiveDate>, Option<NaiveDate>)> {
    let mut errors: Vec<FieldError> = Vec::new();
    let mut from_text_opt = None;
    let mut to_text_opt = None;
    for (name, value) in pairs {
        let slot = match name.as_str() {
            "from" => &mut from_text_opt,
            "to" => &mut to_text_opt,
            _ => {
                unknown_parameter(&name, &mut errors);
                continue;
            }
        };
        fill_once(slot, &name, value, &mut errors);
    }
    let from_opt = date_parameter(from_text_opt, "from", &mut errors);
    let to_opt = date_parameter(to_text_opt, "to", &mut errors);
    if !errors.is_empty() {
        return Err(invalid(errors));
    }
    Ok((from_opt, to_opt))
}

fn date_parameter(
    text_opt: Option<String>,
    name: &str,
    errors: &mut Vec<FieldError>,
) -> Option<NaiveDate> {
    let text = text_opt?;
    match NaiveDate::parse_from_str(text.trim(), DATE_FORMAT) {
        Ok(date) => Some(date),
        Err(_) => {
            errors.push(field_error(
                name,
                format!("{name} must be a date in yyyy-MM-dd format"),
            ));
            None
        }
    }
}

/// Keeps a parameter's first value; a repeat is an error, a blank value is absent.
fn fill_once(slot: &mut Option<String>, name: &str, value: String, errors: &mut Vec<FieldError>) {
    if slot.is_some() {
        errors.push(field_error(name, format!("{name} may be given only once")));
        return;
    }
    if !value.trim().is_empty() {
        *slot = Some(value);
    }
}

fn unknown_parameter(name: &str, errors: &mut Vec<FieldError>) {
    let shown: String = name
        .chars()
        .take(UNKNOWN_PARAMETER_ECHO_MAX_CHARS)
        .collect();
    errors.push(field_error(&shown, "unknown query parameter"));
}

#[cfg(test)]
mod tests {
    use ward_core::WardError;

    use super::*;

    fn pairs(raw: &[(&str, &str)]) -> Vec<(String, String)> {
        raw.iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    fn fields(error: &WardError) -> Vec<&str> {
        error
            .field_errors()
            .iter()
            .map(|error| error.field.as_str())
            .collect()
    }

    #[test]
    fn an_invoice_query_parses_and_names_every_bad_parameter() {
        let patient_id = Uuid::now_v7();
        let query = parse_invoice_query(pairs(&[
            ("patientId", &patient_id.to_string()),
            ("status", "partially_paid"),
            ("limit", "7"),
        ]))
        .unwrap();
        assert_eq!(query.patient_id_opt, Some(patient_id));
        assert_eq!(query.status_opt, Some(InvoiceStatus::PartiallyPaid));
        assert_eq!(query.page.limit, 7);
        let error = parse_invoice_query(pairs(&[
            ("patient", "x"),
            ("status", "overdue"),
            ("limit", "ten"),
            ("patientId", "nope"),
        ]))
        .unwrap_err();
        assert_eq!(fields(&error), ["patient", "patientId", "status", "limit"]);
        let error = parse_invoice_query(pairs(&[("limit", "0")])).unwrap_err();
        assert_eq!(fields(&error), ["limit"]);
    }

    #[test]
    fn a_statement_period_takes_two_optional_dates() {
        let (from_opt, to_opt) =
            parse_statement_period(pairs(&[("from", "2026-01-01"), ("to", "")])).unwrap();
        assert_eq!(from_opt, NaiveDate::from_ymd_opt(2026, 1, 1));
        assert_eq!(to_opt, None);
        let error = parse_statement_period(pairs(&[
            ("from", "01/01/2026"),
            ("to", "2026-02-30"),
            ("since", "x"),
        ]))
        .unwrap_err();
        assert_eq!(fields(&error), ["since", "from", "to"]);
        let error = parse_statement_period(pairs(&[("to", "2026-01-01"), ("to", "2026-01-02")]))
            .unwrap_err();
        assert_eq!(fields(&error), ["to"]);
    }
}
