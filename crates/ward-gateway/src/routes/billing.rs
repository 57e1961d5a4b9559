//! `/api/billing`: accounts and their balance, invoices, payments, refunds, adjustments and
//! statements. Money is integer minor units (cents) of the account's one currency.
//!
//! Handlers stay thin: parse, call the trait, map. The billing module checks rights
//! (`billing:read` / `billing:write`) and every rule; `overdue` is computed here, with today's
//! UTC date, because it changes with the calendar, not with the ledger.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use ward_bus::patients::IdempotencyKey;
use ward_core::WardError;
use ward_core::id::parse_id;

use crate::ApiBackends;
use crate::caller::Caller;
use crate::dto::{
    AdjustmentBody, BillingAccountResponse, IDEMPOTENCY_KEY_HEADER, InvoiceBody, InvoiceListParams,
    InvoicePageResponse, InvoiceResponse, LedgerEntryResponse, PaymentBody, PaymentResponse,
    RefundBody, RefundResponse, StatementParams, StatementResponse, VoidBody, idempotency_key,
    parse_invoice_query, parse_statement_period, void_reason,
};
use crate::json::ApiJson;
use crate::openapi::{
    BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge, ServiceUnavailable, Unauthorized,
    Unprocessable, UnsupportedMediaType,
};
use crate::problem::ApiError;

/// Set to `true` on the answer to a payment or refund retried with the same `Idempotency-Key`:
/// nothing new was recorded.
const IDEMPOTENT_REPLAYED_HEADER: &str = "Idempotent-Replayed";

fn today() -> chrono::NaiveDate {
    Utc::now().date_naive()
}

/// Returns the billing account opened for a patient, with its currency and balance.
#[utoipa::path(
    get,
    path = "/api/billing/accounts/{patientId}",
    tag = "billing",
    params(("patientId" = uuid::Uuid, Path, description = "The patient's id")),
    responses(
        (status = 200, description = "The patient's account", body = BillingAccountResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(name = "gateway.get_account_by_patient", skip_all)]
pub(crate) async fn get_account_by_patient(
    backends: web::Data<ApiBackends>,
    caller: Caller,
    raw_patient_id: web::Path<String>,
) -> Result<web::Json<BillingAccountResponse>, ApiError> {
    let patient_id = parse_id(&raw_patient_id, "patientId")?;
    let account = backends
        .billing
        .get_account_by_patient(caller.context(), patient_id)
        .await?;
    Ok(web::Json(BillingAccountResponse::from(account)))
}

/// Creates a draft invoice. Its currency must be the account's (fixed by the first money
/// movement); another is a 400 naming `currency`.
#[utoipa::path(
    post,
    path = "/api/billing/invoices",
    tag = "billing",
    request_body = InvoiceBody,
    responses(
        (status = 201, description = "The draft invoice", body = InvoiceResponse,
            headers(("Location" = String, description = "The invoice's URL"))),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(name = "gateway.create_invoice", skip_all)]
pub(crate) async fn create_invoice(
    backends: web::Data<ApiBackends>,
    caller: Caller,
    body: ApiJson<InvoiceBody>,
) -> Result<HttpResponse, ApiError> {
    let new_invoice = body.into_inner().into_new_invoice()?;
    let invoice = backends
        .billing
        .create_invoice(caller.context(), new_invoice)
        .await?;
    let response = InvoiceResponse::at(invoice, today());
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, invoice_location(&response)))
        .json(response))
}

fn invoice_location(invoice: &InvoiceResponse) -> String {
    format!("/api/billing/invoices/{}", invoice.id())
}

/// Lists invoices, newest first, a page at a time. Unknown parameters are a 400 naming them.
#[utoipa::path(
    get,
    path = "/api/billing/invoices",
    tag = "billing",
    params(InvoiceListParams),
    responses(
        (status = 200, description = "One page of invoices", body = InvoicePageResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(name = "gateway.list_invoices", skip_all)]
pub(crate) async fn list_invoices(
    backends: web::Data<ApiBackends>,
    caller: Caller,
    query: web::Query<Vec<(String, String)>>,
) -> Result<web::Json<InvoicePageResponse>, ApiError> {
    let invoice_query = parse_invoice_query(query.into_inner())?;
    let page = backends
        .billing
        .list_invoices(caller.context(), invoice_query)
        .await?;
    Ok(web::Json(InvoicePageResponse::at(page, today())))
}

/// Returns one invoice.
#[utoipa::path(
    get,
    path = "/api/billing/invoices/{id}",
    tag = "billing",
    params(("id" = uuid::Uuid, Path, description = "The invoice's id")),
    responses(
        (status = 200, description = "The invoice", body = InvoiceResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(name = "gateway.get_invoice", skip_all)]
pub(crate) async fn get_invoice(
    backends: web::Data<ApiBackends>,
    caller: Caller,
    raw_id: web::Path<String>,
) -> Result<web::Json<InvoiceResponse>, ApiError> {
    let id = parse_id(&raw_id, "id")?;
    let invoice = backends.billing.get_invoice(caller.context(), id).await?;
    Ok(web::Json(InvoiceResponse::at(invoice, today())))
}

/// Issues a draft: its total is charged to the account, and the account's credit is applied to
/// it. Any other status is a 409.
#[utoipa::path(
    post,
    path = "/api/billing/invoices/{id}/issue",
    tag = "billing",
    params(("id" = uuid::Uuid, Path, description = "The invoice's id")),
    responses(
        (status = 200, description = "The issued invoice (`issued`, `partially_paid` or `paid` \
            when credit covered it)", body = InvoiceResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(name = "gateway.issue_invoice", skip_all)]
pub(crate) async fn issue_invoice(
    backends: web::Data<ApiBackends>,
    caller: Caller,
    raw_id: web::Path<String>,
) -> Result<web::Json<InvoiceResponse>, ApiError> {
    let id = parse_id(&raw_id, "id")?;
    let invoice = backends.billing.issue_invoice(caller.context(), id).await?;
    Ok(web::Json(InvoiceResponse::at(invoice, today())))
}

/// Voids an invoice. A draft just becomes void; an issued or partly paid one has its charge
/// reversed, and what was paid on it becomes the account's credit. A paid or void invoice is a
/// 409. The body, `{"reason"}`, is optional.
#[utoipa::path(
    post,
    path = "/api/billing/invoices/{id}/void",
    tag = "billing",
    params(("id" = uuid::Uuid, Path, description = "The invoice's id")),
    request_body(content = VoidBody, description = "Optional (the schema describes the body \
        when one is sent): why the invoice is voided"),
    responses(
        (status = 200, description = "The void invoice", body = InvoiceResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(name = "gateway.void_invoice", skip_all)]
pub(crate) async fn void_invoice(
    request: HttpRequest,
    backends: web::Data<ApiBackends>,
    caller: Caller,
    raw_id: web::Path<String>,
    body: web::Bytes,
) -> Result<web::Json<InvoiceResponse>, ApiError> {
    let id = parse_id(&raw_id, "id")?;
    let reason = void_reason(&request, &body)?;
    let invoice = backends
        .billing
        .void_invoice(caller.context(), id, reason)
        .await?;
    Ok(web::Json(InvoiceResponse::at(invoice, today())))
}

/// Records a payment, applied to `invoiceId` first, then to the oldest open invoices; the rest
/// is the account's credit (a negative balance).
///
/// `Idempotency-Key` is required. A retry with the same key and body answers the first
/// payment again, with 201 and `Idempotent-Replayed: true`, and records nothing; the same key
/// with another body is a 422.
#[utoipa::path(
    post,
    path = "/api/billing/payments",
    tag = "billing",
    request_body = PaymentBody,
    params(
        ("Idempotency-Key" = String, Header, description = "Required: 1 to 255 printable \
            ASCII characters naming this payment. Keys are per user and remembered for 24 \
            hours."),
    ),
    responses(
        (status = 201, description = "The payment (recorded now, or by the first call with \
            this key)", body = PaymentResponse,
            headers(
                ("Location" = String, description = "The payment's URL"),
                ("Idempotent-Replayed" = Option<String>, description = "`true` when a retry \
                    answered the first payment")
            )),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Unprocessable),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(name = "gateway.record_payment", skip_all)]
pub(crate) async fn record_payment(
    request: HttpRequest,
    backends: web::Data<ApiBackends>,
    caller: Caller,
    body: ApiJson<PaymentBody>,
) -> Result<HttpResponse, ApiError> {
    let key = required_idempotency_key(&request)?;
    let new_payment = body.into_inner().into_new_payment()?;
    let receipt = backends
        .billing
        .record_payment(caller.context(), new_payment, key)
        .await?;
    let payment = PaymentResponse::from(receipt.payment);
    let mut response = HttpResponse::Created();
    response.insert_header((
        header::LOCATION,
        format!("/api/billing/payments/{}", payment.id()),
    ));
    if !receipt.newly_recorded {
        response.insert_header((IDEMPOTENT_REPLAYED_HEADER, "true"));
    }
    Ok(response.json(payment))
}

fn required_idempotency_key(request: &HttpRequest) -> Result<IdempotencyKey, WardError> {
    match idempotency_key(request)? {
        Some(key) => Ok(key),
        None => Err(WardError::invalid_field(
            IDEMPOTENCY_KEY_HEADER,
            "Idempotency-Key is required: a payment must be safe to retry",
        )),
    }
}

/// Returns one payment, with its allocations and what was refunded.
#[utoipa::path(
    get,
    path = "/api/billing/payments/{id}",
    tag = "billing",
    params(("id" = uuid::Uuid, Path, description = "The payment's id")),
    responses(
        (status = 200, description = "The payment", body = PaymentResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(name = "gateway.get_payment", skip_all)]
pub(crate) async fn get_payment(
    backends: web::Data<ApiBackends>,
    caller: Caller,
    raw_id: web::Path<String>,
) -> Result<web::Json<PaymentResponse>, ApiError> {
    let id = parse_id(&raw_id, "id")?;
    let payment = backends.billing.get_payment(caller.context(), id).await?;
    Ok(web::Json(PaymentResponse::from(payment)))
}

/// Gives back part or all of a payment: first from its unapplied part, then from the invoices
/// it paid (newest first), which reopen. More than is left of the payment is a 400 naming
/// `amount`. With `Idempotency-Key`, a retry answers the first refund.
#[utoipa::path(
    post,
    path = "/api/billing/payments/{id}/refund",
    tag = "billing",
    params(
        ("id" = uuid::Uuid, Path, description = "The payment's id"),
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 printable ASCII \
            characters naming this refund; a retry with the same key and amount answers the \
            first refund, another amount is a 422."),
    ),
    request_body = RefundBody,
    responses(
        (status = 201, description = "The refund", body = RefundResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Unprocessable),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(name = "gateway.refund_payment", skip_all)]
pub(crate) async fn refund_payment(
    request: HttpRequest,
    backends: web::Data<ApiBackends>,
    caller: Caller,
    raw_id: web::Path<String>,
    body: ApiJson<RefundBody>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&raw_id, "id")?;
    let key_opt = idempotency_key(&request)?;
    let amount = body.into_inner().amount()?;
    let refund = backends
        .billing
        .refund_payment(caller.context(), id, amount, key_opt)
        .await?;
    Ok(HttpResponse::Created().json(RefundResponse::from(refund)))
}

/// Posts a manual ledger entry on a patient's account: an `adjustment` (signed as it moves the
/// balance) or a `write_off` (the amount given up, settling `invoiceId` when named). `reason`
/// is required.
#[utoipa::path(
    post,
    path = "/api/billing/accounts/{patientId}/adjustments",
    tag = "billing",
    params(("patientId" = uuid::Uuid, Path, description = "The patient's id")),
    request_body = AdjustmentBody,
    responses(
        (status = 201, description = "The ledger entry posted", body = LedgerEntryResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(name = "gateway.post_adjustment", skip_all)]
pub(crate) async fn post_adjustment(
    backends: web::Data<ApiBackends>,
    caller: Caller,
    raw_patient_id: web::Path<String>,
    body: ApiJson<AdjustmentBody>,
) -> Result<HttpResponse, ApiError> {
    let patient_id = parse_id(&raw_patient_id, "patientId")?;
    let adjustment = body.into_inner().into_new_adjustment(patient_id)?;
    let entry = backends
        .billing
        .post_adjustment(caller.context(), adjustment)
        .await?;
    Ok(HttpResponse::Created().json(LedgerEntryResponse::from(entry)))
}

/// Returns the account's ledger over the UTC days `from..=to` (both inclusive, so
/// `from=2026-01-01&to=2026-01-31` is January): the balance before `from`, every
/// entry in the order posted, and the balance after. Unknown parameters are a 400 naming them.
#[utoipa::path(
    get,
    path = "/api/billing/accounts/{patientId}/statement",
    tag = "billing",
    params(
        ("patientId" = uuid::Uuid, Path, description = "The patient's id"),
        StatementParams,
    ),
    responses(
        (status = 200, description = "The statement", body = StatementResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 503, response = ServiceUnavailable),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(name = "gateway.get_statement", skip_all)]
pub(crate) async fn get_statement(
    backends: web::Data<ApiBackends>,
    caller: Caller,
    raw_patient_id: web::Path<String>,
    query: web::Query<Vec<(String, String)>>,
) -> Result<web::Json<StatementResponse>, ApiError> {
    let patient_id = parse_id(&raw_patient_id, "patientId")?;
    let (from_opt, to_opt) = parse_statement_period(query.into_inner())?;
    let statement = backends
        .billing
        .statement(caller.context(), patient_id, from_opt, to_opt)
        .await?;
    Ok(web::Json(StatementResponse::from(statement)))
}
