-- The bank's ledger has moved out of Passbook's database schema: it now lives in the schema `bank`,
-- owned by the bank API's own database role and created by the bank API's own migrations
-- (src/bank-api/migrations/). Passbook's tables were readable with the credentials the bank API
-- used to share, password hashes and signing keys included; they no longer are.
--
-- The public bank_* tables created by 20261126140000_bank_demo_data.sql only ever held demo data
-- (the seeded demo accounts and the payments made against them), so they are dropped, not copied:
-- the demo seeds its accounts again in the new schema. This also drops their foreign key into
-- `customers`.
DROP TABLE IF EXISTS bank_payments, bank_transactions, bank_accounts;
