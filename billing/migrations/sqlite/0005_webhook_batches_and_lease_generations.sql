-- Webhook delivery: the size of the batch in flight and the lease's generation (SQLite). Keep in
-- step with ../postgres/0005_webhook_batches_and_lease_generations.sql.
--
-- `pending_count`: indicators in the batch in flight. A node that reads the batch again (after a
-- crash, or a change of holder) must find as many, or it gathers a new batch under a new
-- idempotency key: a key never names two different batches.
--
-- `lease_gen`: goes up on every change of holder (another node, or this one after its lease
-- lapsed). Every write of the delivery state names the generation it holds, so a task that lost
-- the lease cannot move the cursor even once its node holds the lease again.
ALTER TABLE webhooks ADD COLUMN pending_count INTEGER NOT NULL DEFAULT 0 CHECK (pending_count >= 0);
ALTER TABLE webhooks ADD COLUMN lease_gen INTEGER NOT NULL DEFAULT 0;
