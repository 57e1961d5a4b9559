//! Invoice, payment, ledger and statement conversions between the domain and proto messages,
//! once for both adapters.
//!
//! Requests go out as the raw fields the domain parsers read ([`InvoiceInput`], [`PaymentInput`],
//! [`AdjustmentInput`]), so the server checks them again exactly as the gateway did; replies are
//! read back field by field, and a bad field is `InvalidArgument` naming it (the client turns that
//! into a malformed-reply `Internal`).

use ward_bus::billing::{
    AdjustmentInput, Allocation, Currency, Invoice, InvoiceInput, InvoiceLine, InvoiceLineInput,
    InvoicePage, InvoiceQuery, InvoiceStatus, LedgerEntry, LedgerKind, NewAdjustment, NewInvoice,
    NewPayment, Payment, PaymentInput, PaymentMethod, PaymentReceipt, Refund, Statement,
};
use ward_bus::grpc::{format_timestamp, parse_date, parse_timestamp, parse_uuid};
use ward_bus::patients::{IdempotencyKey, PageRequest, cursor_after, format_date};
use ward_core::{WardError, WardResult};
use ward_proto::v1 as proto;

pub(super) fn new_invoice_to_proto(invoice: NewInvoice) -> proto::CreateInvoiceRequest {
    let mut lines = Vec::with_capacity(invoice.lines.len());
    for line in invoice.lines {
        lines.push(proto::InvoiceLineInput {
            code: Some(line.code),
            description: Some(line.description),
            quantity: Some(i64::from(line.quantity)),
            unit_price: Some(line.unit_price),
        });
    }
    proto::CreateInvoiceRequest {
        patient_id: Some(invoice.patient_id.to_string()),
        currency: Some(invoice.currency.as_str().to_string()),
        due_date: Some(format_date(invoice.due_date)),
        lines,
    }
}

/// The raw fields, for [`NewInvoice::parse`].
pub(super) fn invoice_input_from_proto(request: proto::CreateInvoiceRequest) -> InvoiceInput {
    let mut lines = Vec::with_capacity(request.lines.len());
    for line in request.lines {
        lines.push(InvoiceLineInput {
            code: line.code,
            description: line.description,
            quantity: line.quantity,
            unit_price: line.unit_price,
        });
    }
    InvoiceInput {
        patient_id: request.patient_id,
        currency: request.currency,
        due_date: request.due_date,
        lines: Some(lines),
    }
}

pub(super) fn invoice_to_proto(invoice: Invoice) -> proto::Invoice {
    let mut lines = Vec::with_capacity(invoice.lines.len());
    for line in invoice.lines {
        lines.push(proto::InvoiceLine {
            code: line.code,
            description: line.description,
            quantity: line.quantity,
            unit_price: line.unit_price,
            amount: line.amount,
        });
    }
    proto::Invoice {
        id: invoice.id.to_string(),
        patient_id: invoice.patient_id.to_string(),
        status: invoice.status.as_str().to_string(),
        currency: invoice.currency.as_str().to_string(),
        lines,
        total: invoice.total,
        paid: invoice.paid,
        due_date: format_date(invoice.due_date),
        created_at: format_timestamp(invoice.created_at),
        issued_at: invoice.issued_at_opt.map(format_timestamp),
        voided_at: invoice.voided_at_opt.map(format_timestamp),
    }
}

pub(super) fn invoice_from_proto(invoice: proto::Invoice) -> WardResult<Invoice> {
    let Some(status) = InvoiceStatus::parse(&invoice.status) else {
        return Err(WardError::invalid_field(
            "status",
            "status is not a known invoice status",
        ));
    };
    let mut lines = Vec::with_capacity(invoice.lines.len());
    for line in invoice.lines {
        lines.push(InvoiceLine {
            code: line.code,
            description: line.description,
            quantity: line.quantity,
            unit_price: line.unit_price,
            amount: line.amount,
        });
    }
    Ok(Invoice {
        id: parse_uuid(&invoice.id, "id")?,
        patient_id: parse_uuid(&invoice.patient_id, "patientId")?,
        status,
        currency: Currency::parse(&invoice.currency, "currency")?,
        lines,
        total: invoice.total,
        paid: invoice.paid,
        due_date: parse_date(&invoice.due_date, "dueDate")?,
        created_at: parse_timestamp(&invoice.created_at, "createdAt")?,
        issued_at_opt: optional_timestamp(invoice.issued_at, "issuedAt")?,
        voided_at_opt: optional_timestamp(invoice.voided_at, "voidedAt")?,
    })
}

pub(super) fn invoice_query_to_proto(query: InvoiceQuery) -> proto::ListInvoicesRequest {
    proto::ListInvoicesRequest {
        patient_id: query.patient_id_opt.map(|id| id.to_string()),
        status: query.status_opt.map(|status| status.as_str().to_string()),
        limit: Some(query.page.limit),
        cursor: query.page.after_opt.map(cursor_after),
    }
}

/// Parses a query with the gateway's rules; bad fields are `InvalidArgument` naming them.
pub(super) fn invoice_query_from_proto(
    request: proto::ListInvoicesRequest,
) -> WardResult<InvoiceQuery> {
    let patient_id_opt = match request.patient_id {
        Some(raw) => Some(parse_uuid(&raw, "patientId")?),
        None => None,
    };
    let status_opt = match request.status {
        Some(raw) => match InvoiceStatus::parse(&raw) {
            Some(status) => Some(status),
            None => {
                return Err(WardError::invalid_field(
                    "status",
                    "status must be draft, issued, partially_paid, paid or void",
                ));
            }
        },
        None => None,
    };
    let page = PageRequest::parse(request.limit.map(i64::from), request.cursor.as_deref())?;
    Ok(InvoiceQuery {
        patient_id_opt,
        status_opt,
        page,
    })
}

pub(super) fn invoice_page_to_proto(page: InvoicePage) -> proto::InvoicePage {
    let mut items = Vec::with_capacity(page.items.len());
    for invoice in page.items {
        items.push(invoice_to_proto(invoice));
    }
    proto::InvoicePage {
        items,
        next_cursor: page.next_cursor_opt,
    }
}

pub(super) fn invoice_page_from_proto(page: proto::InvoicePage) -> WardResult<InvoicePage> {
    let mut items = Vec::with_capacity(page.items.len());
    for invoice in page.items {
        items.push(invoice_from_proto(invoice)?);
    }
    Ok(InvoicePage {
        items,
        next_cursor_opt: page.next_cursor,
    })
}

pub(super) fn new_payment_to_proto(
    payment: NewPayment,
    key: &IdempotencyKey,
) -> proto::RecordPaymentRequest {
    proto::RecordPaymentRequest {
        patient_id: Some(payment.patient_id.to_string()),
        amount: Some(payment.amount),
        currency: Some(payment.currency.as_str().to_string()),
        method: Some(payment.method.as_str().to_string()),
        reference: Some(payment.reference),
        invoice_id: payment.invoice_id_opt.map(|id| id.to_string()),
        idempotency_key: key.as_ref().to_string(),
    }
}

/// The raw fields, for [`NewPayment::parse`], and the key, parsed (an empty one is the missing
/// key: `InvalidArgument` naming `Idempotency-Key`).
pub(super) fn payment_input_from_proto(
    request: proto::RecordPaymentRequest,
) -> (PaymentInput, WardResult<IdempotencyKey>) {
    let key_result = IdempotencyKey::parse(&request.idempotency_key);
    let input = PaymentInput {
        patient_id: request.patient_id,
        amount: request.amount,
        currency: request.currency,
        method: request.method,
        reference: request.reference,
        invoice_id: request.invoice_id,
    };
    (input, key_result)
}

pub(super) fn payment_to_proto(payment: Payment) -> proto::Payment {
    let mut allocations = Vec::with_capacity(payment.allocations.len());
    for allocation in payment.allocations {
        allocations.push(proto::PaymentAllocation {
            invoice_id: allocation.invoice_id.to_string(),
            amount: allocation.amount,
        });
    }
    proto::Payment {
        id: payment.id.to_string(),
        patient_id: payment.patient_id.to_string(),
        amount: payment.amount,
        currency: payment.currency.as_str().to_string(),
        method: payment.method.as_str().to_string(),
        reference: payment.reference,
        received_at: format_timestamp(payment.received_at),
        allocations,
        refunded: payment.refunded,
    }
}

pub(super) fn payment_from_proto(payment: proto::Payment) -> WardResult<Payment> {
    let Some(method) = PaymentMethod::parse(&payment.method) else {
        return Err(WardError::invalid_field(
            "method",
            "method is not a known payment method",
        ));
    };
    let mut allocations = Vec::with_capacity(payment.allocations.len());
    for allocation in payment.allocations {
        allocations.push(Allocation {
            invoice_id: parse_uuid(&allocation.invoice_id, "allocations.invoiceId")?,
            amount: allocation.amount,
        });
    }
    Ok(Payment {
        id: parse_uuid(&payment.id, "id")?,
        patient_id: parse_uuid(&payment.patient_id, "patientId")?,
        amount: payment.amount,
        currency: Currency::parse(&payment.currency, "currency")?,
        method,
        reference: payment.reference,
        received_at: parse_timestamp(&payment.received_at, "receivedAt")?,
        allocations,
        refunded: payment.refunded,
    })
}

pub(super) fn receipt_to_proto(receipt: PaymentReceipt) -> proto::PaymentReceipt {
    proto::PaymentReceipt {
        payment: Some(payment_to_proto(receipt.payment)),
        newly_recorded: receipt.newly_recorded,
    }
}

pub(super) fn receipt_from_proto(receipt: proto::PaymentReceipt) -> WardResult<PaymentReceipt> {
    let Some(payment) = receipt.payment else {
        return Err(WardError::invalid_field("payment", "payment is required"));
    };
    Ok(PaymentReceipt {
        payment: payment_from_proto(payment)?,
        newly_recorded: receipt.newly_recorded,
    })
}

pub(super) fn refund_to_proto(refund: Refund) -> proto::Refund {
    proto::Refund {
        id: refund.id.to_string(),
        payment_id: refund.payment_id.to_string(),
        patient_id: refund.patient_id.to_string(),
        amount: refund.amount,
        currency: refund.currency.as_str().to_string(),
        refunded_at: format_timestamp(refund.refunded_at),
    }
}

pub(super) fn refund_from_proto(refund: proto::Refund) -> WardResult<Refund> {
    Ok(Refund {
        id: parse_uuid(&refund.id, "id")?,
        payment_id: parse_uuid(&refund.payment_id, "paymentId")?,
        patient_id: parse_uuid(&refund.patient_id, "patientId")?,
        amount: refund.amount,
        currency: Currency::parse(&refund.currency, "currency")?,
        refunded_at: parse_timestamp(&refund.refunded_at, "refundedAt")?,
    })
}

/// The adjustment as a client sends it: a write-off's amount is what is given up, so positive;
/// [`NewAdjustment::parse`] turns it into the negative ledger amount again.
pub(super) fn new_adjustment_to_proto(adjustment: NewAdjustment) -> proto::PostAdjustmentRequest {
    let sent_amount = match adjustment.kind {
        LedgerKind::WriteOff => adjustment.amount.saturating_neg(),
        LedgerKind::Charge
        | LedgerKind::ChargeReversal
        | LedgerKind::Payment
        | LedgerKind::Refund
        | LedgerKind::Adjustment => adjustment.amount,
    };
    proto::PostAdjustmentRequest {
        patient_id: adjustment.patient_id.to_string(),
        amount: Some(sent_amount),
        currency: Some(adjustment.currency.as_str().to_string()),
        kind: Some(adjustment.kind.as_str().to_string()),
        reason: Some(adjustment.reason),
        invoice_id: adjustment.invoice_id_opt.map(|id| id.to_string()),
    }
}

/// The raw fields, for [`NewAdjustment::parse`].
pub(super) fn adjustment_input_from_proto(
    request: proto::PostAdjustmentRequest,
) -> AdjustmentInput {
    AdjustmentInput {
        amount: request.amount,
        currency: request.currency,
        kind: request.kind,
        reason: request.reason,
        invoice_id: request.invoice_id,
    }
}

pub(super) fn ledger_entry_to_proto(entry: LedgerEntry) -> proto::LedgerEntry {
    proto::LedgerEntry {
        id: entry.id.to_string(),
        patient_id: entry.patient_id.to_string(),
        at: format_timestamp(entry.at),
        kind: entry.kind.as_str().to_string(),
        amount: entry.amount,
        currency: entry.currency.as_str().to_string(),
        reference: entry.reference,
        invoice_id: entry.invoice_id_opt.map(|id| id.to_string()),
        payment_id: entry.payment_id_opt.map(|id| id.to_string()),
    }
}

pub(super) fn ledger_entry_from_proto(entry: proto::LedgerEntry) -> WardResult<LedgerEntry> {
    let Some(kind) = LedgerKind::parse(&entry.kind) else {
        return Err(WardError::invalid_field(
            "kind",
            "kind is not a known ledger entry kind",
        ));
    };
    Ok(LedgerEntry {
        id: parse_uuid(&entry.id, "id")?,
        patient_id: parse_uuid(&entry.patient_id, "patientId")?,
        at: parse_timestamp(&entry.at, "at")?,
        kind,
        amount: entry.amount,
        currency: Currency::parse(&entry.currency, "currency")?,
        reference: entry.reference,
        invoice_id_opt: optional_uuid(entry.invoice_id, "invoiceId")?,
        payment_id_opt: optional_uuid(entry.payment_id, "paymentId")?,
    })
}

pub(super) fn statement_to_proto(statement: Statement) -> proto::Statement {
    let mut entries = Vec::with_capacity(statement.entries.len());
    for entry in statement.entries {
        entries.push(ledger_entry_to_proto(entry));
    }
    proto::Statement {
        patient_id: statement.patient_id.to_string(),
        currency: statement
            .currency_opt
            .map(|currency| currency.as_str().to_string()),
        from: statement.from_opt.map(format_date),
        to: statement.to_opt.map(format_date),
        opening_balance: statement.opening_balance,
        entries,
        closing_balance: statement.closing_balance,
    }
}

pub(super) fn statement_from_proto(statement: proto::Statement) -> WardResult<Statement> {
    let mut entries = Vec::with_capacity(statement.entries.len());
    for entry in statement.entries {
        entries.push(ledger_entry_from_proto(entry)?);
    }
    Ok(Statement {
        patient_id: parse_uuid(&statement.patient_id, "patientId")?,
        currency_opt: optional_currency(statement.currency)?,
        from_opt: optional_date(statement.from, "from")?,
        to_opt: optional_date(statement.to, "to")?,
        opening_balance: statement.opening_balance,
        entries,
        closing_balance: statement.closing_balance,
    })
}

pub(super) fn optional_currency(raw_opt: Option<String>) -> WardResult<Option<Currency>> {
    match raw_opt {
        Some(raw) => Currency::parse(&raw, "currency").map(Some),
        None => Ok(None),
    }
}

pub(super) fn optional_date(
    raw_opt: Option<String>,
    field: &str,
) -> WardResult<Option<chrono::NaiveDate>> {
    match raw_opt {
        Some(raw) => parse_date(&raw, field).map(Some),
        None => Ok(None),
    }
}

fn optional_uuid(raw_opt: Option<String>, field: &str) -> WardResult<Option<uuid::Uuid>> {
    match raw_opt {
        Some(raw) => parse_uuid(&raw, field).map(Some),
        None => Ok(None),
    }
}

fn optional_timestamp(
    raw_opt: Option<String>,
    field: &str,
) -> WardResult<Option<chrono::DateTime<chrono::Utc>>> {
    match raw_opt {
        Some(raw) => parse_timestamp(&raw, field).map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone, Utc};
    use uuid::Uuid;

    use super::*;

    fn eur() -> Currency {
        Currency::parse("EUR", "currency").unwrap()
    }

    fn instant(secs: i64) -> chrono::DateTime<Utc> {
        Utc.timestamp_opt(secs, 123_456_000).unwrap()
    }

    fn invoice() -> Invoice {
        Invoice {
            id: Uuid::now_v7(),
            patient_id: Uuid::now_v7(),
            status: InvoiceStatus::PartiallyPaid,
            currency: eur(),
            lines: vec![
                InvoiceLine {
                    code: "CONS".into(),
                    description: "Consultation".into(),
                    quantity: 2,
                    unit_price: 4_500,
                    amount: 9_000,
                },
                InvoiceLine {
                    code: "DISC".into(),
                    description: "Discount".into(),
                    quantity: 1,
                    unit_price: -500,
                    amount: -500,
                },
            ],
            total: 8_500,
            paid: 3_000,
            due_date: NaiveDate::from_ymd_opt(2026, 1, 31).unwrap(),
            created_at: instant(1_700_000_000),
            issued_at_opt: Some(instant(1_700_000_100)),
            voided_at_opt: None,
        }
    }

    fn payment() -> Payment {
        Payment {
            id: Uuid::now_v7(),
            patient_id: Uuid::now_v7(),
            amount: 10_000,
            currency: eur(),
            method: PaymentMethod::BankTransfer,
            reference: "TR-77".into(),
            received_at: instant(1_700_000_200),
            allocations: vec![Allocation {
                invoice_id: Uuid::now_v7(),
                amount: 8_500,
            }],
            refunded: 500,
        }
    }

    fn entry(kind: LedgerKind, amount: i64, invoice_id_opt: Option<Uuid>) -> LedgerEntry {
        LedgerEntry {
            id: Uuid::now_v7(),
            patient_id: Uuid::now_v7(),
            at: instant(1_700_000_300),
            kind,
            amount,
            currency: eur(),
            reference: "INV-1".into(),
            invoice_id_opt,
            payment_id_opt: None,
        }
    }

    #[test]
    fn an_invoice_and_a_page_round_trip() {
        let invoice = invoice();
        assert_eq!(
            invoice_from_proto(invoice_to_proto(invoice.clone())).unwrap(),
            invoice
        );
        let page = InvoicePage {
            items: vec![invoice.clone(), invoice],
            next_cursor_opt: Some(cursor_after(Uuid::now_v7())),
        };
        assert_eq!(
            invoice_page_from_proto(invoice_page_to_proto(page.clone())).unwrap(),
            page
        );
    }

    #[test]
    fn a_new_invoice_crosses_as_input_the_server_parses_back() {
        let invoice = invoice();
        let new_invoice = NewInvoice {
            patient_id: invoice.patient_id,
            currency: invoice.currency,
            due_date: invoice.due_date,
            lines: invoice.lines,
        };
        let request = new_invoice_to_proto(new_invoice.clone());
        let parsed = NewInvoice::parse(invoice_input_from_proto(request)).unwrap();
        assert_eq!(parsed, new_invoice);
    }

    #[test]
    fn an_invoice_query_round_trips_and_bad_fields_are_named() {
        let query = InvoiceQuery {
            patient_id_opt: Some(Uuid::now_v7()),
            status_opt: Some(InvoiceStatus::Issued),
            page: PageRequest {
                limit: 20,
                after_opt: Some(Uuid::now_v7()),
            },
        };
        assert_eq!(
            invoice_query_from_proto(invoice_query_to_proto(query.clone())).unwrap(),
            query
        );
        let mut request = invoice_query_to_proto(query);
        request.status = Some("overdue".into());
        let error = invoice_query_from_proto(request.clone()).unwrap_err();
        assert_eq!(error.field_errors()[0].field, "status");
        request.status = None;
        request.patient_id = Some("nope".into());
        let error = invoice_query_from_proto(request).unwrap_err();
        assert_eq!(error.field_errors()[0].field, "patientId");
    }

    #[test]
    fn a_payment_and_a_receipt_round_trip() {
        let payment = payment();
        assert_eq!(
            payment_from_proto(payment_to_proto(payment.clone())).unwrap(),
            payment
        );
        let receipt = PaymentReceipt {
            payment,
            newly_recorded: false,
        };
        assert_eq!(
            receipt_from_proto(receipt_to_proto(receipt.clone())).unwrap(),
            receipt
        );
        let empty = proto::PaymentReceipt {
            payment: None,
            newly_recorded: true,
        };
        assert_eq!(
            receipt_from_proto(empty).unwrap_err().field_errors()[0].field,
            "payment"
        );
    }

    #[test]
    fn a_new_payment_crosses_with_its_key() {
        let new_payment = NewPayment {
            patient_id: Uuid::now_v7(),
            amount: 2_500,
            currency: eur(),
            method: PaymentMethod::Card,
            reference: "ch_1".into(),
            invoice_id_opt: Some(Uuid::now_v7()),
        };
        let key = IdempotencyKey::parse("pay-1").unwrap();
        let request = new_payment_to_proto(new_payment.clone(), &key);
        let (input, key_result) = payment_input_from_proto(request.clone());
        assert_eq!(NewPayment::parse(input).unwrap(), new_payment);
        assert_eq!(key_result.unwrap(), key);
        let keyless = proto::RecordPaymentRequest {
            idempotency_key: String::new(),
            ..request
        };
        let (_, key_result) = payment_input_from_proto(keyless);
        assert_eq!(
            key_result.unwrap_err().field_errors()[0].field,
            "Idempotency-Key"
        );
    }

    #[test]
    fn a_refund_round_trips() {
        let refund = Refund {
            id: Uuid::now_v7(),
            payment_id: Uuid::now_v7(),
            patient_id: Uuid::now_v7(),
            amount: 700,
            currency: eur(),
            refunded_at: instant(1_700_000_400),
        };
        assert_eq!(
            refund_from_proto(refund_to_proto(refund.clone())).unwrap(),
            refund
        );
    }

    #[test]
    fn adjustments_and_write_offs_cross_as_input_the_server_parses_back() {
        let patient_id = Uuid::now_v7();
        for (kind, amount, invoice_id_opt) in [
            (LedgerKind::Adjustment, -1_200, None),
            (LedgerKind::Adjustment, 300, None),
            (LedgerKind::WriteOff, -800, Some(Uuid::now_v7())),
        ] {
            let adjustment = NewAdjustment {
                patient_id,
                amount,
                currency: eur(),
                kind,
                reason: "goodwill".into(),
                invoice_id_opt,
            };
            let request = new_adjustment_to_proto(adjustment.clone());
            let parsed =
                NewAdjustment::parse(patient_id, adjustment_input_from_proto(request)).unwrap();
            assert_eq!(parsed, adjustment, "{kind:?} {amount}");
        }
    }

    #[test]
    fn a_statement_with_its_entries_round_trips() {
        let invoice_id = Uuid::now_v7();
        let statement = Statement {
            patient_id: Uuid::now_v7(),
            currency_opt: Some(eur()),
            from_opt: NaiveDate::from_ymd_opt(2026, 1, 1),
            to_opt: None,
            opening_balance: 1_000,
            entries: vec![
                entry(LedgerKind::Charge, 8_500, Some(invoice_id)),
                entry(LedgerKind::Payment, -3_000, None),
            ],
            closing_balance: 6_500,
        };
        assert_eq!(
            statement_from_proto(statement_to_proto(statement.clone())).unwrap(),
            statement
        );
        let empty = Statement {
            patient_id: Uuid::now_v7(),
            currency_opt: None,
            from_opt: None,
            to_opt: None,
            opening_balance: 0,
            entries: Vec::new(),
            closing_balance: 0,
        };
        assert_eq!(
            statement_from_proto(statement_to_proto(empty.clone())).unwrap(),
            empty
        );
    }

    #[test]
    fn unknown_names_in_a_reply_are_refused_naming_the_field() {
        let mut invoice = invoice_to_proto(invoice());
        invoice.status = "overdue".into();
        assert_eq!(
            invoice_from_proto(invoice).unwrap_err().field_errors()[0].field,
            "status"
        );
        let mut payment = payment_to_proto(payment());
        payment.method = "barter".into();
        assert_eq!(
            payment_from_proto(payment).unwrap_err().field_errors()[0].field,
            "method"
        );
        let mut entry = ledger_entry_to_proto(entry(LedgerKind::Refund, 100, None));
        entry.kind = "gift".into();
        assert_eq!(
            ledger_entry_from_proto(entry).unwrap_err().field_errors()[0].field,
            "kind"
        );
    }
}
