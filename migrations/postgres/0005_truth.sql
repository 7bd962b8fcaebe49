-- What the caller hears must be what Shopify knows (issue 12).
-- `content`: a fingerprint of what a row says (not when): two versions of a record that share a
-- whole-second `updated_at` are told apart by it (the tie rule in store/records.rs).
ALTER TABLE customers ADD COLUMN content TEXT;
ALTER TABLE orders ADD COLUMN content TEXT;
ALTER TABLE fulfillments ADD COLUMN content TEXT;
-- The dates callers ask about: shipped is `shopify_created_at`; these three come from Shopify's
-- Fulfillment.inTransitAt / deliveredAt / estimatedDeliveryAt (GraphQL) or the fulfilment events
-- and REST fields named in shopify/payload.rs (webhooks).
ALTER TABLE fulfillments ADD COLUMN in_transit_at TIMESTAMPTZ;
ALTER TABLE fulfillments ADD COLUMN delivered_at TIMESTAMPTZ;
ALTER TABLE fulfillments ADD COLUMN estimated_delivery_at TIMESTAMPTZ;
-- Refund.createdAt is nullable in Shopify's Admin schema.
ALTER TABLE refunds ALTER COLUMN shopify_created_at DROP NOT NULL;
-- Orders by the number a caller keys, whatever the shop's name prefix and suffix.
CREATE INDEX orders_by_number ON orders (shop, order_number);
