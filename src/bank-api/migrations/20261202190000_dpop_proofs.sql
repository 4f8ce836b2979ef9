-- The DPoP proofs (RFC 9449) the bank API has accepted, kept while they could still be presented,
-- so that each is accepted once (§11.1). Owned by src/bank-api/dpop.ts.
CREATE TABLE bank.dpop_proofs (
  jkt        text        NOT NULL,
  jti        text        NOT NULL,
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (jkt, jti)
);
CREATE INDEX dpop_proofs_expires_at ON bank.dpop_proofs (expires_at);

COMMENT ON TABLE bank.dpop_proofs IS 'DPoP proofs the bank API accepted, by key thumbprint and jti, until they expire. Owner: src/bank-api/dpop.ts.';
