-- What the customer's account pages need: which app each grant and token belongs to, when an app
-- last got a token, and a log of what happened to the customer's sign-ins and apps.

-- Owned by src/oidc/adapter.ts, like the rest of oidc_models. client_id is copied from the
-- payload on every write; last_used_at is kept on Grant rows only.
ALTER TABLE oidc_models ADD COLUMN client_id text;
ALTER TABLE oidc_models ADD COLUMN last_used_at timestamptz;
UPDATE oidc_models SET client_id = payload->>'clientId' WHERE payload->>'clientId' IS NOT NULL;

-- Owned by src/audit/events.ts. Never updated; rows are the customer's own history.
CREATE TABLE audit_events (
  id          bigserial   PRIMARY KEY,
  account_id  text,
  type        text        NOT NULL,
  client_id   text,
  ip          text,
  user_agent  text,
  detail      jsonb       NOT NULL DEFAULT '{}',
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_events_account ON audit_events (account_id, created_at DESC) WHERE account_id IS NOT NULL;
