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
