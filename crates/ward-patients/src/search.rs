//! Patient search: folding names into words, keeping `patient_name_tokens` in step with
//! `patients`, and turning a [`PatientSearch`] into one keyset-paged query.
//!
//! A name word matches by prefix through the token table: `token >= 'jo' AND token < 'jp'`, a
//! range scan of its (token, patient_id) key. Each sort has an index on (key, id), and the next
//! page starts strictly after the last (key, id), so pages never overlap, even while patients
//! are added between them.

use sea_orm::sea_query::{Condition, Query, UnionType};
use sea_orm::{
    ActiveValue, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, Order,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Select,
};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;
use uuid::Uuid;
use ward_bus::db::db_error;
use ward_bus::patients::{
    DateComparator, IdentifierFilter, PatientSearch, PatientSortField, SortKey,
};
use ward_core::WardResult;

use crate::entity::{patient_identifiers, patient_name_tokens, patients};

/// Splits `text` into folded words: compatibility-decomposed (NFKD), combining marks dropped,
/// lowercased, cut at every character that is not a letter or digit. "José Álvarez-Núñez"
/// gives `jose`, `alvarez`, `nunez`.
pub(crate) fn fold_words(text: &str) -> Vec<String> {
    let folded: String = text
        .nfkd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect();
    folded
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_string)
        .collect()
}

/// The `name_sort` column: the folded words, space-separated.
pub(crate) fn name_sort_key(name: &str) -> String {
    fold_words(name).join(" ")
}

/// The smallest string above every string starting with `prefix`: the last character moved up
/// by one (a dropped `char::MAX` carries to the one before). `None` when no bound exists.
fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = u32::from(last) + 1;
        // Surrogates are not chars; the next scalar value after them is U+E000.
        if (0xD800..=0xDFFF).contains(&next) {
            next = 0xE000;
        }
        if let Some(bumped) = char::from_u32(next) {
            chars.push(bumped);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Replaces the name tokens of patient `id` with those of `name`, inside the write's `txn`.
pub(crate) async fn replace_name_tokens(
    txn: &DatabaseTransaction,
    id: Uuid,
    name: &str,
) -> WardResult<()> {
    delete_name_tokens(txn, id).await?;
    insert_name_tokens(txn, id, distinct_name_tokens(name)).await
}

/// The search tokens of `name`: its folded words, each once.
pub(crate) fn distinct_name_tokens(name: &str) -> Vec<String> {
    let mut tokens = fold_words(name);
    tokens.sort();
    tokens.dedup();
    tokens
}

/// Inserts `tokens` (distinct) for patient `id`.
pub(crate) async fn insert_name_tokens<C: ConnectionTrait>(
    conn: &C,
    id: Uuid,
    tokens: Vec<String>,
) -> WardResult<()> {
    if tokens.is_empty() {
        return Ok(());
    }
    let rows = tokens
        .into_iter()
        .map(|token| patient_name_tokens::ActiveModel {
            token: ActiveValue::Set(token),
            patient_id: ActiveValue::Set(id),
        });
    patient_name_tokens::Entity::insert_many(rows)
        .exec_without_returning(conn)
        .await
        .map_err(|error| db_error("indexing a patient's name", error))?;
    Ok(())
}

/// Removes the name tokens of patient `id` (on purge, or before re-indexing). A soft delete
/// keeps them: the search filters deleted rows out, and a restore needs no re-indexing.
pub(crate) async fn delete_name_tokens(txn: &DatabaseTransaction, id: Uuid) -> WardResult<()> {
    patient_name_tokens::Entity::delete_many()
        .filter(patient_name_tokens::Column::PatientId.eq(id))
        .exec(txn)
        .await
        .map_err(|error| db_error("removing a patient's name index", error))?;
    Ok(())
}

/// The patients matching every filter of `search`, unordered and unpaged (what `total` counts).
pub(crate) fn filtered(search: &PatientSearch) -> Select<patients::Entity> {
    // Soft-deleted and merged-away patients are kept but never found.
    let mut select = patients::Entity::find()
        .filter(patients::Column::DeletedAt.is_null())
        .filter(patients::Column::MergedInto.is_null());
    let mut words = Vec::new();
    for raw_word in &search.name_words {
        words.extend(fold_words(raw_word));
    }
    words.sort();
    words.dedup();
    for word in words {
        let mut tokens = Query::select();
        tokens
            .column(patient_name_tokens::Column::PatientId)
            .from(patient_name_tokens::Entity)
            .and_where(patient_name_tokens::Column::Token.gte(word.as_str()));
        if let Some(upper) = prefix_upper_bound(&word) {
            tokens.and_where(patient_name_tokens::Column::Token.lt(upper));
        }
        select = select.filter(patients::Column::Id.in_subquery(tokens.to_owned()));
    }
    if let Some(email) = &search.email_opt {
        // A patient without an email (stored empty) never matches, whatever its key is.
        select = select
            .filter(patients::Column::EmailNormalized.eq(email.as_str()))
            .filter(patients::Column::Email.ne(""));
    }
    if let Some(identifier) = &search.identifier_opt {
        select = select.filter(identifier_condition(IdentifierFilter::of(identifier)));
    }
    for bound in &search.birth_dates {
        let column = patients::Column::DateOfBirth;
        select = match bound.comparator {
            DateComparator::Eq => select.filter(column.eq(bound.date)),
            DateComparator::Ge => select.filter(column.gte(bound.date)),
            DateComparator::Le => select.filter(column.lte(bound.date)),
        };
    }
    select
}

/// The patients an `identifier` token names: the MRN (unique index) and/or the holders of a
/// further identifier (the table's key, or its `value` index for a value alone). A value alone
/// is one `IN (... UNION ...)`, not `mrn = ? OR id IN (...)`: PostgreSQL cannot use the MRN
/// index under that OR and walks the whole table in id order instead (found by the scale
/// benchmark: 50 to 170 ms a lookup at a million patients, against 0.2 ms).
fn identifier_condition(filter: IdentifierFilter<'_>) -> Condition {
    let holders = |system_opt: Option<&str>, value: &str| {
        let mut query = Query::select();
        query
            .column(patient_identifiers::Column::PatientId)
            .from(patient_identifiers::Entity)
            .and_where(patient_identifiers::Column::Value.eq(value));
        if let Some(system) = system_opt {
            query.and_where(patient_identifiers::Column::System.eq(system));
        }
        query
    };
    match filter {
        IdentifierFilter::Mrn(value) => Condition::all().add(patients::Column::Mrn.eq(value)),
        IdentifierFilter::System { system, value } => Condition::all()
            .add(patients::Column::Id.in_subquery(holders(Some(system), value).to_owned())),
        IdentifierFilter::AnySystem(value) => {
            let mut by_mrn = Query::select();
            by_mrn
                .column(patients::Column::Id)
                .from(patients::Entity)
                .and_where(patients::Column::Mrn.eq(value))
                .union(UnionType::Distinct, holders(None, value).to_owned());
            Condition::all().add(patients::Column::Id.in_subquery(by_mrn.to_owned()))
        }
    }
}

/// Orders `select` by the search's sort (ties by id, same direction) and starts it after the
/// cursor's (key, id).
pub(crate) fn ordered_after(
    mut select: Select<patients::Entity>,
    search: &PatientSearch,
) -> Select<patients::Entity> {
    let order = if search.sort.descending {
        Order::Desc
    } else {
        Order::Asc
    };
    let key_column_opt = match search.sort.field {
        PatientSortField::Id => None,
        PatientSortField::Name => Some(patients::Column::NameSort),
        PatientSortField::BirthDate => Some(patients::Column::DateOfBirth),
        PatientSortField::RegisteredDate => Some(patients::Column::RegisteredDate),
    };
    if let Some(key_column) = key_column_opt {
        select = select.order_by(key_column, order.clone());
    }
    select = select.order_by(patients::Column::Id, order);
    let Some(after) = &search.after_opt else {
        return select;
    };
    let id_column = patients::Column::Id;
    let descending = search.sort.descending;
    let id_after = if descending {
        id_column.lt(after.id)
    } else {
        id_column.gt(after.id)
    };
    let key_value_opt: Option<sea_orm::Value> = match &after.key {
        SortKey::None => None,
        SortKey::Text(text) => Some(text.clone().into()),
        SortKey::Date(date) => Some((*date).into()),
    };
    match (key_column_opt, key_value_opt) {
        (Some(key_column), Some(key)) => {
            let key_after = if descending {
                key_column.lt(key.clone())
            } else {
                key_column.gt(key.clone())
            };
            select.filter(
                Condition::any()
                    .add(key_after)
                    .add(Condition::all().add(key_column.eq(key)).add(id_after)),
            )
        }
        // The cursor was decoded for this very sort, so a key is present exactly when the
        // sort has one; by id, the id alone orders.
        _ => select.filter(id_after),
    }
}

/// The sort key of `model` in `search`'s order, for the next page's cursor.
pub(crate) fn sort_key_of(model: &patients::Model, search: &PatientSearch) -> SortKey {
    match search.sort.field {
        PatientSortField::Id => SortKey::None,
        PatientSortField::Name => SortKey::Text(model.name_sort.clone()),
        PatientSortField::BirthDate => SortKey::Date(model.date_of_birth),
        PatientSortField::RegisteredDate => SortKey::Date(model.registered_date),
    }
}

/// One page of `search`: the rows (at most `limit`), the next page's cursor, and the count of
/// every match when asked for.
pub(crate) struct SearchPage {
    pub(crate) rows: Vec<patients::Model>,
    pub(crate) next_cursor_opt: Option<String>,
    pub(crate) total_opt: Option<u64>,
}

/// Runs `search` on `conn`.
pub(crate) async fn find_page<C: ConnectionTrait>(
    conn: &C,
    search: &PatientSearch,
) -> WardResult<SearchPage> {
    let matching = filtered(search);
    // Counted only on request: a COUNT walks every match, a page only `limit` of them.
    let total_opt = if search.with_total {
        let total = matching
            .clone()
            .count(conn)
            .await
            .map_err(|error| db_error("counting patients", error))?;
        Some(total)
    } else {
        None
    };
    // One row more than asked tells whether a next page exists without a COUNT.
    let mut rows = ordered_after(matching, search)
        .limit(u64::from(search.limit) + 1)
        .all(conn)
        .await
        .map_err(|error| db_error("searching patients", error))?;
    let has_more = rows.len() > search.limit as usize;
    rows.truncate(search.limit as usize);
    let next_cursor_opt = match rows.last() {
        Some(last) if has_more => Some(search.cursor_after(&sort_key_of(last, search), last.id)),
        _ => None,
    };
    Ok(SearchPage {
        rows,
        next_cursor_opt,
        total_opt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fold_to_lowercase_words_without_accents() {
        assert_eq!(
            fold_words("José Álvarez-Núñez"),
            vec!["jose", "alvarez", "nunez"]
        );
        assert_eq!(fold_words("  ANN   Johnson "), vec!["ann", "johnson"]);
        assert_eq!(fold_words("O'Brien"), vec!["o", "brien"]);
        assert!(fold_words("--").is_empty());
        assert_eq!(name_sort_key("Zoë  Ångström"), "zoe angstrom");
    }

    #[test]
    fn a_prefix_bound_is_the_last_character_moved_up() {
        assert_eq!(prefix_upper_bound("jo").as_deref(), Some("jp"));
        assert_eq!(prefix_upper_bound("z").as_deref(), Some("{"));
        assert_eq!(
            prefix_upper_bound("a\u{d7ff}").as_deref(),
            Some("a\u{e000}")
        );
        assert_eq!(prefix_upper_bound("a\u{10ffff}").as_deref(), Some("b"));
        assert_eq!(prefix_upper_bound("\u{10ffff}"), None);
    }
}
