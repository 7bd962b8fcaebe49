-- Issue 19: returns as Shopify tracks them, one row per return, written only by the apply path
-- (returns/* webhooks, reverse_deliveries/attach_deliverable, and the Order.returns of a live
-- fetch or a reconciliation sweep). A return has no updated_at in Shopify: `as_of` is when
-- Shopify's state was what `status` says (the delivery's X-Shopify-Triggered-At, or the time a
-- snapshot was read); a change is written when it is newer, and on a tie when it is further
-- along (status_rank: requested 1, open 2, declined/canceled/closed 3) or a snapshot.
-- `order_id` is NULL until a body naming the order arrives (a label can come first).
CREATE TABLE returns (
    shop                  TEXT        NOT NULL,
    id                    BIGINT      NOT NULL,
    order_id              BIGINT,
    name                  TEXT,
    status                TEXT,
    status_rank           BIGINT      NOT NULL DEFAULT 0,
    requested_at          TIMESTAMPTZ,
    approved_at           TIMESTAMPTZ,
    closed_at             TIMESTAMPTZ,
    decline_reason        TEXT,
    decline_note          TEXT,
    return_items          BIGINT,
    exchange_items        BIGINT,
    label_carrier         TEXT,
    label_tracking_number TEXT,
    label_tracking_url    TEXT,
    label_url             TEXT,
    received              BOOLEAN     NOT NULL DEFAULT false,
    as_of                 TIMESTAMPTZ,
    synced_at             TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (shop, id)
);
CREATE INDEX returns_by_order ON returns (shop, order_id);
