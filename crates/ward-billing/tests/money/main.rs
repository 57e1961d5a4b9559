//! The billing service's money rules, called directly on SQLite and on PostgreSQL.

mod concurrency;
mod helpers;
mod invoices;
mod payments;
mod property;
mod statement;
mod upgrade;
