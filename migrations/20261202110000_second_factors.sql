-- Two-step verification: a customer's authenticator app (its TOTP secret encrypted at rest) and
-- their single-use recovery codes (keyed digests only), plus the data key that development and
-- tests generate when DATA_ENCRYPTION_KEY is unset.

CREATE TABLE data_encryption_keys (
  id         serial      PRIMARY KEY,
  secret     text        NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- One row per customer: pending until confirmed with a code (confirmed_at), then active.
-- last_used_step is the last accepted TOTP time-step: a code of that step or an earlier one is refused.
CREATE TABLE authenticator_apps (
  customer_id     uuid        PRIMARY KEY REFERENCES customers (id) ON DELETE CASCADE,
  secret_envelope text        NOT NULL,
  confirmed_at    timestamptz,
  last_used_step  bigint,
  created_at      timestamptz NOT NULL DEFAULT now()
);

-- A used code's row is deleted; a new set replaces the old one.
CREATE TABLE recovery_codes (
  customer_id uuid        NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
  code_digest text        NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (customer_id, code_digest)
);

COMMENT ON TABLE data_encryption_keys IS 'The data encryption key generated for development when DATA_ENCRYPTION_KEY is unset. Owner: src/crypto/data-keys.ts.';
COMMENT ON TABLE authenticator_apps IS 'Customers'' authenticator apps: TOTP secrets encrypted with the data key, pending until confirmed, and the last time-step used. Owner: src/customers/second-factors.ts.';
COMMENT ON TABLE recovery_codes IS 'Customers'' unused recovery codes, as keyed HMAC-SHA-256 digests. Owner: src/customers/second-factors.ts.';
