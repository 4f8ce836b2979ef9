-- A payment is made with a payment token: an access token for exactly one payment the customer
-- approved (docs/bank-api.md). The token pays once. Owned by src/bank-api/ledger.ts.
--
-- token_sha256 names the token that paid (its SHA-256, never the token itself); being unique, it
-- is what stops a second payment on one token, even from two requests at once. idempotency_key is
-- the key the app sent with it: a retry with the same token and key gets the same payment back.
-- Payments booked before payment tokens have neither.
ALTER TABLE bank.payments
  ADD COLUMN token_sha256    bytea UNIQUE CHECK (octet_length(token_sha256) = 32),
  ADD COLUMN idempotency_key text,
  ADD CONSTRAINT payments_token_and_key CHECK ((token_sha256 IS NULL) = (idempotency_key IS NULL));

COMMENT ON COLUMN bank.payments.token_sha256 IS 'SHA-256 of the payment token that booked it: one payment per token. Owner: src/bank-api/ledger.ts.';
COMMENT ON COLUMN bank.payments.idempotency_key IS 'The Idempotency-Key the app sent: a retry with the same token and key gets this payment back. Owner: src/bank-api/ledger.ts.';
