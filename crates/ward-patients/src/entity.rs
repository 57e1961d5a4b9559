//! The patients database's tables.

pub(crate) mod patients {
    //! The `patients` table: one row per registered patient.

    use sea_orm::entity::prelude::*;

    /// A patient as stored. `email` keeps the address as entered (trimmed); `email_normalized`
    /// ([`ward_bus::patients::normalized_email`]) carries the rule "one patient per address,
    /// ignoring case", enforced by the database so two racing creates cannot both win.
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
        /// read, search, create, update, delete or export.
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
