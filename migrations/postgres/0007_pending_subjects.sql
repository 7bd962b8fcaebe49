-- Issue 14: a delivery records the customer and order it is about when it is stored (not only
-- once applied), so the caller lookup can find the pending deliveries of a caller's customers
-- and their orders, and a redaction erases pending deliveries too. Customers have an index
-- since 0001; orders get theirs.
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (shop, order_id) WHERE order_id IS NOT NULL;
