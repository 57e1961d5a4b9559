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
        /// The ISO 4217 code fixed by the account's first money movement; null until then.
        pub currency: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod ledger_entries {
    //! The `ledger_entries` table: append-only. No code path updates or deletes a row; every
    //! balance and statement is a sum over it.

    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "ledger_entries")]
    pub struct Model {
        /// UUID v7, so `(at, id)` orders entries as they were posted.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub patient_id: Uuid,
        pub at: DateTimeUtc,
        /// A `LedgerKind` name, such as `charge`.
        pub kind: String,
        /// Signed minor units, as the entry moves the balance.
        pub amount: i64,
        pub currency: String,
        pub reference: String,
        pub invoice_id: Option<Uuid>,
        pub payment_id: Option<Uuid>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod invoices {
    //! The `invoices` table. What is paid on an invoice is not stored here: it is the sum of its
    //! `payment_allocations` plus `written_off`; `status` follows from it and is kept in step in
    //! the same transaction, so lists can filter on it.

    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "invoices")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub patient_id: Uuid,
        /// An `InvoiceStatus` name, such as `partially_paid`.
        pub status: String,
        pub currency: String,
        /// The lines as a JSON array (they are only ever read with their invoice).
        #[sea_orm(column_type = "Text")]
        pub lines: String,
        pub total: i64,
        /// What write-offs settled on it.
        pub written_off: i64,
        pub due_date: Date,
        pub created_at: DateTimeUtc,
        pub issued_at: Option<DateTimeUtc>,
        pub voided_at: Option<DateTimeUtc>,
        pub void_reason: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod payments {
    //! The `payments` table: money received, never changed once written (refunds are rows of
    //! their own).

    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "payments")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub patient_id: Uuid,
        pub amount: i64,
        pub currency: String,
        /// A `PaymentMethod` name, such as `card`.
        pub method: String,
        pub reference: String,
        pub received_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod payment_allocations {
    //! The `payment_allocations` table: how much of each payment is applied to each invoice
    //! now. Unlike the ledger it changes: a refund or a void frees money again.

    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "payment_allocations")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub payment_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub invoice_id: Uuid,
        /// Always > 0: a row that would reach 0 is deleted.
        pub amount: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod refunds {
    //! The `refunds` table: money given back from a payment.

    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "refunds")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub payment_id: Uuid,
        pub patient_id: Uuid,
        pub amount: i64,
        pub currency: String,
        pub refunded_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod idempotency_keys {
    //! The `billing_idempotency_keys` table: each `Idempotency-Key` a caller sent with a payment
    //! or a refund, written in that operation's transaction, so a retry finds what it made. The
    //! key is scoped to the caller and the operation; rows older than a day are deleted when
    //! their key comes back.

    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "billing_idempotency_keys")]
    pub struct Model {
        /// The caller's user id (`CallerContext::actor`).
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: String,
        /// `payment` or `refund`.
        #[sea_orm(primary_key, auto_increment = false)]
        pub operation: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub key: String,
        /// Hex SHA-256 of the parsed request, to tell a retry from a different request.
        pub request_hash: String,
        /// The payment or refund the first call recorded.
        pub resource_id: Uuid,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
