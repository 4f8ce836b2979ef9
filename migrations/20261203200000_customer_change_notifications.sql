-- Each Passbook process keeps the customers it has recently looked up for a token request in
-- memory (src/customers/customer-copies.ts), so that a refresh or a code exchange needs no round
-- trip for the customer's claims. Such a copy must die the moment its row changes on any node:
-- every committed change to what a copy holds, and every deletion, is announced as
-- `Customer:<id>` on the change feed's channel `oidc_model_changes`
-- (src/oidc/storage/change-feed.ts), and every process listens. A change to what no copy holds
-- (the password hash) is not announced.

CREATE FUNCTION customers_announce_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('oidc_model_changes', 'Customer:' || OLD.id::text);
  RETURN NULL;
END
$$;

CREATE FUNCTION customers_announce_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('oidc_model_changes', '*');
  RETURN NULL;
END
$$;

CREATE TRIGGER customers_deleted
AFTER DELETE ON customers
FOR EACH ROW
EXECUTE FUNCTION customers_announce_change();

CREATE TRIGGER customers_updated
AFTER UPDATE ON customers
FOR EACH ROW
WHEN (
  (OLD.id, OLD.username, OLD.name, OLD.email, OLD.email_verified, OLD.updated_at)
    IS DISTINCT FROM
  (NEW.id, NEW.username, NEW.name, NEW.email, NEW.email_verified, NEW.updated_at)
)
EXECUTE FUNCTION customers_announce_change();

CREATE TRIGGER customers_truncated
AFTER TRUNCATE ON customers
FOR EACH STATEMENT
EXECUTE FUNCTION customers_announce_truncate();
