-- The statements Ward issues for one patient create, as PostgreSQL logged them (BENCHMARKS.md,
-- "Baseline"); values Ward computes in the process are computed here from pgbench variables.
BEGIN;
SELECT "patients"."id" FROM "patients" WHERE "patients"."email_normalized" = 'bench-' || :client_id || '-' || :r || '@example.com' LIMIT 1;
SELECT nextval('patient_mrn_seq') AS mrn_next FROM generate_series(1, 1) \gset
SELECT MAX("patient_versions"."version") AS "last_version" FROM "patient_versions" WHERE "patient_versions"."patient_id" = md5('bench-' || :client_id || '-' || :r)::uuid LIMIT 1;
INSERT INTO "patients" ("id", "name", "email", "email_normalized", "address", "date_of_birth", "registered_date", "created_at", "updated_at", "version", "name_sort", "mrn", "deleted_at", "identifiers", "merged_into", "fhir_extras") VALUES (md5('bench-' || :client_id || '-' || :r)::uuid, 'Bench Lovelace', 'bench-' || :client_id || '-' || :r || '@example.com', 'bench-' || :client_id || '-' || :r || '@example.com', '1 Bench Street, Testville', '1980-01-15', '2024-06-01', now(), now(), 1, 'bench lovelace', 'MRN-' || lpad(:mrn_next::text, 8, '0'), NULL, '[]', NULL, NULL);
DELETE FROM "patient_name_tokens" WHERE "patient_name_tokens"."patient_id" = md5('bench-' || :client_id || '-' || :r)::uuid;
INSERT INTO "patient_name_tokens" ("token", "patient_id") VALUES ('bench', md5('bench-' || :client_id || '-' || :r)::uuid), ('lovelace', md5('bench-' || :client_id || '-' || :r)::uuid);
INSERT INTO "outbox" ("event_id", "topic", "record_key", "payload", "created_at") VALUES (gen_random_uuid()::text, 'ward.patients.v1', (md5('bench-' || :client_id || '-' || :r)::uuid)::text, convert_to(repeat('x', 220), 'UTF8'), now());
INSERT INTO "patient_versions" ("patient_id", "version", "recorded_at", "actor", "request_id", "action", "name", "email", "address", "date_of_birth", "registered_date", "mrn", "identifiers", "merged_into", "fhir_extras") VALUES (md5('bench-' || :client_id || '-' || :r)::uuid, 1, now(), '01a25307-09cd-747b-9e43-310df3dd8ce1', gen_random_uuid()::text, 'create', 'Bench Lovelace', 'bench-' || :client_id || '-' || :r || '@example.com', '1 Bench Street, Testville', '1980-01-15', '2024-06-01', 'MRN-' || lpad(:mrn_next::text, 8, '0'), '[]', NULL, NULL);
INSERT INTO "audit_events" ("id", "at", "actor", "action", "patient_ids", "outcome", "request_id", "client_addr") VALUES (gen_random_uuid(), now(), '01a25307-09cd-747b-9e43-310df3dd8ce1', 'create', '["' || (md5('bench-' || :client_id || '-' || :r)::uuid)::text || '"]', 'allowed', gen_random_uuid()::text, '127.0.0.1');
COMMIT;
