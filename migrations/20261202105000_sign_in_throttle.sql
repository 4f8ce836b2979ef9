-- Failed attempts counted where every Passbook process sees them: per username (known or not),
-- per client address, per app authenticating at the token endpoint. One row per key.
CREATE TABLE sign_in_throttle (
  key               text        PRIMARY KEY,
  failures          integer     NOT NULL DEFAULT 0,
  window_started_at timestamptz NOT NULL DEFAULT now(),
  locked_until      timestamptz,
  -- How many times in a row this key has been locked: each lock waits twice as long, up to a cap.
  lockouts          integer     NOT NULL DEFAULT 0,
  updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sign_in_throttle_updated_at ON sign_in_throttle (updated_at);
COMMENT ON TABLE sign_in_throttle IS 'Failed sign-ins and client authentications, counted per username, address and app. Owner: src/sign-in/throttle.ts.';
