//! The patients database's tables.

pub(crate) mod patients {
    //! The `patients` table: one row per registered patient.

    use sea_orm::entity::prelude::*;

    /// A patient as stored. `email` keeps the address as entered (trimmed); `email_normalized`
    /// ([`ward_bus::patients::normalized_email`]) carries the rule "one patient per address,
    /// ignoring case", enforced by the database so two racing creates cannot both win.
    ///
    /// A patient without an email (registered through FHIR) has `email` empty and
    /// `email_normalized` `none:<id>` (see `store::email_key`): unique per patient, never a
    /// valid address, so such patients neither collide nor match an email search. Making the
    /// column nullable instead would need SQLite to rebuild the table. `address` is empty when
    /// there is none.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "patients")]
    pub struct Model {
        /// UUID v7, so ordering by id (keyset pagination) follows registration order.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub name: String,
        pub email: String,
        #[sea_orm(unique)]
        pub email_normalized: String,
        #[sea_orm(column_type = "Text")]
        pub address: String,
        pub date_of_birth: Date,
        pub registered_date: Date,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
        /// 1 when registered, plus one per update; writes that name a version are conditional
        /// on it (`UPDATE ... WHERE version = ?`). Added by a later migration, existing rows 1.
        #[sea_orm(default_value = 1)]
        pub version: i64,
        /// The name folded for sorting (lowercase words without accents, space-separated), so
        /// `sort=name` is an index scan. Added by a later migration, which backfills it.
        #[sea_orm(default_value = "")]
        pub name_sort: String,
        /// The medical record number, allocated by the registering transaction (see `mrn.rs`);
        /// unique (an index added by its migration, which also backfills it).
        #[sea_orm(default_value = "")]
        pub mrn: String,
        /// When the patient was soft deleted; `None` for a live record. A deleted row stays
        /// (reads answer 410, searches skip it) until a restore clears this or a purge erases
        /// the row. Its email stays reserved meanwhile, so a restore can never clash.
        pub deleted_at: Option<DateTimeUtc>,
        /// The further identifiers as a JSON array of `{system, value}`, sorted: a copy of the
        /// patient's `patient_identifiers` rows (written in the same transaction), so a read
        /// needs no second query. Added by a later migration, existing rows `[]`.
        #[sea_orm(column_type = "Text", default_value = "[]")]
        pub identifiers: String,
        /// Set when this record was merged into another: that record's id. Added by a later
        /// migration, existing rows `NULL`.
        pub merged_into: Option<Uuid>,
        /// The FHIR elements Ward does not model, a JSON object
        /// ([`ward_bus::patients::FhirExtras`]); `NULL` for none. Added by a later migration.
        #[sea_orm(column_type = "Text", nullable)]
        pub fhir_extras: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod patient_merges {
    //! The `patient_merges` table: one row per merge of a duplicate (source) into the record
    //! that stays (target), with what moved, so an unmerge can give it back.

    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "patient_merges")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub source_id: Uuid,
        pub target_id: Uuid,
        pub merged_at: DateTimeUtc,
        /// The identifiers that moved from source to target (JSON, as on `patients`),
        /// including the source's MRN under `urn:ward:merged-mrn`.
        #[sea_orm(column_type = "Text")]
        pub moved_identifiers: String,
        /// When the merge was undone; `None` while it stands.
        pub unmerged_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod audit_events {
    //! The `audit_events` table: the append-only trail of patient data access. Nothing in Ward
    //! updates or deletes a row; the only writes are inserts (see `service.rs`).

    use sea_orm::entity::prelude::*;

    /// One access (or refused attempt) to patient data.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_events")]
    pub struct Model {
        /// UUID v7, so ordering by id (keyset pagination) follows recording order.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub at: DateTimeUtc,
        /// The principal's user id, `system:<purpose>` or `anonymous`.
        pub actor: String,
        /// read, search, create, update, delete or export (a restore is an update, a purge a
        /// delete).
        pub action: String,
        /// A JSON array of patient ids (hyphenated UUIDs).
        #[sea_orm(column_type = "Text")]
        pub patient_ids: String,
        /// allowed or denied.
        pub outcome: String,
        pub request_id: String,
        pub client_addr: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod patient_versions {
    //! The `patient_versions` table: each patient's history, one row per create, update,
    //! delete and restore, written in the change's transaction. Rows outlive a (soft) delete;
    //! a purge erases them with the patient, as they hold personal data.

    use sea_orm::entity::prelude::*;

    /// The record as it stood after one change (for a delete, as it was when deleted).
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "patient_versions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub patient_id: Uuid,
        /// The patient's version after the change; the key with `patient_id`, so two writers
        /// can never record the same version.
        #[sea_orm(primary_key, auto_increment = false)]
        pub version: i64,
        pub recorded_at: DateTimeUtc,
        /// The principal's user id, `system:<purpose>` or `anonymous`.
        pub actor: String,
        pub request_id: String,
        /// create, update, delete or restore.
        pub action: String,
        pub name: String,
        /// Empty for none, as on `patients`.
        pub email: String,
        #[sea_orm(column_type = "Text")]
        pub address: String,
        pub date_of_birth: Date,
        pub registered_date: Date,
        /// The patient's medical record number (it never changes). Empty only for entries of
        /// patients deleted before numbers existed.
        #[sea_orm(default_value = "")]
        pub mrn: String,
        /// The further identifiers then, as on `patients.identifiers`.
        #[sea_orm(column_type = "Text", default_value = "[]")]
        pub identifiers: String,
        /// The record this one was merged into then, as on `patients.merged_into`.
        pub merged_into: Option<Uuid>,
        /// The FHIR extras then, as on `patients.fhir_extras`.
        #[sea_orm(column_type = "Text", nullable)]
        pub fhir_extras: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod patient_identifiers {
    //! The `patient_identifiers` table: who holds each further identifier. The key
    //! `(system, value)` makes one patient per identifier a rule of the database, so two
    //! racing writes cannot both take one; an index on `patient_id` finds a patient's rows and
    //! one on `value` serves a search by value alone. A soft-deleted patient keeps its rows
    //! (a restore cannot clash); a purge deletes them.

    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "patient_identifiers")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub system: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub value: String,
        pub patient_id: Uuid,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod patient_name_tokens {
    //! The `patient_name_tokens` table: each word of each patient's name, folded (lowercase,
    //! without accents), so a name prefix search is a range scan of the (token, patient_id)
    //! key instead of a LIKE over every name. Kept in step with `patients` in the same
    //! transaction as each write.

    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "patient_name_tokens")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub token: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub patient_id: Uuid,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod patient_counters {
    //! The `patient_counters` table: named sequences, such as the next medical record number
    //! (`mrn`) on SQLite, where a registering transaction reads its row and moves it on, so
    //! numbers are handed out once each, in order. PostgreSQL takes them from the sequence
    //! `patient_mrn_seq` instead, which continued from this row (see `mrn.rs`).

    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "patient_counters")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        /// The value the next allocation takes.
        pub next_value: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod idempotency_keys {
    //! The `idempotency_keys` table: each `Idempotency-Key` a caller sent with a create, written
    //! in the create's transaction, so a retry finds the patient it made. The key is scoped to
    //! the caller (another user may send the same string); rows older than a day are ignored
    //! and deleted when their key comes back.

    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "idempotency_keys")]
    pub struct Model {
        /// The caller's user id (`CallerContext::actor`).
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub key: String,
        /// Hex SHA-256 of the canonical new patient, to tell a retry from a different request.
        pub request_hash: String,
        pub patient_id: Uuid,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
