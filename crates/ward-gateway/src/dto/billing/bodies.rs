//! Request bodies of the billing routes: an invoice, a payment, a refund, an adjustment, a void.
//!
//! As everywhere in the gateway, members arrive as raw JSON and are checked one by one, so a
//! wrongly typed, negative or overflowing number is a 400 naming the member (`lines[1].quantity`),
//! reported with every other failing member; unknown members are named too.

use std::collections::BTreeMap;

use actix_web::HttpMessage;
use actix_web::mime;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;
use ward_bus::billing::{
    AMOUNT_MAX_ABS, AdjustmentInput, InvoiceInput, InvoiceLineInput, LINES_MAX, NewAdjustment,
    NewInvoice, NewPayment, PaymentInput, QUANTITY_MAX,
};
use ward_core::{FieldError, WardError, WardResult};

use super::super::fields::{
    at_most_chars, field_error, integer_field, invalid, text_field, unknown_fields,
    with_type_errors,
};
use super::{LedgerKindInput, PaymentMethodDto};
use crate::json::JSON_MEDIA_TYPE;
use crate::problem::ApiError;

/// The largest amount of money in minor units, either sign (the module's rule, checked here too
/// so that a number beyond it, however large, is a 400 naming the member, never a wrap). The
/// schemas below repeat these bounds as literals.
const MONEY_MAX: i64 = AMOUNT_MAX_ABS;

/// How many lines an invoice may have.
const INVOICE_LINES_MAX: usize = LINES_MAX;

/// The longest void reason kept.
const VOID_REASON_MAX_CHARS: usize = 500;

/// A draft invoice to create. Money is in minor units (cents).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = InvoiceInput)]
pub(crate) struct InvoiceBody {
    #[schema(value_type = Uuid)]
    patient_id: Option<Value>,
    /// An ISO 4217 code; the account's currency once it has one.
    #[schema(value_type = String, pattern = r"^\s*[A-Za-z]{3}\s*$", example = "EUR")]
    currency: Option<Value>,
    #[schema(value_type = String, format = Date, example = "2026-01-31")]
    due_date: Option<Value>,
    #[schema(value_type = Vec<InvoiceLineBody>, min_items = 1, max_items = 100)]
    lines: Option<Value>,
    /// Any other member: a 400 naming it.
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: BTreeMap<String, Value>,
}

// Describes one element of `lines`; [`InvoiceBody`] reads the real ones from raw JSON.
/// One invoice line: `quantity * unitPrice` minor units.
#[derive(ToSchema)]
#[schema(as = InvoiceLineInput, rename_all = "camelCase")]
#[allow(dead_code)]
pub(crate) struct InvoiceLineBody {
    #[schema(pattern = r"\S", example = "CONS")]
    code: String,
    #[schema(pattern = r"\S", example = "Consultation")]
    description: String,
    #[schema(minimum = 1, maximum = 10000, example = 2)]
    quantity: i64,
    /// Minor units; negative for a discount line.
    #[schema(minimum = -1000000000000_i64, maximum = 1000000000000_i64, example = 4500)]
    unit_price: i64,
}

impl InvoiceBody {
    pub(crate) fn into_new_invoice(self) -> WardResult<NewInvoice> {
        let mut type_errors = Vec::new();
        let lines_opt = invoice_lines(self.lines, &mut type_errors);
        let input = InvoiceInput {
            patient_id: text_field(self.patient_id, "patientId", &mut type_errors),
            currency: text_field(self.currency, "currency", &mut type_errors),
            due_date: text_field(self.due_date, "dueDate", &mut type_errors),
            lines: lines_opt,
        };
        unknown_fields(&self.unknown, &mut type_errors);
        with_type_errors(NewInvoice::parse(input), type_errors)
    }
}

/// Reads `lines`: an array of objects, each with only the four members.
fn invoice_lines(
    value_opt: Option<Value>,
    errors: &mut Vec<FieldError>,
) -> Option<Vec<InvoiceLineInput>> {
    let items = match value_opt {
        None | Some(Value::Null) => return None,
        Some(Value::Array(items)) => items,
        Some(_) => {
            errors.push(field_error("lines", "lines must be an array"));
            return None;
        }
    };
    if items.len() > INVOICE_LINES_MAX {
        errors.push(field_error(
            "lines",
            format!("lines must have at most {INVOICE_LINES_MAX} items"),
        ));
        return None;
    }
    let mut lines = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let Value::Object(mut members) = item else {
            errors.push(field_error(
                &format!("lines[{index}]"),
                format!("lines[{index}] must be an object"),
            ));
            continue;
        };
        let name = |member: &str| format!("lines[{index}].{member}");
        let line = InvoiceLineInput {
            code: text_field(members.remove("code"), &name("code"), errors),
            description: text_field(members.remove("description"), &name("description"), errors),
            quantity: integer_field(
                members.remove("quantity"),
                &name("quantity"),
                1..=i64::from(QUANTITY_MAX),
                errors,
            ),
            unit_price: integer_field(
                members.remove("unitPrice"),
                &name("unitPrice"),
                -MONEY_MAX..=MONEY_MAX,
                errors,
            ),
        };
        for unknown in members.keys() {
            let shown: String = unknown.chars().take(100).collect();
            errors.push(field_error(&name(&shown), "unknown field"));
        }
        lines.push(line);
    }
    Some(lines)
}

/// A payment received. Send it with an `Idempotency-Key`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = PaymentInput)]
pub(crate) struct PaymentBody {
    #[schema(value_type = Uuid)]
    patient_id: Option<Value>,
    /// Minor units, more than 0.
    #[schema(value_type = i64, minimum = 1, maximum = 1000000000000_i64, example = 5000)]
    amount: Option<Value>,
    /// The account's currency (an ISO 4217 code).
    #[schema(value_type = String, pattern = r"^\s*[A-Za-z]{3}\s*$", example = "EUR")]
    currency: Option<Value>,
    #[schema(value_type = PaymentMethodDto)]
    method: Option<Value>,
    /// The processor's or bank's reference; may be empty.
    #[schema(value_type = Option<String>, example = "ch_3PQ8")]
    reference: Option<Value>,
    /// Settle this invoice first; without it, the oldest open invoices.
    #[schema(value_type = Option<Uuid>)]
    invoice_id: Option<Value>,
    /// Any other member: a 400 naming it.
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: BTreeMap<String, Value>,
}

impl PaymentBody {
    pub(crate) fn into_new_payment(self) -> WardResult<NewPayment> {
        let mut type_errors = Vec::new();
        let input = PaymentInput {
            patient_id: text_field(self.patient_id, "patientId", &mut type_errors),
            amount: integer_field(self.amount, "amount", 1..=MONEY_MAX, &mut type_errors),
            currency: text_field(self.currency, "currency", &mut type_errors),
            method: text_field(self.method, "method", &mut type_errors),
            reference: text_field(self.reference, "reference", &mut type_errors),
            invoice_id: text_field(self.invoice_id, "invoiceId", &mut type_errors),
        };
        unknown_fields(&self.unknown, &mut type_errors);
        with_type_errors(NewPayment::parse(input), type_errors)
    }
}

/// How much of a payment to give back.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = RefundInput)]
pub(crate) struct RefundBody {
    /// Minor units, more than 0 and at most what is left of the payment.
    #[schema(value_type = i64, minimum = 1, maximum = 1000000000000_i64, example = 1000)]
    amount: Option<Value>,
    /// Any other member: a 400 naming it.
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: BTreeMap<String, Value>,
}

impl RefundBody {
    pub(crate) fn amount(self) -> WardResult<i64> {
        let mut errors = Vec::new();
        let amount_opt = integer_field(self.amount, "amount", 1..=MONEY_MAX, &mut errors);
        unknown_fields(&self.unknown, &mut errors);
        match amount_opt {
            Some(amount) if errors.is_empty() => Ok(amount),
            None if errors.is_empty() => {
                Err(WardError::invalid_field("amount", "amount is required"))
            }
            _ => Err(invalid(errors)),
        }
    }
}

/// A manual ledger entry: an adjustment (either sign) or a write-off (debt given up).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = AdjustmentInput)]
pub(crate) struct AdjustmentBody {
    /// Minor units. An adjustment is signed as it moves the balance (negative credits the
    /// patient); a write-off is the amount given up.
    #[schema(
        value_type = i64,
        minimum = -1000000000000_i64,
        maximum = 1000000000000_i64,
        example = -500
    )]
    amount: Option<Value>,
    /// The account's currency (an ISO 4217 code).
    #[schema(value_type = String, pattern = r"^\s*[A-Za-z]{3}\s*$", example = "EUR")]
    currency: Option<Value>,
    #[schema(value_type = LedgerKindInput)]
    kind: Option<Value>,
    /// Why; required.
    #[schema(value_type = String, pattern = r"\S", example = "goodwill")]
    reason: Option<Value>,
    /// A write-off may settle this invoice.
    #[serde(rename = "invoiceId")]
    #[schema(value_type = Option<Uuid>)]
    invoice_id: Option<Value>,
    /// Any other member: a 400 naming it.
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: BTreeMap<String, Value>,
}

impl AdjustmentBody {
    pub(crate) fn into_new_adjustment(self, patient_id: Uuid) -> WardResult<NewAdjustment> {
        let mut type_errors = Vec::new();
        let input = AdjustmentInput {
            amount: integer_field(
                self.amount,
                "amount",
                -MONEY_MAX..=MONEY_MAX,
                &mut type_errors,
            ),
            currency: text_field(self.currency, "currency", &mut type_errors),
            kind: text_field(self.kind, "kind", &mut type_errors),
            reason: text_field(self.reason, "reason", &mut type_errors),
            invoice_id: text_field(self.invoice_id, "invoiceId", &mut type_errors),
        };
        unknown_fields(&self.unknown, &mut type_errors);
        with_type_errors(NewAdjustment::parse(patient_id, input), type_errors)
    }
}

/// Why an invoice is voided; the body is optional.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = VoidInput)]
pub(crate) struct VoidBody {
    #[schema(value_type = Option<String>, max_length = 500, example = "issued twice")]
    reason: Option<Value>,
    /// Any other member: a 400 naming it.
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: BTreeMap<String, Value>,
}

/// Reads a void's optional body: none (or an empty one) is no reason; otherwise it must be
/// JSON (else a 415) with at most `reason` (else a 400 naming what is wrong).
pub(crate) fn void_reason(
    request: &actix_web::HttpRequest,
    bytes: &[u8],
) -> Result<String, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(String::new());
    }
    let is_json = match request.mime_type() {
        Ok(Some(media_type)) => {
            media_type.type_() == mime::APPLICATION
                && (media_type.subtype() == mime::JSON || media_type.suffix() == Some(mime::JSON))
        }
        Ok(None) | Err(_) => false,
    };
    if !is_json {
        return Err(ApiError::UnsupportedMediaType {
            expected: JSON_MEDIA_TYPE,
            found_opt: None,
        });
    }
    let body: VoidBody = serde_json::from_slice(bytes).map_err(|error| {
        WardError::invalid(
            format!("the body must be a JSON object with an optional reason: {error}"),
            Vec::new(),
        )
    })?;
    let mut errors = Vec::new();
    let text_opt = text_field(body.reason, "reason", &mut errors);
    let reason_opt = at_most_chars(text_opt, "reason", VOID_REASON_MAX_CHARS, &mut errors);
    unknown_fields(&body.unknown, &mut errors);
    if !errors.is_empty() {
        return Err(invalid(errors).into());
    }
    Ok(reason_opt.unwrap_or_default().trim().to_string())
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;
    use serde_json::json;

    use super::*;

    fn fields(error: &WardError) -> Vec<String> {
        error
            .field_errors()
            .iter()
            .map(|error| error.field.clone())
            .collect()
    }

    fn line_errors(lines: Value) -> Vec<FieldError> {
        let mut errors = Vec::new();
        invoice_lines(Some(lines), &mut errors);
        errors
    }

    #[test]
    fn each_bad_line_member_is_named_with_its_index() {
        let errors = line_errors(json!([
            {"code": "A", "description": "a", "quantity": 1, "unitPrice": 100},
            {"code": 5, "description": "b", "quantity": 0, "unitPrice": 1e30, "tax": 1},
            "x"
        ]));
        let named: Vec<&str> = errors.iter().map(|error| error.field.as_str()).collect();
        assert_eq!(
            named,
            [
                "lines[1].code",
                "lines[1].quantity",
                "lines[1].unitPrice",
                "lines[1].tax",
                "lines[2]"
            ]
        );
        assert_eq!(
            line_errors(json!({"code": "A"}))[0].message,
            "lines must be an array"
        );
        let too_many: Vec<Value> = (0..=INVOICE_LINES_MAX).map(|_| json!({})).collect();
        assert_eq!(line_errors(Value::Array(too_many))[0].field, "lines");
    }

    #[test]
    fn a_refund_needs_one_positive_amount_and_nothing_else() {
        let read = |body: Value| serde_json::from_value::<RefundBody>(body).unwrap().amount();
        assert_eq!(read(json!({"amount": 250})).unwrap(), 250);
        assert_eq!(fields(&read(json!({})).unwrap_err()), ["amount"]);
        assert_eq!(
            fields(&read(json!({"amount": -1})).unwrap_err()),
            ["amount"]
        );
        assert_eq!(
            fields(&read(json!({"amount": "5"})).unwrap_err()),
            ["amount"]
        );
        assert_eq!(
            fields(&read(json!({"amount": AMOUNT_MAX_ABS + 1})).unwrap_err()),
            ["amount"]
        );
        assert_eq!(
            fields(&read(json!({"amount": 5, "currency": "EUR"})).unwrap_err()),
            ["currency"]
        );
    }

    #[test]
    fn a_void_body_is_optional_but_must_be_json_with_only_a_reason() {
        let json_request = TestRequest::default()
            .insert_header(("content-type", "application/json"))
            .to_http_request();
        assert_eq!(void_reason(&json_request, b"").unwrap(), "");
        assert_eq!(
            void_reason(&json_request, br#"{"reason": " twice "}"#).unwrap(),
            "twice"
        );
        assert_eq!(void_reason(&json_request, b"{}").unwrap(), "");
        assert!(void_reason(&json_request, br#"{"reason": 5}"#).is_err());
        assert!(void_reason(&json_request, br#"{"why": "x"}"#).is_err());
        assert!(void_reason(&json_request, b"{not json").is_err());
        let text_request = TestRequest::default()
            .insert_header(("content-type", "text/plain"))
            .to_http_request();
        assert!(matches!(
            void_reason(&text_request, b"reason"),
            Err(ApiError::UnsupportedMediaType { .. })
        ));
    }
}
