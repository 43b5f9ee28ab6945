-- The workers' claim looks webhook by webhook (db::webhooks::claim): it skips from one webhook
-- with pending deliveries to the next along this index, then takes each one's due rows, oldest
-- first, from the same index. The index on next_attempt_at alone made a claim read every due
-- row when the webhooks they belong to were all busy (a hanging endpoint with a backlog): a
-- claim's cost grew with the backlog, and every finished request brings a claim.
drop index webhook_deliveries_due_idx;
create index webhook_deliveries_pending_idx on webhook_deliveries (webhook_id, next_attempt_at)
    where status = 'pending';
