-- Passkeys (WebAuthn credentials) a customer signs in with instead of a password, and the
-- challenges their ceremonies are answering. Owned by src/passkeys/passkeys.ts.

CREATE TABLE customer_passkeys (
  id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  customer_id   uuid        NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
  -- base64url, as the browser reports it; unique across customers, so a sign-in finds its owner.
  credential_id text        NOT NULL UNIQUE,
  public_key    bytea       NOT NULL,
  counter       bigint      NOT NULL DEFAULT 0 CHECK (counter >= 0),
  transports    text[]      NOT NULL DEFAULT '{}',
  -- 'singleDevice' (bound to one authenticator) or 'multiDevice' (synced, e.g. to a phone's cloud).
  device_type   text        NOT NULL CHECK (device_type IN ('singleDevice', 'multiDevice')),
  backed_up     boolean     NOT NULL DEFAULT false,
  name          text        NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  last_used_at  timestamptz
);
CREATE INDEX customer_passkeys_customer ON customer_passkeys (customer_id, created_at);
COMMENT ON TABLE customer_passkeys IS 'Customers'' passkeys: WebAuthn public keys, never a private key. Owner: src/passkeys/passkeys.ts.';

-- A challenge is consumed by deleting its row, so it can be answered once, and only within its
-- time, by the browser it was issued to (binding: the interaction, sign-in form or session).
CREATE TABLE passkey_challenges (
  challenge   text        PRIMARY KEY,
  purpose     text        NOT NULL CHECK (purpose IN ('registration', 'authentication')),
  binding     text        NOT NULL,
  customer_id uuid        REFERENCES customers (id) ON DELETE CASCADE,
  expires_at  timestamptz NOT NULL
);
CREATE INDEX passkey_challenges_expires_at ON passkey_challenges (expires_at);
COMMENT ON TABLE passkey_challenges IS 'Outstanding single-use WebAuthn challenges. Owner: src/passkeys/passkeys.ts.';
