//! The analytics database's tables: counters only, never a patient's name, email or id.

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
