-- What the caller hears must be what Shopify knows (issue 12).
-- `content`: a fingerprint of what a row says (not when): two versions of a record that share a
-- whole-second `updated_at` are told apart by it (the tie rule in store/records.rs).
ALTER TABLE customers ADD COLUMN content TEXT;
ALTER TABLE orders ADD COLUMN content TEXT;
ALTER TABLE fulfillments ADD COLUMN content TEXT;
-- The dates callers ask about: shipped is `shopify_created_at`; these three come from Shopify's
-- Fulfillment.inTransitAt / deliveredAt / estimatedDeliveryAt (GraphQL) or the fulfilment events
-- and REST fields named in shopify/payload.rs (webhooks).
ALTER TABLE fulfillments ADD COLUMN in_transit_at INTEGER;
ALTER TABLE fulfillments ADD COLUMN delivered_at INTEGER;
ALTER TABLE fulfillments ADD COLUMN estimated_delivery_at INTEGER;
-- Refund.createdAt is nullable in Shopify's Admin schema. SQLite cannot drop NOT NULL in place.
CREATE TABLE refunds_new (
    shop               TEXT        NOT NULL,
    id                 BIGINT      NOT NULL,
    order_id           BIGINT      NOT NULL,
    note               TEXT,
    amount             TEXT,
    currency           TEXT,
    shopify_created_at INTEGER,
    processed_at       INTEGER,
    synced_at          INTEGER     NOT NULL,
    PRIMARY KEY (shop, id)
);
INSERT INTO refunds_new SELECT shop, id, order_id, note, amount, currency, shopify_created_at, processed_at, synced_at FROM refunds;
DROP TABLE refunds;
ALTER TABLE refunds_new RENAME TO refunds;
CREATE INDEX refunds_by_order ON refunds (shop, order_id);
-- Orders by the number a caller keys, whatever the shop's name prefix and suffix.
CREATE INDEX orders_by_number ON orders (shop, order_number);
