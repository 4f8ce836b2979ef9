-- The bank API's first schema, in its own PostgreSQL schema `bank`, which its own database role
-- owns (see docs/bank-api.md). Forward-only: a later change gets a new file in this folder.
-- Owned by src/bank-api/ledger.ts. Money is kept in minor units (cents) as bigint: never floating
-- point.
--
-- customer_id is the `sub` that Passbook's introspection answers with: the bank API knows its
-- customers by that alone. There is no foreign key into Passbook's tables, and there cannot be:
-- the bank API's role may not even read them.

-- A customer's accounts. The IBAN is unique, which also makes seeding the demo data idempotent.
CREATE TABLE bank.accounts (
  id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  customer_id   uuid        NOT NULL,
  name          text        NOT NULL,
  kind          text        NOT NULL CHECK (kind IN ('current', 'savings')),
  iban          text        NOT NULL UNIQUE,
  currency      char(3)     NOT NULL,
  balance_minor bigint      NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX accounts_customer_id ON bank.accounts (customer_id, created_at);

-- Every booked movement of money, newest first when listed.
CREATE TABLE bank.transactions (
  id                  uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  account_id          uuid        NOT NULL REFERENCES bank.accounts (id) ON DELETE CASCADE,
  booked_at           timestamptz NOT NULL,
  description         text        NOT NULL,
  category            text        NOT NULL,
  amount_minor        bigint      NOT NULL,
  balance_after_minor bigint      NOT NULL,
  created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX transactions_account_booked ON bank.transactions (account_id, booked_at DESC, id DESC);

-- Payments made through the API, with the app that made them; each books one transaction.
CREATE TABLE bank.payments (
  id               uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  account_id       uuid        NOT NULL REFERENCES bank.accounts (id) ON DELETE CASCADE,
  transaction_id   uuid        NOT NULL UNIQUE REFERENCES bank.transactions (id) ON DELETE CASCADE,
  client_id        text        NOT NULL,
  amount_minor     bigint      NOT NULL CHECK (amount_minor > 0),
  currency         char(3)     NOT NULL,
  payee_name       text        NOT NULL,
  payee_iban       text        NOT NULL,
  reference        text,
  created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payments_account_id ON bank.payments (account_id, created_at);

COMMENT ON TABLE bank.accounts IS 'The bank''s demo ledger: customers'' accounts, by the sub Passbook names. Owner: src/bank-api/ledger.ts.';
COMMENT ON TABLE bank.transactions IS 'The bank''s demo ledger: booked movements of money. Owner: src/bank-api/ledger.ts.';
COMMENT ON TABLE bank.payments IS 'The bank''s demo ledger: payments made through the API. Owner: src/bank-api/ledger.ts.';
