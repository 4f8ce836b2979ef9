-- Signing keys get a life cycle (next → active → retiring → retired) and their private JWK is
-- kept encrypted under DATA_ENCRYPTION_KEY. SQL cannot encrypt, so src/oidc/keys.ts seals the
-- existing plaintext rows at start-up, under the key-creation lock, and empties private_jwk; the
-- column stays (nullable) so that a node still running the old code keeps serving with the keys it
-- read at its start, and is dropped by a later migration.

ALTER TABLE signing_keys
  ALTER COLUMN private_jwk DROP NOT NULL,
  ADD COLUMN private_jwk_envelope text,
  ADD COLUMN state text NOT NULL DEFAULT 'active',
  ADD COLUMN activate_after timestamptz,
  ADD COLUMN activated_at timestamptz,
  ADD COLUMN deactivated_at timestamptz,
  ADD COLUMN retired_at timestamptz;

-- What signs today keeps signing: the oldest key of each algorithm. A newer one was published
-- but never signed, so it waits for keys:activate.
UPDATE signing_keys SET state = 'next'
  WHERE created_at > (SELECT min(created_at) FROM signing_keys AS oldest WHERE oldest.alg = signing_keys.alg);
UPDATE signing_keys SET activated_at = created_at WHERE state = 'active';

ALTER TABLE signing_keys
  ADD CONSTRAINT signing_keys_state CHECK (state IN ('next', 'active', 'retiring', 'retired')),
  -- A retired key's private part is destroyed; every other key keeps one.
  ADD CONSTRAINT signing_keys_private_part CHECK (
    state = 'retired' OR private_jwk IS NOT NULL OR private_jwk_envelope IS NOT NULL
  );

CREATE UNIQUE INDEX signing_keys_one_active_per_alg ON signing_keys (alg) WHERE state = 'active';

COMMENT ON TABLE signing_keys IS 'Token-signing keys shared by every Passbook process: next, active (one per algorithm), retiring or retired; private JWKs encrypted with the data key. Owner: src/oidc/keys.ts.';
