//! The audit trail of patient data access: appending an event (with the change it records,
//! in the same transaction) and the admins' query.

use chrono::Utc;
use sea_orm::{
    ActiveValue, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use uuid::Uuid;
use ward_bus::db::db_error;
use ward_bus::patients::{AuditEvent, AuditPage, AuditQuery, PAGE_MAX, cursor_after};
use ward_core::{CallerContext, Right, WardError, WardResult};

use crate::entity::audit_events;

/// See [`ward_bus::PatientsApi::audit_events`].
pub(super) async fn audit_events(
    db: &DatabaseConnection,
    ctx: &CallerContext,
    query: AuditQuery,
) -> WardResult<AuditPage> {
    // Not audited when refused: the audit trail is not patient data.
    ctx.require(Right::UsersAdmin)?;
    // `AuditQuery` has public fields, so a hand-built one may skip `AuditQuery::parse`.
    if query.limit == 0 || query.limit > PAGE_MAX {
        return Err(WardError::invalid_field(
            "limit",
            format!("limit must be between 1 and {PAGE_MAX}"),
        ));
    }
    let mut select = audit_events::Entity::find().order_by_asc(audit_events::Column::Id);
    if let Some(patient_id) = query.patient_id_opt {
        // Ids are stored hyphenated inside a JSON array; a UUID cannot match by accident.
        select = select.filter(audit_events::Column::PatientIds.contains(patient_id.to_string()));
    }
    if let Some(actor) = query.actor_opt {
        select = select.filter(audit_events::Column::Actor.eq(actor));
    }
    if let Some(from) = query.from_opt {
        select = select.filter(audit_events::Column::At.gte(from));
    }
    if let Some(to) = query.to_opt {
        select = select.filter(audit_events::Column::At.lte(to));
    }
    if let Some(after) = query.after_opt {
        select = select.filter(audit_events::Column::Id.gt(after));
    }
    let mut rows = select
        .limit(u64::from(query.limit) + 1)
        .all(db)
        .await
        .map_err(|error| db_error("reading the audit trail", error))?;
    let has_more = rows.len() > query.limit as usize;
    rows.truncate(query.limit as usize);
    let next_cursor_opt = match rows.last() {
        Some(last) if has_more => Some(cursor_after(last.id)),
        _ => None,
    };
    let mut items = Vec::with_capacity(rows.len());
    for model in rows {
        items.push(to_audit_event(model)?);
    }
    Ok(AuditPage {
        items,
        next_cursor_opt,
    })
}

/// Appends an audit event (DESIGN.md, Security): who, what, which patients (ids only, never
/// PHI), outcome, request id and client address. Inserts only: the trail is append-only. Pass
/// the write's transaction so the change and its row commit together.
pub(super) async fn record<C: ConnectionTrait>(
    conn: &C,
    ctx: &CallerContext,
    action: &'static str,
    patient_ids: &[Uuid],
    outcome: &'static str,
) -> WardResult<()> {
    let ids: Vec<String> = patient_ids.iter().map(Uuid::to_string).collect();
    let patient_ids_json = serde_json::to_string(&ids)
        .map_err(|error| WardError::Internal(format!("encoding audit patient ids: {error}")))?;
    let row = audit_events::ActiveModel {
        id: ActiveValue::Set(ward_core::id::new_id()),
        at: ActiveValue::Set(Utc::now()),
        actor: ActiveValue::Set(ctx.actor()),
        action: ActiveValue::Set(action.to_string()),
        patient_ids: ActiveValue::Set(patient_ids_json),
        outcome: ActiveValue::Set(outcome.to_string()),
        request_id: ActiveValue::Set(ctx.request_id().to_string()),
        client_addr: ActiveValue::Set(ctx.client_addr().map(str::to_string)),
    };
    audit_events::Entity::insert(row)
        .exec_without_returning(conn)
        .await
        .map_err(|error| db_error("recording an audit event", error))?;
    tracing::info!(
        target: "ward::audit",
        actor = %ctx.actor(),
        action,
        outcome,
        num_patients = patient_ids.len(),
        request_id = ctx.request_id(),
        "patient data access recorded"
    );
    Ok(())
}

/// Reads a stored audit row; a malformed `patient_ids` (only possible by hand-editing the
/// database) is an internal error.
fn to_audit_event(model: audit_events::Model) -> WardResult<AuditEvent> {
    let raw_ids: Vec<String> = serde_json::from_str(&model.patient_ids).map_err(|error| {
        WardError::Internal(format!(
            "audit event {} has malformed patient ids: {error}",
            model.id
        ))
    })?;
    let mut patient_ids = Vec::with_capacity(raw_ids.len());
    for raw in raw_ids {
        let id = Uuid::parse_str(&raw).map_err(|error| {
            WardError::Internal(format!(
                "audit event {} has a malformed patient id: {error}",
                model.id
            ))
        })?;
        patient_ids.push(id);
    }
    Ok(AuditEvent {
        at: model.at,
        actor: model.actor,
        action: model.action,
        patient_ids,
        outcome: model.outcome,
        request_id: model.request_id,
        client_addr_opt: model.client_addr,
    })
}
