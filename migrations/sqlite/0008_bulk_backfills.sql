-- Issue 14: a backfill through a Shopify bulk operation, under way: which operation, when
-- Shopify created it (the watermark it earns), and how many lines of its JSONL result are
-- applied, so a killed backfill resumes on the same result instead of starting over.
CREATE TABLE bulk_backfills (
    shop          TEXT        NOT NULL,
    resource      TEXT        NOT NULL,  -- 'orders' | 'customers'
    operation_id  TEXT        NOT NULL,  -- gid://shopify/BulkOperation/…
    created_at    INTEGER NOT NULL,  -- the operation's createdAt
    lines_applied INTEGER      NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (shop, resource)
);
