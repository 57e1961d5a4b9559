//! Parsing what clients send into the billing domain types, every failing field at once.

use chrono::NaiveDate;
use uuid::Uuid;
use ward_core::{FieldError, WardError, WardResult};

use super::{
    AMOUNT_MAX_ABS, AdjustmentInput, CODE_MAX_CHARS, Currency, DESCRIPTION_MAX_CHARS, InvoiceInput,
    InvoiceLine, InvoiceLineInput, LINES_MAX, LedgerKind, NewAdjustment, NewInvoice, NewPayment,
    PaymentInput, PaymentMethod, QUANTITY_MAX, REASON_MAX_CHARS, REFERENCE_MAX_CHARS,
};
use crate::patients::DATE_FORMAT;

impl NewInvoice {
    /// Validates an invoice: a patient, a currency, a due date (yyyy-MM-dd) and 1 to
    /// [`LINES_MAX`] lines, each with a code (at most [`CODE_MAX_CHARS`]), a description (at most
    /// [`DESCRIPTION_MAX_CHARS`]), a quantity in 1..=[`QUANTITY_MAX`] and a unit price within
    /// [`AMOUNT_MAX_ABS`] either way; the total (checked, never overflowing) must be in
    /// 0..=[`AMOUNT_MAX_ABS`]. Every failing field is reported at once, as `lines[2].quantity`.
    pub fn parse(input: InvoiceInput) -> WardResult<Self> {
        let mut errors = Vec::new();
        let patient_id_opt = parse_uuid(input.patient_id, "patientId", true, &mut errors);
        let currency_opt = parse_currency(input.currency, "currency", &mut errors);
        let due_date_opt = parse_due_date(input.due_date, &mut errors);
        let lines_opt = parse_lines(input.lines, &mut errors);
        match (patient_id_opt, currency_opt, due_date_opt, lines_opt) {
            (Some(patient_id), Some(currency), Some(due_date), Some(lines))
                if errors.is_empty() =>
            {
                Ok(NewInvoice {
                    patient_id,
                    currency,
                    due_date,
                    lines,
                })
            }
            _ => Err(validation_failed(errors)),
        }
    }

    /// The sum of the lines (checked when parsed, so it cannot overflow here).
    pub fn total(&self) -> i64 {
        self.lines.iter().map(|line| line.amount).sum()
    }
}

impl NewPayment {
    /// Validates a payment: a patient, an amount in 1..=[`AMOUNT_MAX_ABS`], a currency, a
    /// method, a reference of at most [`REFERENCE_MAX_CHARS`] (may be empty) and an optional
    /// invoice id. Every failing field at once.
    pub fn parse(input: PaymentInput) -> WardResult<Self> {
        let mut errors = Vec::new();
        let patient_id_opt = parse_uuid(input.patient_id, "patientId", true, &mut errors);
        let amount_opt = match input.amount {
            None => {
                errors.push(field_error("amount", "amount is required"));
                None
            }
            Some(amount) if (1..=AMOUNT_MAX_ABS).contains(&amount) => Some(amount),
            Some(_) => {
                errors.push(field_error(
                    "amount",
                    format!("amount must be between 1 and {AMOUNT_MAX_ABS} minor units"),
                ));
                None
            }
        };
        let currency_opt = parse_currency(input.currency, "currency", &mut errors);
        let method_opt = match input.method.as_deref().map(str::trim) {
            None | Some("") => {
                errors.push(field_error("method", "method is required"));
                None
            }
            Some(raw) => {
                let method_opt = PaymentMethod::parse(raw);
                if method_opt.is_none() {
                    errors.push(field_error(
                        "method",
                        "method must be one of card, cash, bank_transfer, cheque, insurance, other",
                    ));
                }
                method_opt
            }
        };
        let reference = input.reference.unwrap_or_default().trim().to_string();
        if !is_printable(&reference) || reference.chars().count() > REFERENCE_MAX_CHARS {
            errors.push(field_error(
                "reference",
                format!(
                    "reference must be at most {REFERENCE_MAX_CHARS} characters, without control characters"
                ),
            ));
        }
        let invoice_id_opt = parse_uuid(input.invoice_id, "invoiceId", false, &mut errors);
        match (patient_id_opt, amount_opt, currency_opt, method_opt) {
            (Some(patient_id), Some(amount), Some(currency), Some(method)) if errors.is_empty() => {
                Ok(NewPayment {
                    patient_id,
                    amount,
                    currency,
                    method,
                    reference,
                    invoice_id_opt,
                })
            }
            _ => Err(validation_failed(errors)),
        }
    }
}

impl NewAdjustment {
    /// Validates a manual ledger entry: `kind` is `adjustment` (the default) or `write_off`; a
    /// non-zero amount within [`AMOUNT_MAX_ABS`] either way (an adjustment keeps its sign, a
    /// write-off always lowers the balance, whichever sign it was sent with); a currency; a
    /// reason of 1 to [`REASON_MAX_CHARS`] characters; an invoice id only on a write-off.
    pub fn parse(patient_id: Uuid, input: AdjustmentInput) -> WardResult<Self> {
        let mut errors = Vec::new();
        let kind_opt = match input.kind.as_deref().map(str::trim) {
            None | Some("") => Some(LedgerKind::Adjustment),
            Some(raw) => match LedgerKind::parse(raw) {
                Some(kind @ (LedgerKind::Adjustment | LedgerKind::WriteOff)) => Some(kind),
                _ => {
                    errors.push(field_error("kind", "kind must be adjustment or write_off"));
                    None
                }
            },
        };
        let amount_opt = match input.amount {
            None => {
                errors.push(field_error("amount", "amount is required"));
                None
            }
            Some(amount) if amount != 0 && (-AMOUNT_MAX_ABS..=AMOUNT_MAX_ABS).contains(&amount) => {
                Some(amount)
            }
            Some(_) => {
                errors.push(field_error(
                    "amount",
                    format!("amount must be non-zero and within {AMOUNT_MAX_ABS} minor units"),
                ));
                None
            }
        };
        let currency_opt = parse_currency(input.currency, "currency", &mut errors);
        let reason = input.reason.unwrap_or_default().trim().to_string();
        if reason.is_empty() {
            errors.push(field_error("reason", "reason is required"));
        } else if !is_printable(&reason) || reason.chars().count() > REASON_MAX_CHARS {
            errors.push(field_error(
                "reason",
                format!(
                    "reason must be at most {REASON_MAX_CHARS} characters, without control characters"
                ),
            ));
        }
        let invoice_id_opt = parse_uuid(input.invoice_id, "invoiceId", false, &mut errors);
        if invoice_id_opt.is_some() && kind_opt == Some(LedgerKind::Adjustment) {
            errors.push(field_error(
                "invoiceId",
                "only a write_off settles an invoice",
            ));
        }
        match (kind_opt, amount_opt, currency_opt) {
            (Some(kind), Some(amount), Some(currency)) if errors.is_empty() => {
                let signed_amount = match kind {
                    LedgerKind::WriteOff => -amount.abs(),
                    _ => amount,
                };
                Ok(NewAdjustment {
                    patient_id,
                    amount: signed_amount,
                    currency,
                    kind,
                    reason,
                    invoice_id_opt,
                })
            }
            _ => Err(validation_failed(errors)),
        }
    }
}

fn parse_lines(
    lines_opt: Option<Vec<InvoiceLineInput>>,
    errors: &mut Vec<FieldError>,
) -> Option<Vec<InvoiceLine>> {
    let raw_lines = lines_opt.unwrap_or_default();
    if raw_lines.is_empty() {
        errors.push(field_error("lines", "an invoice needs at least one line"));
        return None;
    }
    // Checked before the lines, so a hostile request cannot make us list a million errors.
    if raw_lines.len() > LINES_MAX {
        errors.push(field_error(
            "lines",
            format!("an invoice has at most {LINES_MAX} lines"),
        ));
        return None;
    }
    let num_errors_before = errors.len();
    let mut lines = Vec::with_capacity(raw_lines.len());
    let mut total: i64 = 0;
    for (index, raw_line) in raw_lines.into_iter().enumerate() {
        let Some(line) = parse_line(index, raw_line, errors) else {
            continue;
        };
        // Cannot overflow with the bounds above (100 lines of 10^16), but stays checked so a
        // change of bounds cannot turn into a wrapped total.
        match total.checked_add(line.amount) {
            Some(sum) => total = sum,
            None => {
                errors.push(field_error("lines", "the invoice total is too large"));
                return None;
            }
        }
        lines.push(line);
    }
    if errors.len() > num_errors_before {
        return None;
    }
    if !(0..=AMOUNT_MAX_ABS).contains(&total) {
        errors.push(field_error(
            "lines",
            format!("the invoice total must be between 0 and {AMOUNT_MAX_ABS} minor units"),
        ));
        return None;
    }
    Some(lines)
}

fn parse_line(
    index: usize,
    raw: InvoiceLineInput,
    errors: &mut Vec<FieldError>,
) -> Option<InvoiceLine> {
    let num_errors_before = errors.len();
    let code = raw.code.unwrap_or_default().trim().to_string();
    if code.is_empty() {
        errors.push(field_error(
            &format!("lines[{index}].code"),
            "code is required",
        ));
    } else if !is_printable(&code) || code.chars().count() > CODE_MAX_CHARS {
        errors.push(field_error(
            &format!("lines[{index}].code"),
            format!("code must be at most {CODE_MAX_CHARS} characters, without control characters"),
        ));
    }
    let description = raw.description.unwrap_or_default().trim().to_string();
    if description.is_empty() {
        errors.push(field_error(
            &format!("lines[{index}].description"),
            "description is required",
        ));
    } else if !is_printable(&description) || description.chars().count() > DESCRIPTION_MAX_CHARS {
        errors.push(field_error(
            &format!("lines[{index}].description"),
            format!(
                "description must be at most {DESCRIPTION_MAX_CHARS} characters, without control characters"
            ),
        ));
    }
    let quantity_opt = match raw.quantity {
        Some(quantity) if (1..=i64::from(QUANTITY_MAX)).contains(&quantity) => {
            u32::try_from(quantity).ok()
        }
        _ => None,
    };
    if quantity_opt.is_none() {
        errors.push(field_error(
            &format!("lines[{index}].quantity"),
            format!("quantity must be between 1 and {QUANTITY_MAX}"),
        ));
    }
    let unit_price_opt = raw
        .unit_price
        .filter(|unit_price| (-AMOUNT_MAX_ABS..=AMOUNT_MAX_ABS).contains(unit_price));
    if unit_price_opt.is_none() {
        errors.push(field_error(
            &format!("lines[{index}].unitPrice"),
            format!("unitPrice is required and must be within {AMOUNT_MAX_ABS} minor units"),
        ));
    }
    let (Some(quantity), Some(unit_price)) = (quantity_opt, unit_price_opt) else {
        return None;
    };
    let Some(amount) = unit_price.checked_mul(i64::from(quantity)) else {
        errors.push(field_error(
            &format!("lines[{index}].unitPrice"),
            "the line amount is too large",
        ));
        return None;
    };
    if errors.len() > num_errors_before {
        return None;
    }
    Some(InvoiceLine {
        code,
        description,
        quantity,
        unit_price,
        amount,
    })
}

fn parse_due_date(raw_opt: Option<String>, errors: &mut Vec<FieldError>) -> Option<NaiveDate> {
    let raw = raw_opt.unwrap_or_default().trim().to_string();
    if raw.is_empty() {
        errors.push(field_error("dueDate", "dueDate is required"));
        return None;
    }
    // Exactly yyyy-MM-dd: chrono alone would also accept "2024-1-5".
    let is_iso_shape = raw.len() == 10 && raw.as_bytes()[4] == b'-' && raw.as_bytes()[7] == b'-';
    match NaiveDate::parse_from_str(&raw, DATE_FORMAT) {
        Ok(date) if is_iso_shape => Some(date),
        _ => {
            errors.push(field_error("dueDate", "dueDate must be a yyyy-MM-dd date"));
            None
        }
    }
}

fn parse_currency(
    raw_opt: Option<String>,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Option<Currency> {
    let Some(raw) = raw_opt.filter(|raw| !raw.trim().is_empty()) else {
        errors.push(field_error(field, format!("{field} is required")));
        return None;
    };
    match Currency::parse(&raw, field) {
        Ok(currency) => Some(currency),
        Err(error) => {
            errors.extend(error.field_errors().iter().cloned());
            None
        }
    }
}

/// A blank value counts as absent.
fn parse_uuid(
    raw_opt: Option<String>,
    field: &str,
    required: bool,
    errors: &mut Vec<FieldError>,
) -> Option<Uuid> {
    let raw = raw_opt.unwrap_or_default().trim().to_string();
    if raw.is_empty() {
        if required {
            errors.push(field_error(field, format!("{field} is required")));
        }
        return None;
    }
    match Uuid::parse_str(&raw) {
        Ok(id) => Some(id),
        Err(_) => {
            errors.push(field_error(field, format!("{field} must be a UUID")));
            None
        }
    }
}

fn is_printable(text: &str) -> bool {
    !text.chars().any(char::is_control)
}

pub(super) fn field_error(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

fn validation_failed(errors: Vec<FieldError>) -> WardError {
    let detail = errors
        .iter()
        .map(|error| format!("{}: {}", error.field, error.message))
        .collect::<Vec<_>>()
        .join("; ");
    WardError::invalid(detail, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(quantity: i64, unit_price: i64) -> InvoiceLineInput {
        InvoiceLineInput {
            code: Some("CONSULT".into()),
            description: Some("Consultation".into()),
            quantity: Some(quantity),
            unit_price: Some(unit_price),
        }
    }

    fn invoice_input(lines: Vec<InvoiceLineInput>) -> InvoiceInput {
        InvoiceInput {
            patient_id: Some(Uuid::nil().to_string()),
            currency: Some(" eur ".into()),
            due_date: Some("2024-02-29".into()),
            lines: Some(lines),
        }
    }

    fn fields(error: WardError) -> Vec<String> {
        error
            .field_errors()
            .iter()
            .map(|error| error.field.clone())
            .collect()
    }

    #[test]
    fn a_valid_invoice_parses_with_amounts_and_total() {
        let invoice = NewInvoice::parse(invoice_input(vec![line(3, 1250), line(1, -750)])).unwrap();
        assert_eq!(invoice.currency.as_str(), "EUR");
        assert_eq!(invoice.lines[0].amount, 3750);
        assert_eq!(invoice.total(), 3000);
        assert_eq!(
            invoice.due_date,
            NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()
        );
    }

    #[test]
    fn every_failing_field_is_reported_at_once() {
        let mut bad_line = line(0, AMOUNT_MAX_ABS + 1);
        bad_line.code = Some("X".repeat(CODE_MAX_CHARS + 1));
        bad_line.description = Some("  ".into());
        let input = InvoiceInput {
            patient_id: Some("nope".into()),
            currency: Some("EURO".into()),
            due_date: Some("2024-2-1".into()),
            lines: Some(vec![line(1, 10), line(1, 10), bad_line]),
        };
        let error = NewInvoice::parse(input).unwrap_err();
        assert_eq!(
            fields(error),
            [
                "patientId",
                "currency",
                "dueDate",
                "lines[2].code",
                "lines[2].description",
                "lines[2].quantity",
                "lines[2].unitPrice"
            ]
        );
    }

    #[test]
    fn lines_are_bounded_in_number_quantity_and_total() {
        let none = NewInvoice::parse(invoice_input(Vec::new())).unwrap_err();
        assert_eq!(fields(none), ["lines"]);
        let too_many = NewInvoice::parse(invoice_input(vec![line(1, 1); LINES_MAX + 1]));
        assert_eq!(fields(too_many.unwrap_err()), ["lines"]);
        assert!(NewInvoice::parse(invoice_input(vec![line(1, 1); LINES_MAX])).is_ok());
        let quantity = NewInvoice::parse(invoice_input(vec![line(i64::from(QUANTITY_MAX) + 1, 1)]));
        assert_eq!(fields(quantity.unwrap_err()), ["lines[0].quantity"]);
        let negative_total = NewInvoice::parse(invoice_input(vec![line(1, 100), line(1, -101)]));
        assert_eq!(fields(negative_total.unwrap_err()), ["lines"]);
        // 10 000 x 10^12 fits in i64 but is far over the total's bound.
        let huge = NewInvoice::parse(invoice_input(vec![line(10_000, AMOUNT_MAX_ABS)]));
        assert_eq!(fields(huge.unwrap_err()), ["lines"]);
        let hostile = NewInvoice::parse(invoice_input(vec![line(i64::MAX, i64::MIN)]));
        assert_eq!(
            fields(hostile.unwrap_err()),
            ["lines[0].quantity", "lines[0].unitPrice"]
        );
        let at_bound = NewInvoice::parse(invoice_input(vec![line(1, AMOUNT_MAX_ABS)]));
        assert_eq!(at_bound.unwrap().total(), AMOUNT_MAX_ABS);
    }

    #[test]
    fn a_payment_needs_a_positive_amount_a_known_method_and_a_short_reference() {
        let valid = PaymentInput {
            patient_id: Some(Uuid::nil().to_string()),
            amount: Some(500),
            currency: Some("usd".into()),
            method: Some("bank_transfer".into()),
            reference: Some(" TX-1 ".into()),
            invoice_id: Some(String::new()),
        };
        let payment = NewPayment::parse(valid.clone()).unwrap();
        assert_eq!(payment.method, PaymentMethod::BankTransfer);
        assert_eq!(
            (payment.reference.as_str(), payment.invoice_id_opt),
            ("TX-1", None)
        );
        let invalid = PaymentInput {
            amount: Some(0),
            currency: None,
            method: Some("bitcoin".into()),
            reference: Some("r".repeat(REFERENCE_MAX_CHARS + 1)),
            invoice_id: Some("x".into()),
            ..valid
        };
        assert_eq!(
            fields(NewPayment::parse(invalid).unwrap_err()),
            ["amount", "currency", "method", "reference", "invoiceId"]
        );
        let too_large = PaymentInput {
            amount: Some(AMOUNT_MAX_ABS + 1),
            ..PaymentInput::default()
        };
        assert!(fields(NewPayment::parse(too_large).unwrap_err()).contains(&"amount".to_string()));
    }

    #[test]
    fn an_adjustment_needs_a_reason_and_a_write_off_always_lowers_the_balance() {
        let write_off = AdjustmentInput {
            amount: Some(300),
            currency: Some("EUR".into()),
            kind: Some("write_off".into()),
            reason: Some("bad debt".into()),
            invoice_id: Some(Uuid::nil().to_string()),
        };
        let parsed = NewAdjustment::parse(Uuid::nil(), write_off.clone()).unwrap();
        assert_eq!((parsed.kind, parsed.amount), (LedgerKind::WriteOff, -300));
        let invalid = AdjustmentInput {
            amount: Some(0),
            kind: Some("adjustment".into()),
            reason: Some("r".repeat(REASON_MAX_CHARS + 1)),
            ..write_off.clone()
        };
        assert_eq!(
            fields(NewAdjustment::parse(Uuid::nil(), invalid).unwrap_err()),
            ["amount", "reason", "invoiceId"]
        );
        let no_reason = AdjustmentInput {
            reason: None,
            kind: Some("charge".into()),
            ..write_off
        };
        assert_eq!(
            fields(NewAdjustment::parse(Uuid::nil(), no_reason).unwrap_err()),
            ["kind", "reason"]
        );
    }

    #[test]
    fn currencies_are_iso_4217_codes_in_any_case() {
        assert_eq!(Currency::parse(" chf", "currency").unwrap().as_str(), "CHF");
        let error = Currency::parse("XYZ", "lines.currency").unwrap_err();
        assert_eq!(fields(error), ["lines.currency"]);
    }
}
