-- Each table says which module owns it (the only code that reads or writes it), so that a reader
-- of schema.sql or of the live database knows where to look.
COMMENT ON TABLE oidc_models IS 'oidc-provider''s sessions, interactions, codes, tokens, grants, PAR requests and replay records. Owner: src/oidc/storage/.';
COMMENT ON TABLE customers IS 'The bank''s customers, their argon2id password hashes and profile claims. Owner: src/customers/customers.ts.';
COMMENT ON TABLE clients IS 'Registered apps and resource servers; secrets only as SHA-256 digests. Owner: src/clients/clients.ts.';
COMMENT ON TABLE signing_keys IS 'Token-signing keys shared by every Passbook process. Owner: src/oidc/keys.ts.';
COMMENT ON TABLE cookie_keys IS 'Cookie-signing secrets generated for development when COOKIE_KEYS is unset. Owner: src/oidc/keys.ts.';
COMMENT ON TABLE audit_events IS 'The customer''s activity log, shown on the account pages. Owner: src/audit/events.ts.';
COMMENT ON TABLE bank_accounts IS 'The bank''s demo ledger: customers'' accounts. Owner: src/bank-api/ledger.ts.';
COMMENT ON TABLE bank_transactions IS 'The bank''s demo ledger: booked movements of money. Owner: src/bank-api/ledger.ts.';
COMMENT ON TABLE bank_payments IS 'The bank''s demo ledger: payments made through the API. Owner: src/bank-api/ledger.ts.';
