//! The analytics database's tables: counters and amounts, and the patient and invoice ids the
//! exact figures need (never a name, email or other personal detail).

pub(crate) mod event_counts {
    //! The `event_counts` table: how many events of each type were applied.

    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "event_counts")]
    pub struct Model {
        /// The envelope's event type, such as `PatientRegistered`.
        #[sea_orm(primary_key, auto_increment = false)]
        pub event_type: String,
        pub count: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod daily_registrations {
    //! The `daily_registrations` table: registrations per registered date.

    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "daily_registrations")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub date: Date,
        pub count: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod patient_states {
    //! The `patient_states` table: where each patient stands, so that every transition moves
    //! the active count exactly once (a purge of a deleted patient subtracts nothing more).

    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "patient_states")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub patient_id: String,
        /// `active`, `deleted`, `merged` or `purged` (see [`crate::figures::PatientState`]).
        #[sea_orm(indexed)]
        pub state: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod daily_amounts {
    //! The `daily_amounts` table: money per metric (`invoiced`, `collected`), day and currency.

    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "daily_amounts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub metric: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub day: Date,
        #[sea_orm(primary_key, auto_increment = false)]
        pub currency: String,
        /// Minor units; negative when more was voided or refunded than issued or paid that day.
        pub amount: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod method_amounts {
    //! The `method_amounts` table: payments net of refunds per currency and method.

    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "method_amounts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub currency: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub method: String,
        pub amount: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub(crate) mod receivables {
    //! The `receivables` table: every issued invoice with something still owed on it, as the
    //! last billing event about it said. Paid and void invoices have no row.

    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "receivables")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub invoice_id: String,
        pub patient_id: String,
        #[sea_orm(indexed)]
        pub currency: String,
        pub issued_on: Date,
        /// Minor units, above zero.
        pub outstanding: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
