-- payments:write is no longer a scope: a payment is now one payment_initiation authorization
-- detail that the customer approves on its own (docs/bank-api.md). oidc-provider refuses to load an
-- app whose registered `scope` names a scope it does not offer, so every such app would stop
-- working; and remembered consents would carry a permission that no longer exists.

-- Apps registered with `--scope "… payments:write"` keep the rest of their list. One that could
-- ask for payments:write alone gets openid, the least there is: dropping the list would instead
-- let it ask for the whole catalogue.
UPDATE clients
SET metadata = jsonb_set(
  metadata,
  '{scope}',
  to_jsonb(COALESCE(NULLIF(array_to_string(array_remove(string_to_array(metadata->>'scope', ' '), 'payments:write'), ' '), ''), 'openid'))
)
WHERE 'payments:write' = ANY (string_to_array(metadata->>'scope', ' '));

-- Consents (grants) forget it; the tokens issued under them expire within their lifetimes, and
-- the bank API pays for no scope in the meantime.
UPDATE oidc_models
SET payload = jsonb_set(
  payload,
  '{openid,scope}',
  to_jsonb(array_to_string(array_remove(string_to_array(payload->'openid'->>'scope', ' '), 'payments:write'), ' '))
)
WHERE kind = 'Grant'
  AND 'payments:write' = ANY (string_to_array(payload->'openid'->>'scope', ' '));
