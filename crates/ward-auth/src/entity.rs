//! The auth database's tables.

pub(crate) mod users {
    //! The `users` table: one row per staff account.

    use sea_orm::entity::prelude::*;

    /// A staff account as stored. `email` keeps the address as entered (trimmed);
    /// `email_normalized` (trimmed, lowercased) carries the uniqueness rule and serves logins.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "users")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub email: String,
        #[sea_orm(unique)]
        pub email_normalized: String,
        /// An argon2id PHC string; never logged, never returned.
        pub password_hash: String,
        /// A `UserRole` name, such as `clinician`.
        pub role: String,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
