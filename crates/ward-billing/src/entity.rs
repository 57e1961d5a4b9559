//! The billing database's tables.

pub(crate) mod billing_accounts {
    //! The `billing_accounts` table: exactly one row per patient.

    use sea_orm::entity::prelude::*;

    /// A billing account as stored. The patient's name and email are a snapshot taken when the
    /// account opened, for invoices later; billing never joins the patients database.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "billing_accounts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        /// Unique: the database itself enforces one account per patient.
        #[sea_orm(unique)]
        pub patient_id: Uuid,
        /// An `AccountStatus` name, such as `ACTIVE`.
        pub status: String,
        pub opened_at: DateTimeUtc,
        pub patient_name: String,
        pub patient_email: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
