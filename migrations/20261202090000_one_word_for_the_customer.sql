-- One word for the bank's customer in tables as in code: `customers`, and `customer_id` wherever a
-- row belongs to one. (oidc-provider's payloads keep calling it `accountId`; the column mirrors it.)
ALTER TABLE users RENAME TO customers;
ALTER TABLE customers RENAME CONSTRAINT users_pkey TO customers_pkey;
ALTER INDEX users_username RENAME TO customers_username;

ALTER TABLE oidc_models RENAME COLUMN account_id TO customer_id;
ALTER INDEX oidc_models_account_id RENAME TO oidc_models_customer_id;

ALTER TABLE audit_events RENAME COLUMN account_id TO customer_id;
ALTER INDEX audit_events_account RENAME TO audit_events_customer;
