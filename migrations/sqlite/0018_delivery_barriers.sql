-- Issue 14: the webhook processor applies in lanes, each taking the deliveries of its own
-- orders and customers. A pending delivery about neither (a redaction, a data request) is a
-- barrier: no lane takes a delivery that arrived after it until it is applied, alone. This
-- finds the first one without reading the pending queue.
CREATE INDEX webhook_deliveries_pending_unkeyed ON webhook_deliveries (id)
    WHERE status = 'pending' AND customer_id IS NULL AND order_id IS NULL;
