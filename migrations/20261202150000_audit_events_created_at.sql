-- The retention purge deletes by age alone (created_at < cut-off, in batches). The customer index
-- (customer_id, created_at) cannot serve that: its leading column is the customer, and it leaves
-- out events without one. Without this index every purge round would scan the whole table.
CREATE INDEX audit_events_created_at ON audit_events (created_at);
COMMENT ON INDEX audit_events_created_at IS 'Serves the retention purge (AUDIT_RETENTION_DAYS). Owner: src/audit/events.ts.';
