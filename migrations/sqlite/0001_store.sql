-- orderline store, SQLite (the embedded default). Every row carries the shop domain; Shopify IDs
-- are INTEGER (64-bit). Timestamps are INTEGER microseconds since the Unix epoch, UTC, so they
-- compare as numbers. `updated_at` is Shopify's; `synced_at` is when we last confirmed the row
-- against Shopify (webhook, live fetch or reconciliation).

CREATE TABLE customers (
    shop                 TEXT        NOT NULL,
    id                   BIGINT      NOT NULL,
    first_name           TEXT,
    last_name            TEXT,
    email                TEXT,
    phone                TEXT,
    state                TEXT,
    default_zip          TEXT,
    default_country_code TEXT,
    shopify_created_at   INTEGER    ,
    updated_at           INTEGER     NOT NULL,
    synced_at            INTEGER     NOT NULL,
    PRIMARY KEY (shop, id)
);
CREATE INDEX customers_synced ON customers (shop, synced_at DESC);

CREATE TABLE orders (
    shop                  TEXT        NOT NULL,
    id                    BIGINT      NOT NULL,
    customer_id           BIGINT,
    name                  TEXT        NOT NULL,
    order_number          BIGINT,
    email                 TEXT,
    phone                 TEXT,
    financial_status      TEXT,
    fulfillment_status    TEXT,
    cancelled_at          INTEGER    ,
    cancel_reason         TEXT,
    closed_at             INTEGER    ,
    total_price           TEXT,
    currency              TEXT,
    shipping_zip          TEXT,
    shipping_country_code TEXT,
    shopify_created_at    INTEGER     NOT NULL,
    updated_at            INTEGER     NOT NULL,
    synced_at             INTEGER     NOT NULL,
    PRIMARY KEY (shop, id)
);
CREATE INDEX orders_by_customer ON orders (shop, customer_id, shopify_created_at DESC);
CREATE INDEX orders_by_name ON orders (shop, name);

CREATE TABLE order_line_items (
    shop               TEXT   NOT NULL,
    order_id           BIGINT NOT NULL,
    id                 BIGINT NOT NULL,
    position           INTEGER NOT NULL,
    title              TEXT   NOT NULL,
    variant_title      TEXT,
    sku                TEXT,
    quantity           BIGINT NOT NULL,
    price              TEXT,
    fulfillment_status TEXT,
    PRIMARY KEY (shop, order_id, id)
);

CREATE TABLE fulfillments (
    shop             TEXT        NOT NULL,
    id               BIGINT      NOT NULL,
    order_id         BIGINT      NOT NULL,
    status           TEXT,
    shipment_status  TEXT,
    tracking_company TEXT,
    tracking_number  TEXT,
    tracking_url     TEXT,
    shopify_created_at INTEGER    ,
    updated_at       INTEGER     NOT NULL,
    synced_at        INTEGER     NOT NULL,
    PRIMARY KEY (shop, id)
);
CREATE INDEX fulfillments_by_order ON fulfillments (shop, order_id);

CREATE TABLE refunds (
    shop               TEXT        NOT NULL,
    id                 BIGINT      NOT NULL,
    order_id           BIGINT      NOT NULL,
    note               TEXT,
    amount             TEXT,
    currency           TEXT,
    shopify_created_at INTEGER     NOT NULL,
    processed_at       INTEGER    ,
    synced_at          INTEGER     NOT NULL,
    PRIMARY KEY (shop, id)
);
CREATE INDEX refunds_by_order ON refunds (shop, order_id);

-- Every phone a customer (or a guest order) can be reached at. `e164` is NULL when the raw
-- text could not be parsed: kept for people to read, never matched.
CREATE TABLE phone_numbers (
    shop        TEXT   NOT NULL,
    owner_kind  TEXT   NOT NULL,  -- 'customer' | 'order'
    owner_id    BIGINT NOT NULL,
    source      TEXT   NOT NULL,  -- 'phone', 'default_address', 'address:<id>', 'billing_address', 'shipping_address'
    customer_id BIGINT,
    raw         TEXT   NOT NULL,
    e164        TEXT,
    PRIMARY KEY (shop, owner_kind, owner_id, source)
);
CREATE INDEX phone_numbers_e164 ON phone_numbers (shop, e164) WHERE e164 IS NOT NULL;
CREATE INDEX phone_numbers_customer ON phone_numbers (shop, customer_id);

-- IDs that were deleted or redacted: a late delivery must not bring them back.
CREATE TABLE tombstones (
    shop       TEXT        NOT NULL,
    kind       TEXT        NOT NULL,  -- 'customer' | 'order'
    id         BIGINT      NOT NULL,
    deleted_at INTEGER     NOT NULL,
    PRIMARY KEY (shop, kind, id)
);

-- Durable intake: a delivery is answered 200 only once its row is committed here.
CREATE TABLE webhook_deliveries (
    id            INTEGER     PRIMARY KEY AUTOINCREMENT,
    shop          TEXT        NOT NULL,
    webhook_id    TEXT        NOT NULL,
    event_id      TEXT,
    topic         TEXT        NOT NULL,
    api_version   TEXT,
    triggered_at  INTEGER    ,
    received_at   INTEGER     NOT NULL,
    status        TEXT        NOT NULL,  -- pending | applied | stale | unhandled | dead | redacted
    attempts      INTEGER     NOT NULL DEFAULT 0,
    error         TEXT,
    processed_at  INTEGER    ,
    customer_id   BIGINT,
    order_id      BIGINT,
    body          BLOB ,                 -- kept until applied; then cleared
    UNIQUE (shop, webhook_id)
);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (id) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_dead ON webhook_deliveries (id) WHERE status = 'dead';
CREATE INDEX webhook_deliveries_customer ON webhook_deliveries (shop, customer_id) WHERE customer_id IS NOT NULL;
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (shop, event_id);

-- customers/data_request: recorded for the merchant to act on.
CREATE TABLE data_requests (
    shop             TEXT        NOT NULL,
    delivery_id      BIGINT      NOT NULL,
    request_id       BIGINT,
    customer_id      BIGINT      NOT NULL,
    orders_requested TEXT        NOT NULL,  -- comma-separated order IDs
    received_at      INTEGER     NOT NULL,
    PRIMARY KEY (shop, delivery_id)
);

-- How far reconciliation has confirmed each resource (used by the reconciler).
CREATE TABLE sync_watermarks (
    shop       TEXT        NOT NULL,
    resource   TEXT        NOT NULL,  -- 'orders' | 'customers'
    watermark  INTEGER     NOT NULL,
    updated_at INTEGER     NOT NULL,
    PRIMARY KEY (shop, resource)
);

-- One row per phone call, and its steps in order.
CREATE TABLE calls (
    call_sid     TEXT        PRIMARY KEY,
    shop         TEXT        NOT NULL,
    from_raw     TEXT        NOT NULL,
    from_e164    TEXT,
    to_number    TEXT,
    customer_id  BIGINT,
    verification TEXT,
    transfer     TEXT,
    status       TEXT        NOT NULL,
    started_at   INTEGER     NOT NULL,
    ended_at     INTEGER    ,
    duration_s   INTEGER
);
CREATE INDEX calls_customer ON calls (shop, customer_id);

CREATE TABLE call_events (
    call_sid  TEXT        NOT NULL,
    seq       INTEGER     NOT NULL,
    kind      TEXT        NOT NULL,  -- 'step' | 'key' | 'verified' | 'transfer' | 'status'
    detail    TEXT        NOT NULL,
    at        INTEGER     NOT NULL,
    PRIMARY KEY (call_sid, seq)
);
