-- The bank's own demo ledger, served by the bank API (src/bank-api/). Owned by
-- src/bank-api/ledger.ts. Money is kept in minor units (cents) as bigint: never floating point.

-- A customer's accounts. The IBAN is unique, which also makes seeding the demo data idempotent.
CREATE TABLE bank_accounts (
  id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  customer_id   uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  name          text        NOT NULL,
  kind          text        NOT NULL CHECK (kind IN ('current', 'savings')),
  iban          text        NOT NULL UNIQUE,
  currency      char(3)     NOT NULL,
  balance_minor bigint      NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bank_accounts_customer_id ON bank_accounts (customer_id, created_at);

-- Every booked movement of money, newest first when listed.
CREATE TABLE bank_transactions (
  id                  uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  account_id          uuid        NOT NULL REFERENCES bank_accounts (id) ON DELETE CASCADE,
  booked_at           timestamptz NOT NULL,
  description         text        NOT NULL,
  category            text        NOT NULL,
  amount_minor        bigint      NOT NULL,
  balance_after_minor bigint      NOT NULL,
  created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bank_transactions_account_booked ON bank_transactions (account_id, booked_at DESC, id DESC);

-- Payments made through the API, with the app that made them; each books one transaction.
CREATE TABLE bank_payments (
  id               uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  account_id       uuid        NOT NULL REFERENCES bank_accounts (id) ON DELETE CASCADE,
  transaction_id   uuid        NOT NULL UNIQUE REFERENCES bank_transactions (id) ON DELETE CASCADE,
  client_id        text        NOT NULL,
  amount_minor     bigint      NOT NULL CHECK (amount_minor > 0),
  currency         char(3)     NOT NULL,
  payee_name       text        NOT NULL,
  payee_iban       text        NOT NULL,
  reference        text,
  created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bank_payments_account_id ON bank_payments (account_id, created_at);
