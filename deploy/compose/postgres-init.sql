-- One PostgreSQL server, one database per module, as on AWS (where each is its own RDS instance).
-- Runs once, when the data volume is new; the image has already created ward_auth (POSTGRES_DB)
-- owned by the user `ward` (POSTGRES_USER).
CREATE DATABASE ward_patients OWNER ward;
CREATE DATABASE ward_billing OWNER ward;
CREATE DATABASE ward_analytics OWNER ward;
