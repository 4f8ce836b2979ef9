-- Each Passbook process keeps the access tokens it has recently looked up, with their grants, in
-- memory (src/oidc/storage/live-tokens.ts), so that introspection and UserInfo need no database
-- round trip. Such a copy must die the moment its row changes on any node: every change to a live
-- access token or grant is announced on the channel `oidc_model_changes` as `<kind>:<id>`, and
-- every process listens (src/oidc/storage/change-feed.ts). PostgreSQL delivers a notification
-- when its transaction commits, and never for one rolled back.
--
-- Rows already expired are not announced (the purge deletes them by the thousand, and no copy
-- outlives its row's expiry), nor is a grant's last_used_at, which no copy holds.

CREATE FUNCTION oidc_models_announce_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('oidc_model_changes', OLD.kind || ':' || OLD.id);
  RETURN NULL;
END
$$;

CREATE FUNCTION oidc_models_announce_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('oidc_model_changes', '*');
  RETURN NULL;
END
$$;

CREATE TRIGGER oidc_models_deleted
AFTER DELETE ON oidc_models
FOR EACH ROW
WHEN (OLD.kind IN ('AccessToken', 'Grant') AND (OLD.expires_at IS NULL OR OLD.expires_at > now()))
EXECUTE FUNCTION oidc_models_announce_change();

CREATE TRIGGER oidc_models_updated
AFTER UPDATE ON oidc_models
FOR EACH ROW
WHEN (
  OLD.kind IN ('AccessToken', 'Grant')
  AND (OLD.expires_at IS NULL OR OLD.expires_at > now())
  AND (OLD.id, OLD.payload, OLD.expires_at, OLD.consumed_at, OLD.grant_id, OLD.customer_id, OLD.client_id)
    IS DISTINCT FROM
    (NEW.id, NEW.payload, NEW.expires_at, NEW.consumed_at, NEW.grant_id, NEW.customer_id, NEW.client_id)
)
EXECUTE FUNCTION oidc_models_announce_change();

CREATE TRIGGER oidc_models_truncated
AFTER TRUNCATE ON oidc_models
FOR EACH STATEMENT
EXECUTE FUNCTION oidc_models_announce_truncate();
