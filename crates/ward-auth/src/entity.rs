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
        /// A disabled account cannot log in or refresh; its rows and history stay.
        pub disabled: bool,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod refresh_tokens {
    //! The `refresh_tokens` table: one row per refresh token, grouped by login session.

    use sea_orm::entity::prelude::*;

    /// A refresh token as stored: only its SHA-256, so a database leak reveals no usable token.
    /// A login starts a session with one row; each refresh spends the current row and adds the
    /// next one of the same session.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "refresh_tokens")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        /// The login session; access tokens carry it too.
        pub session_id: Uuid,
        pub user_id: Uuid,
        /// Lowercase hex SHA-256 of the token text; never logged.
        #[sea_orm(unique)]
        pub token_hash: String,
        pub created_at: DateTimeUtc,
        pub expires_at: DateTimeUtc,
        /// Set when the token was exchanged; a second use is a replay.
        pub spent_at: Option<DateTimeUtc>,
        /// Set by logout, a detected replay, a password change or disabling the account.
        pub revoked_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod login_attempts {
    //! The `login_attempts` table: the recent password checks of each throttle key, shared by
    //! every auth process (see `crate::throttle`).

    use sea_orm::entity::prelude::*;

    /// One key's share of one attempt: an attempt under an account and an address has two rows
    /// with the same `attempt_id`, so a success can clear the account and forgive the address.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "login_attempts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub attempt_id: Uuid,
        /// `account:<email>` or `addr:<ip>`.
        pub throttle_key: String,
        /// When the attempt started, by the wall clock of the process that made it.
        pub attempted_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
