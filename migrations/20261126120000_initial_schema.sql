-- Passbook's first schema. Forward-only: a later change gets a new file.

-- Every oidc-provider artefact: sessions, interactions, codes, access and refresh tokens, grants,
-- pushed authorization requests, replay records. Owned by src/oidc/adapter.ts.
CREATE TABLE oidc_models (
  kind        text        NOT NULL,
  id          text        NOT NULL,
  payload     jsonb       NOT NULL,
  grant_id    text,
  uid         text,
  user_code   text,
  account_id  text,
  expires_at  timestamptz,
  consumed_at timestamptz,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (kind, id)
);
CREATE INDEX oidc_models_grant_id   ON oidc_models (grant_id)   WHERE grant_id IS NOT NULL;
CREATE INDEX oidc_models_uid        ON oidc_models (uid)        WHERE uid IS NOT NULL;
CREATE INDEX oidc_models_user_code  ON oidc_models (user_code)  WHERE user_code IS NOT NULL;
CREATE INDEX oidc_models_account_id ON oidc_models (account_id, kind) WHERE account_id IS NOT NULL;
CREATE INDEX oidc_models_expires_at ON oidc_models (expires_at) WHERE expires_at IS NOT NULL;

-- The bank's customers. Owned by src/accounts/accounts.ts.
CREATE TABLE users (
  id             uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  username       text        NOT NULL,
  password_hash  text        NOT NULL,
  name           text,
  email          text,
  email_verified boolean     NOT NULL DEFAULT false,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_username ON users (lower(username));

-- Registered third-party apps. Owned by src/clients/clients.ts. The secret is kept only as a
-- SHA-256 digest: it is random and long, so a slow hash adds nothing, and it is shown once.
CREATE TABLE clients (
  client_id          text        PRIMARY KEY,
  metadata           jsonb       NOT NULL,
  client_secret_hash text,
  created_at         timestamptz NOT NULL DEFAULT now()
);

-- Token-signing keys, shared by every process. Owned by src/oidc/keys.ts.
CREATE TABLE signing_keys (
  kid         text        PRIMARY KEY,
  alg         text        NOT NULL,
  private_jwk jsonb       NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);

-- Cookie-signing secrets generated for development when COOKIE_KEYS is unset.
-- Owned by src/oidc/keys.ts.
CREATE TABLE cookie_keys (
  id         serial      PRIMARY KEY,
  secret     text        NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
