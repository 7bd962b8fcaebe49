//! The SQL of `store::records`, written once and compiled twice: as `records::pg` and
//! `records::lite` (see `backend!` in src/store/mod.rs). Never calls Shopify or speaks HTTP.

#[allow(unused_imports)]
use super::super::*;
use super::*;

use sqlx::Connection;
use sqlx::QueryBuilder;

pub(crate) async fn apply_in_transaction(
    conn: &mut Conn,
    shop: &str,
    changes: &[Change],
    default_region: &str,
    now: Ts,
) -> Result<(Vec<ApplyOutcome>, PhoneChanges), sqlx::Error> {
    let mut tx = conn.begin().await?;
    let mut notice = PhoneChanges { shop: shop.to_string(), ..PhoneChanges::default() };
    let mut outcomes = Vec::with_capacity(changes.len());
    // Runs of customers and whole orders go through `apply_batch` (multi-row, the same
    // outcomes); the rest, and a run whose rows changed under it, one at a time.
    let mut i = 0;
    while i < changes.len() {
        let mut j = i;
        while j < changes.len() && batchable(&changes[j]) {
            j += 1;
        }
        if j - i >= 2 {
            let run: Vec<&Change> = changes[i..j].iter().collect();
            let mut savepoint = tx.begin().await?;
            let applied =
                apply_batch(&mut savepoint, shop, &run, default_region, now, Provenance::Snapshot, &mut notice).await?;
            match applied {
                Some(batch) => {
                    savepoint.commit().await?;
                    outcomes.extend(batch);
                    i = j;
                    continue;
                }
                None => savepoint.rollback().await?,
            }
        } else {
            j = j.max(i + 1);
        }
        for change in &changes[i..j] {
            outcomes.push(
                apply_change(&mut tx, shop, change, default_region, now, Provenance::Snapshot, None, &mut notice)
                    .await?,
            );
        }
        i = j;
    }
    tx.commit().await?;
    Ok((outcomes, notice))
}

/// Applies `change` on an open transaction and adds the caller phones it touched to
/// `changes`. `delivery_id` is the webhook delivery being applied, if any (a shop
/// redaction keeps that one row as the record of itself).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn apply_change(
    conn: &mut Conn,
    shop: &str,
    change: &Change,
    default_region: &str,
    now: Ts,
    from: Provenance,
    delivery_id: Option<i64>,
    changes: &mut PhoneChanges,
) -> Result<ApplyOutcome, sqlx::Error> {
    let before = affected_customers(conn, shop, change).await?;
    let mut phones = phones_of_customers(conn, shop, &before).await?;
    let write = Write { shop, default_region, now, from };
    let outcome = apply_inner(conn, &write, change, delivery_id).await?;
    // An unconfirmed record leaves the caches too: the next lookup finds it stale.
    if matches!(outcome, ApplyOutcome::Applied | ApplyOutcome::Removed | ApplyOutcome::Unconfirmed) {
        let after = affected_customers(conn, shop, change).await?;
        phones.extend(phones_of_customers(conn, shop, &after).await?);
        changes.phones.extend(phones);
        changes.all |= matches!(change, Change::ShopRedact);
    }
    Ok(outcome)
}

/// The customers whose cached caller record a change can alter.
async fn affected_customers(conn: &mut Conn, shop: &str, change: &Change) -> Result<Vec<i64>, sqlx::Error> {
    let mut ids: Vec<i64> = change.customer_id().map(|c| c.0).into_iter().collect();
    if let Some(order) = change.order_id() {
        let stored: Option<(Option<i64>,)> =
            sqlx::query_as("SELECT customer_id FROM orders WHERE shop = $1 AND id = $2")
                .bind(shop)
                .bind(order.0)
                .fetch_optional(&mut *conn)
                .await?;
        ids.extend(stored.and_then(|(c,)| c));
    }
    if let Change::CustomerRedact { customer_id, .. } = change {
        ids.push(customer_id.0);
    }
    // A label or an update names only its return: its order is the stored one.
    let unnamed = match change {
        Change::Return(r) if r.order_id.is_none() => Some(r.id),
        Change::ReturnTouched { id: Some(id) } => Some(*id),
        _ => None,
    };
    if let Some(id) = unnamed
        && let Some(order) = order_of_return(conn, shop, id).await?
    {
        let stored: Option<(Option<i64>,)> =
            sqlx::query_as("SELECT customer_id FROM orders WHERE shop = $1 AND id = $2")
                .bind(shop)
                .bind(order)
                .fetch_optional(&mut *conn)
                .await?;
        ids.extend(stored.and_then(|(c,)| c));
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

async fn phones_of_customers(conn: &mut Conn, shop: &str, customers: &[i64]) -> Result<Vec<String>, sqlx::Error> {
    let mut phones = Vec::new();
    for customer in customers {
        // No `e164 IS NOT NULL` here: it would lead SQLite to the partial e164 index and a
        // scan of the shop's phones, instead of the customer index.
        let rows: Vec<(Option<String>,)> =
            sqlx::query_as("SELECT e164 FROM phone_numbers WHERE shop = $1 AND customer_id = $2")
                .bind(shop)
                .bind(customer)
                .fetch_all(&mut *conn)
                .await?;
        phones.extend(rows.into_iter().filter_map(|(p,)| p));
    }
    Ok(phones)
}

async fn apply_inner(
    conn: &mut Conn,
    w: &Write<'_>,
    change: &Change,
    delivery_id: Option<i64>,
) -> Result<ApplyOutcome, sqlx::Error> {
    let (shop, now) = (w.shop, w.now);
    match change {
        Change::Customer(c) => upsert_customer(conn, w, c).await,
        Change::Order(o) => upsert_order(conn, w, o).await,
        Change::Fulfillment(f) => {
            if is_tombstoned(conn, shop, "order", f.order_id).await? {
                return Ok(ApplyOutcome::Gone);
            }
            upsert_fulfillment(conn, w, f).await
        }
        Change::FulfillmentEvent(e) => {
            if is_tombstoned(conn, shop, "order", e.order_id).await? {
                return Ok(ApplyOutcome::Gone);
            }
            record_fulfillment_event(conn, w, e).await
        }
        Change::Refund(r) => {
            if is_tombstoned(conn, shop, "order", r.order_id).await? {
                return Ok(ApplyOutcome::Gone);
            }
            insert_refund(conn, shop, r, now).await
        }
        Change::Return(r) => {
            if let Some(order) = r.order_id
                && is_tombstoned(conn, shop, "order", order).await?
            {
                return Ok(ApplyOutcome::Gone);
            }
            let as_of = r.as_of.unwrap_or(now);
            upsert_return(conn, shop, r, as_of, w.from == Provenance::Snapshot, now).await
        }
        Change::ReturnTouched { id } => {
            // The body does not say what changed: the order is refetched on its next lookup.
            let Some(id) = id else { return Ok(ApplyOutcome::Unchanged) };
            let Some(order) = order_of_return(conn, shop, *id).await? else { return Ok(ApplyOutcome::Unchanged) };
            let marked = sqlx::query("UPDATE orders SET synced_at = $3 WHERE shop = $1 AND id = $2")
                .bind(shop)
                .bind(order)
                .bind(UNCONFIRMED)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            Ok(if marked > 0 { ApplyOutcome::Unconfirmed } else { ApplyOutcome::Unchanged })
        }
        Change::OrderDeleted { id } => {
            remove_orders(conn, shop, &[*id], now).await?;
            Ok(ApplyOutcome::Removed)
        }
        Change::CustomerDeleted { id } => {
            remove_customer(conn, shop, *id, now).await?;
            Ok(ApplyOutcome::Removed)
        }
        Change::CustomerRedact { customer_id, orders_to_redact } => {
            redact_customer(conn, shop, *customer_id, orders_to_redact, now).await?;
            Ok(ApplyOutcome::Removed)
        }
        Change::ShopRedact => {
            redact_shop(conn, shop, delivery_id).await?;
            Ok(ApplyOutcome::Removed)
        }
        Change::DataRequest { request_id, customer_id, orders_requested } => {
            let Some(delivery_id) = delivery_id else { return Ok(ApplyOutcome::Unchanged) };
            sqlx::query(
                "INSERT INTO data_requests (shop, delivery_id, request_id, customer_id, orders_requested, received_at)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (shop, delivery_id) DO NOTHING",
            )
            .bind(shop)
            .bind(delivery_id)
            .bind(request_id.map(|r| r.0))
            .bind(customer_id.0)
            .bind(ids_csv(orders_requested))
            .bind(now)
            .execute(&mut *conn)
            .await?;
            Ok(ApplyOutcome::Recorded)
        }
    }
}

async fn is_tombstoned(conn: &mut Conn, shop: &str, kind: &str, id: ShopifyId) -> Result<bool, sqlx::Error> {
    let row: Option<(i64,)> = sqlx::query_as("SELECT id FROM tombstones WHERE shop = $1 AND kind = $2 AND id = $3")
        .bind(shop)
        .bind(kind)
        .bind(id.0)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.is_some())
}

async fn tombstone(conn: &mut Conn, shop: &str, kind: &str, id: ShopifyId, now: Ts) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO tombstones (shop, kind, id, deleted_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING")
        .bind(shop)
        .bind(kind)
        .bind(id.0)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A copy with the stored `updated_at` that was not written (a snapshot with the same
/// content, or any webhook). A webhook whose content differs marks the row unconfirmed;
/// otherwise the copy re-confirms the row: `synced_at` moves forward, nothing else. A webhook
/// never re-confirms a row another webhook contradicted: only a snapshot settles that.
async fn settle_tie(
    conn: &mut Conn,
    w: &Write<'_>,
    table: &str,
    id: ShopifyId,
    updated_at: Ts,
    content: &str,
) -> Result<ApplyOutcome, sqlx::Error> {
    if w.from == Provenance::Webhook {
        let sql = format!(
            "UPDATE {table} SET synced_at = $5 WHERE shop = $1 AND id = $2 AND updated_at = $3
             AND content IS DISTINCT FROM $4"
        );
        let contradicted = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(w.shop)
            .bind(id.0)
            .bind(updated_at)
            .bind(content)
            .bind(UNCONFIRMED)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        if contradicted > 0 {
            return Ok(ApplyOutcome::Unconfirmed);
        }
    }
    let sql = format!(
        "UPDATE {table} SET synced_at = $4 WHERE shop = $1 AND id = $2 AND updated_at = $3 AND synced_at < $4
         AND ($5 OR synced_at > $6)"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(w.shop)
        .bind(id.0)
        .bind(updated_at)
        .bind(w.now)
        .bind(w.from == Provenance::Snapshot)
        .bind(UNCONFIRMED)
        .execute(&mut *conn)
        .await?;
    Ok(ApplyOutcome::Unchanged)
}

async fn replace_phones(
    conn: &mut Conn,
    shop: &str,
    owner_kind: &str,
    owner_id: ShopifyId,
    customer_id: Option<ShopifyId>,
    entries: &[PhoneEntry],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM phone_numbers WHERE shop = $1 AND owner_kind = $2 AND owner_id = $3")
        .bind(shop)
        .bind(owner_kind)
        .bind(owner_id.0)
        .execute(&mut *conn)
        .await?;
    for entry in entries {
        sqlx::query(
            "INSERT INTO phone_numbers (shop, owner_kind, owner_id, source, customer_id, raw, e164)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (shop, owner_kind, owner_id, source) DO UPDATE SET raw = excluded.raw, e164 = excluded.e164",
        )
        .bind(shop)
        .bind(owner_kind)
        .bind(owner_id.0)
        .bind(&entry.source)
        .bind(customer_id.map(|c| c.0))
        .bind(&entry.raw)
        .bind(&entry.e164)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Writes customer rows under the write rule, a multi-row statement per chunk: a newer copy
/// wins; a snapshot wins a same-second tie when its content differs; a partial copy only
/// creates a row, and a stored partial row yields to a whole copy of the same second. Returns
/// how many rows were written (the rest are left for `settle_tie`). The one-row apply and
/// `apply_batch` both write through here.
async fn write_customer_rows(
    conn: &mut Conn,
    shop: &str,
    rows: &[(&CustomerWrite, &RowState)],
    snapshot: bool,
) -> Result<usize, sqlx::Error> {
    let mut written = 0;
    for chunk in rows.chunks(rows_per_statement(14)) {
        let mut q = QueryBuilder::new(
            "INSERT INTO customers (shop, id, first_name, last_name, email, phone, state, default_zip,
                                    default_country_code, shopify_created_at, updated_at, synced_at, content,
                                    locale) ",
        );
        q.push_values(chunk, |mut row, (c, state)| {
            let address = c.default_address.as_ref();
            row.push_bind(shop)
                .push_bind(c.id.0)
                .push_bind(&c.first_name)
                .push_bind(&c.last_name)
                .push_bind(&c.email)
                .push_bind(&c.phone)
                .push_bind(&c.state)
                .push_bind(address.and_then(|a| a.zip.as_deref()))
                .push_bind(address.and_then(|a| a.country_code.as_deref()))
                .push_bind(c.created_at)
                .push_bind(state.updated_at)
                .push_bind(state.synced_at)
                .push_bind(&state.content)
                .push_bind(&c.locale);
        });
        q.push(
            " ON CONFLICT (shop, id) DO UPDATE SET
                locale = COALESCE(excluded.locale, customers.locale),
                first_name = excluded.first_name, last_name = excluded.last_name, email = excluded.email,
                phone = excluded.phone, state = excluded.state, default_zip = excluded.default_zip,
                default_country_code = excluded.default_country_code,
                shopify_created_at = excluded.shopify_created_at,
                updated_at = excluded.updated_at, synced_at = excluded.synced_at, content = excluded.content
             WHERE excluded.content <> ",
        )
        .push_bind(PARTIAL)
        .push(" AND (excluded.updated_at > customers.updated_at OR (")
        .push_bind(snapshot)
        .push(
            " AND excluded.updated_at = customers.updated_at AND excluded.content IS DISTINCT FROM customers.content)
                  OR (customers.content = ",
        )
        .push_bind(PARTIAL)
        .push(" AND excluded.updated_at = customers.updated_at)) RETURNING id");
        let ids: Vec<(i64,)> = q.build_query_as().persistent(chunk.len() == 1).fetch_all(&mut *conn).await?;
        written += ids.len();
    }
    Ok(written)
}

/// Writes order rows under the write rule (a newer copy wins; a snapshot wins a same-second
/// tie when its content differs), a multi-row statement per chunk. Returns how many rows were
/// written. The one-row apply and `apply_batch` both write through here.
async fn write_order_rows(
    conn: &mut Conn,
    shop: &str,
    rows: &[(&OrderWrite, &RowState)],
    snapshot: bool,
) -> Result<usize, sqlx::Error> {
    let mut written = 0;
    for chunk in rows.chunks(rows_per_statement(21)) {
        let mut q = QueryBuilder::new(
            "INSERT INTO orders (shop, id, customer_id, name, order_number, email, phone, financial_status,
                                 fulfillment_status, cancelled_at, cancel_reason, closed_at, total_price, currency,
                                 shipping_zip, shipping_country_code, shopify_created_at, updated_at, \
                                 synced_at, content,
                                 customer_locale) ",
        );
        q.push_values(chunk, |mut row, (o, state)| {
            let shipping = o.shipping_address.as_ref();
            row.push_bind(shop)
                .push_bind(o.id.0)
                .push_bind(o.customer_id().map(|c| c.0))
                .push_bind(&o.name)
                .push_bind(o.order_number)
                .push_bind(&o.email)
                .push_bind(&o.phone)
                .push_bind(&o.financial_status)
                .push_bind(&o.fulfillment_status)
                .push_bind(o.cancelled_at)
                .push_bind(&o.cancel_reason)
                .push_bind(o.closed_at)
                .push_bind(&o.total_price)
                .push_bind(&o.currency)
                .push_bind(shipping.and_then(|a| a.zip.as_deref()))
                .push_bind(shipping.and_then(|a| a.country_code.as_deref()))
                .push_bind(o.created_at)
                .push_bind(state.updated_at)
                .push_bind(state.synced_at)
                .push_bind(&state.content)
                .push_bind(&o.customer_locale);
        });
        q.push(
            " ON CONFLICT (shop, id) DO UPDATE SET
                customer_locale = COALESCE(excluded.customer_locale, orders.customer_locale),
                customer_id = excluded.customer_id, name = excluded.name, order_number = excluded.order_number,
                email = excluded.email, phone = excluded.phone, financial_status = excluded.financial_status,
                fulfillment_status = excluded.fulfillment_status, cancelled_at = excluded.cancelled_at,
                cancel_reason = excluded.cancel_reason, closed_at = excluded.closed_at,
                total_price = excluded.total_price, currency = excluded.currency,
                shipping_zip = excluded.shipping_zip, shipping_country_code = excluded.shipping_country_code,
                shopify_created_at = excluded.shopify_created_at,
                updated_at = excluded.updated_at, synced_at = excluded.synced_at, content = excluded.content
             WHERE excluded.updated_at > orders.updated_at
                OR (",
        )
        .push_bind(snapshot)
        .push(
            " AND excluded.updated_at = orders.updated_at AND excluded.content IS DISTINCT FROM orders.content)
             RETURNING id",
        );
        let ids: Vec<(i64,)> = q.build_query_as().persistent(chunk.len() == 1).fetch_all(&mut *conn).await?;
        written += ids.len();
    }
    Ok(written)
}

/// Upserts line items (order ID, position, item, fulfilment status), a multi-row statement
/// per chunk; a null fulfilment status keeps the stored one. At most one row per (order, item).
async fn write_line_items(conn: &mut Conn, shop: &str, items: &[LineItemRow<'_>]) -> Result<(), sqlx::Error> {
    for chunk in items.chunks(rows_per_statement(10)) {
        let mut q = QueryBuilder::new(
            "INSERT INTO order_line_items (shop, order_id, id, position, title, variant_title, sku, quantity,
                                           price, fulfillment_status) ",
        );
        q.push_values(chunk, |mut row, (order, position, item, status)| {
            row.push_bind(shop)
                .push_bind(*order)
                .push_bind(item.id.0)
                .push_bind(*position as i32)
                .push_bind(&item.title)
                .push_bind(&item.variant_title)
                .push_bind(&item.sku)
                .push_bind(item.quantity)
                .push_bind(&item.price)
                .push_bind(*status);
        });
        q.push(
            " ON CONFLICT (shop, order_id, id) DO UPDATE SET
                title = excluded.title, variant_title = excluded.variant_title, sku = excluded.sku,
                quantity = excluded.quantity, price = excluded.price,
                fulfillment_status = COALESCE(excluded.fulfillment_status, order_line_items.fulfillment_status)",
        );
        q.build().persistent(chunk.len() == 1).execute(&mut *conn).await?;
    }
    Ok(())
}

async fn upsert_customer(conn: &mut Conn, w: &Write<'_>, c: &CustomerWrite) -> Result<ApplyOutcome, sqlx::Error> {
    let shop = w.shop;
    // An embedded copy without `updated_at` cannot be ordered against what is stored.
    let Some(updated_at) = c.updated_at else { return Ok(ApplyOutcome::Unchanged) };
    if is_tombstoned(conn, shop, "customer", c.id).await? {
        return Ok(ApplyOutcome::Gone);
    }
    let phones = customer_phones(c, w.default_region);
    let content = customer_content(c, &phones);
    let state = RowState { updated_at, content: Some(content.clone()), synced_at: w.now };
    let written = write_customer_rows(conn, shop, &[(c, &state)], w.from == Provenance::Snapshot).await?;
    if written == 0 && content == PARTIAL {
        return Ok(ApplyOutcome::Unchanged);
    }
    if written == 0 {
        return settle_tie(conn, w, "customers", c.id, updated_at, &content).await;
    }
    replace_phones(conn, shop, "customer", c.id, Some(c.id), &phones).await?;
    Ok(ApplyOutcome::Applied)
}

/// Folds what one part of an order did into the order's outcome.
fn fold(outcome: ApplyOutcome, part: ApplyOutcome) -> ApplyOutcome {
    match (outcome, part) {
        (ApplyOutcome::Applied, _) | (_, ApplyOutcome::Applied) => ApplyOutcome::Applied,
        (ApplyOutcome::Unconfirmed, _) | (_, ApplyOutcome::Unconfirmed) => ApplyOutcome::Unconfirmed,
        (outcome, _) => outcome,
    }
}

async fn upsert_order(conn: &mut Conn, w: &Write<'_>, o: &OrderWrite) -> Result<ApplyOutcome, sqlx::Error> {
    let shop = w.shop;
    if is_tombstoned(conn, shop, "order", o.id).await? {
        return Ok(ApplyOutcome::Gone);
    }
    let mut outcome = ApplyOutcome::Unchanged;
    if let Some(customer) = &o.customer {
        outcome = fold(outcome, upsert_customer(conn, w, customer).await?);
    }
    let updated_at = o.updated_at;
    let phones = order_phones(o, w.default_region);
    let content = order_content(o, &phones);
    let state = RowState { updated_at, content: Some(content.clone()), synced_at: w.now };
    let written = write_order_rows(conn, shop, &[(o, &state)], w.from == Provenance::Snapshot).await?;
    if written == 0 {
        outcome = fold(outcome, settle_tie(conn, w, "orders", o.id, updated_at, &content).await?);
    } else {
        outcome = ApplyOutcome::Applied;
        // A copy that carried every line item replaces them; a truncated one (a GraphQL
        // page) updates those it carried and leaves the rest.
        if o.all_line_items {
            sqlx::query("DELETE FROM order_line_items WHERE shop = $1 AND order_id = $2")
                .bind(shop)
                .bind(o.id.0)
                .execute(&mut *conn)
                .await?;
        }
        let mut items = Vec::new();
        line_item_rows(o, &mut items);
        write_line_items(conn, shop, &items).await?;
        replace_phones(conn, shop, "order", o.id, o.customer_id(), &phones).await?;
    }
    for fulfillment in &o.fulfillments {
        outcome = fold(outcome, upsert_fulfillment(conn, w, fulfillment).await?);
    }
    for refund in &o.refunds {
        outcome = fold(outcome, insert_refund(conn, shop, refund, w.now).await?);
    }
    // A GraphQL copy's returns: Shopify's state when it was read.
    for r in &o.returns {
        let snapshot = w.from == Provenance::Snapshot;
        outcome = fold(outcome, upsert_return(conn, shop, r, r.as_of.unwrap_or(w.now), snapshot, w.now).await?);
    }
    Ok(outcome)
}

async fn upsert_fulfillment(conn: &mut Conn, w: &Write<'_>, f: &FulfillmentWrite) -> Result<ApplyOutcome, sqlx::Error> {
    let updated_at = f.updated_at;
    // What both sources carry; the dates are merged (a REST copy has fewer of them).
    let content = fulfillment_content(f);
    // Dates: a snapshot says what Shopify knows now; a webhook only adds what it knows. The
    // first delivery and transit times learned are kept.
    let written = sqlx::query(
        "INSERT INTO fulfillments (shop, id, order_id, status, shipment_status, tracking_company, tracking_number,
                                   tracking_url, shopify_created_at, updated_at, synced_at, content,
                                   in_transit_at, delivered_at, estimated_delivery_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
         ON CONFLICT (shop, id) DO UPDATE SET
            order_id = excluded.order_id, status = excluded.status, shipment_status = excluded.shipment_status,
            tracking_company = excluded.tracking_company, tracking_number = excluded.tracking_number,
            tracking_url = excluded.tracking_url,
            shopify_created_at = COALESCE(excluded.shopify_created_at, fulfillments.shopify_created_at),
            updated_at = excluded.updated_at, synced_at = excluded.synced_at, content = excluded.content,
            in_transit_at = CASE WHEN $16 THEN excluded.in_transit_at
                                 ELSE COALESCE(fulfillments.in_transit_at, excluded.in_transit_at) END,
            delivered_at = CASE WHEN $16 THEN excluded.delivered_at
                                ELSE COALESCE(fulfillments.delivered_at, excluded.delivered_at) END,
            estimated_delivery_at = CASE WHEN $16 THEN excluded.estimated_delivery_at
                                         ELSE COALESCE(excluded.estimated_delivery_at, \
                                         fulfillments.estimated_delivery_at) END
         WHERE excluded.updated_at > fulfillments.updated_at
            OR ($16 AND excluded.updated_at = fulfillments.updated_at
                AND (excluded.content IS DISTINCT FROM fulfillments.content
                     OR excluded.in_transit_at IS DISTINCT FROM fulfillments.in_transit_at
                     OR excluded.delivered_at IS DISTINCT FROM fulfillments.delivered_at
                     OR excluded.estimated_delivery_at IS DISTINCT FROM fulfillments.estimated_delivery_at))",
    )
    .bind(w.shop)
    .bind(f.id.0)
    .bind(f.order_id.0)
    .bind(&f.status)
    .bind(&f.shipment_status)
    .bind(&f.tracking_company)
    .bind(&f.tracking_number)
    .bind(&f.tracking_url)
    .bind(f.created_at)
    .bind(updated_at)
    .bind(w.now)
    .bind(&content)
    .bind(f.in_transit_at)
    .bind(f.delivered_at)
    .bind(f.estimated_delivery_at)
    .bind(w.from == Provenance::Snapshot)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if written > 0 {
        return Ok(ApplyOutcome::Applied);
    }
    let outcome = settle_tie(conn, w, "fulfillments", f.id, updated_at, &content).await?;
    if outcome == ApplyOutcome::Unconfirmed {
        // The caller record is as confirmed as its orders: the order goes unconfirmed too.
        sqlx::query("UPDATE orders SET synced_at = $3 WHERE shop = $1 AND id = $2")
            .bind(w.shop)
            .bind(f.order_id.0)
            .bind(UNCONFIRMED)
            .execute(&mut *conn)
            .await?;
    }
    Ok(outcome)
}

/// A tracking event adds the dates it carries to its fulfilment (if stored): the estimate
/// replaces an older one, the transit and delivery times are kept once learned. The
/// shipment status itself comes with the fulfilment's own update.
async fn record_fulfillment_event(
    conn: &mut Conn,
    w: &Write<'_>,
    e: &FulfillmentEventWrite,
) -> Result<ApplyOutcome, sqlx::Error> {
    let happened = e.happened_at;
    let written = sqlx::query(
        "UPDATE fulfillments SET
            estimated_delivery_at = COALESCE($4, estimated_delivery_at),
            in_transit_at = CASE WHEN $5 = 'in_transit' THEN COALESCE(in_transit_at, $6) ELSE in_transit_at END,
            delivered_at = CASE WHEN $5 = 'delivered' THEN COALESCE(delivered_at, $6) ELSE delivered_at END
         WHERE shop = $1 AND id = $2 AND order_id = $3
           AND (estimated_delivery_at IS DISTINCT FROM COALESCE($4, estimated_delivery_at)
                OR ($5 = 'in_transit' AND in_transit_at IS NULL AND $6 IS NOT NULL)
                OR ($5 = 'delivered' AND delivered_at IS NULL AND $6 IS NOT NULL))",
    )
    .bind(w.shop)
    .bind(e.fulfillment_id.0)
    .bind(e.order_id.0)
    .bind(e.estimated_delivery_at)
    .bind(&e.status)
    .bind(happened)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if written > 0 {
        return Ok(ApplyOutcome::Applied);
    }
    // An event ahead of its fulfilment (Shopify does not order deliveries): its dates have
    // nowhere to go yet, so the order is marked unconfirmed and the next lookup refetches it.
    let known: Option<(i64,)> = sqlx::query_as("SELECT id FROM fulfillments WHERE shop = $1 AND id = $2")
        .bind(w.shop)
        .bind(e.fulfillment_id.0)
        .fetch_optional(&mut *conn)
        .await?;
    if known.is_some() {
        return Ok(ApplyOutcome::Unchanged);
    }
    let marked = sqlx::query("UPDATE orders SET synced_at = $3 WHERE shop = $1 AND id = $2")
        .bind(w.shop)
        .bind(e.order_id.0)
        .bind(UNCONFIRMED)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(if marked > 0 { ApplyOutcome::Unconfirmed } else { ApplyOutcome::Unchanged })
}

/// Applies one copy of a return on an open transaction (see the module's write rule).
pub(crate) async fn upsert_return(
    conn: &mut Conn,
    shop: &str,
    r: &ReturnWrite,
    as_of: Ts,
    snapshot: bool,
    now: Ts,
) -> Result<ApplyOutcome, sqlx::Error> {
    // The row first exists (blank), then is read under a row lock on Postgres, so two
    // processors applying copies of one return take turns.
    sqlx::query("INSERT INTO returns (shop, id, synced_at) VALUES ($1, $2, $3) ON CONFLICT (shop, id) DO NOTHING")
        .bind(shop)
        .bind(r.id.0)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    let lock = if BACKEND == crate::store::Backend::Postgres { " FOR UPDATE" } else { "" };
    let stored: ReturnRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {RETURN_COLUMNS} FROM returns WHERE shop = $1 AND id = $2{lock}"
    )))
    .bind(shop)
    .bind(r.id.0)
    .fetch_one(&mut *conn)
    .await?;
    let row = merge_return(Some(&stored), r, as_of, snapshot);
    if row == stored {
        sqlx::query("UPDATE returns SET synced_at = $3 WHERE shop = $1 AND id = $2")
            .bind(shop)
            .bind(r.id.0)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        return Ok(ApplyOutcome::Unchanged);
    }
    sqlx::query(
        "UPDATE returns SET order_id = $3, name = $4, status = $5, status_rank = $6, requested_at = $7,
            approved_at = $8, closed_at = $9, decline_reason = $10, decline_note = $11, return_items = $12,
            exchange_items = $13, label_carrier = $14, label_tracking_number = $15, label_tracking_url = $16,
            label_url = $17, received = $18, as_of = $19, synced_at = $20
         WHERE shop = $1 AND id = $2",
    )
    .bind(shop)
    .bind(row.id)
    .bind(row.order_id)
    .bind(&row.name)
    .bind(&row.status)
    .bind(row.status_rank)
    .bind(row.requested_at)
    .bind(row.approved_at)
    .bind(row.closed_at)
    .bind(&row.decline_reason)
    .bind(&row.decline_note)
    .bind(row.return_items)
    .bind(row.exchange_items)
    .bind(&row.label_carrier)
    .bind(&row.label_tracking_number)
    .bind(&row.label_tracking_url)
    .bind(&row.label_url)
    .bind(row.received)
    .bind(row.as_of)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(ApplyOutcome::Applied)
}

/// The order a stored return belongs to, if known.
pub(crate) async fn order_of_return(conn: &mut Conn, shop: &str, id: ShopifyId) -> Result<Option<i64>, sqlx::Error> {
    let row: Option<(Option<i64>,)> = sqlx::query_as("SELECT order_id FROM returns WHERE shop = $1 AND id = $2")
        .bind(shop)
        .bind(id.0)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.and_then(|(o,)| o))
}

/// Refunds never change once made: the first copy is kept.
async fn insert_refund(conn: &mut Conn, shop: &str, r: &RefundWrite, now: Ts) -> Result<ApplyOutcome, sqlx::Error> {
    let written = sqlx::query(
        "INSERT INTO refunds (shop, id, order_id, note, amount, currency, shopify_created_at, processed_at, synced_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (shop, id) DO NOTHING",
    )
    .bind(shop)
    .bind(r.id.0)
    .bind(r.order_id.0)
    .bind(&r.note)
    .bind(&r.amount)
    .bind(&r.currency)
    .bind(r.created_at)
    .bind(r.processed_at)
    .bind(now)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(if written == 0 { ApplyOutcome::Unchanged } else { ApplyOutcome::Applied })
}

async fn remove_orders(conn: &mut Conn, shop: &str, ids: &[ShopifyId], now: Ts) -> Result<(), sqlx::Error> {
    for id in ids {
        for sql in [
            "DELETE FROM orders WHERE shop = $1 AND id = $2",
            "DELETE FROM order_line_items WHERE shop = $1 AND order_id = $2",
            "DELETE FROM fulfillments WHERE shop = $1 AND order_id = $2",
            "DELETE FROM refunds WHERE shop = $1 AND order_id = $2",
            "DELETE FROM returns WHERE shop = $1 AND order_id = $2",
            "DELETE FROM phone_numbers WHERE shop = $1 AND owner_kind = 'order' AND owner_id = $2",
        ] {
            sqlx::query(sql).bind(shop).bind(id.0).execute(&mut *conn).await?;
        }
        tombstone(conn, shop, "order", *id, now).await?;
    }
    Ok(())
}

async fn remove_customer(conn: &mut Conn, shop: &str, id: ShopifyId, now: Ts) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM customers WHERE shop = $1 AND id = $2").bind(shop).bind(id.0).execute(&mut *conn).await?;
    sqlx::query(
        "DELETE FROM phone_numbers WHERE shop = $1 AND (customer_id = $2 OR (owner_kind = 'customer' \
         AND owner_id = $2))",
    )
    .bind(shop)
    .bind(id.0)
    .execute(&mut *conn)
    .await?;
    tombstone(conn, shop, "customer", id, now).await
}

/// customers/redact: no row, phone, order, payload or call detail of the customer is left.
/// Only bare IDs remain, as tombstones, so a late delivery cannot write them back.
async fn redact_customer(
    conn: &mut Conn,
    shop: &str,
    customer_id: ShopifyId,
    orders_to_redact: &[ShopifyId],
    now: Ts,
) -> Result<(), sqlx::Error> {
    let owned: Vec<(i64,)> = sqlx::query_as("SELECT id FROM orders WHERE shop = $1 AND customer_id = $2")
        .bind(shop)
        .bind(customer_id.0)
        .fetch_all(&mut *conn)
        .await?;
    let mut orders: Vec<ShopifyId> = orders_to_redact.to_vec();
    orders.extend(owned.into_iter().map(|(id,)| ShopifyId(id)));
    orders.sort();
    orders.dedup();
    remove_orders(conn, shop, &orders, now).await?;
    remove_customer(conn, shop, customer_id, now).await?;
    sqlx::query(
        "UPDATE webhook_deliveries SET body = NULL, error = NULL,
                status = CASE WHEN status IN ('pending', 'dead') THEN 'redacted' ELSE status END
         WHERE shop = $1 AND customer_id = $2",
    )
    .bind(shop)
    .bind(customer_id.0)
    .execute(&mut *conn)
    .await?;
    for order in &orders {
        sqlx::query(
            "UPDATE webhook_deliveries SET body = NULL, error = NULL,
                    status = CASE WHEN status IN ('pending', 'dead') THEN 'redacted' ELSE status END
             WHERE shop = $1 AND order_id = $2",
        )
        .bind(shop)
        .bind(order.0)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query(
        "DELETE FROM call_events WHERE call_sid IN (SELECT call_sid FROM calls WHERE shop = $1 AND customer_id = $2)",
    )
    .bind(shop)
    .bind(customer_id.0)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM stream_handoffs WHERE shop = $1 AND customer_id = $2")
        .bind(shop)
        .bind(customer_id.0)
        .execute(&mut *conn)
        .await?;
    // What was kept of the customer's calls (texts to their number, call-backs, messages).
    for table in ["sms_messages", "callbacks", "voicemails"] {
        let sql = format!(
            "DELETE FROM {table} WHERE shop = $1 AND (customer_id = $2
                 OR call_sid IN (SELECT call_sid FROM calls WHERE shop = $1 AND customer_id = $2))"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(shop).bind(customer_id.0).execute(&mut *conn).await?;
    }
    sqlx::query(
        "UPDATE calls SET from_raw = 'redacted', from_e164 = NULL, customer_id = NULL
         WHERE shop = $1 AND customer_id = $2",
    )
    .bind(shop)
    .bind(customer_id.0)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Applies a run of batchable changes (see `batchable`) of one shop in arrival order, with
/// the exact outcome each would have had through `apply_change` one after another: the
/// stored rows are read (and locked, on Postgres) once, each version is walked through the
/// write rule in memory, several versions of one record are coalesced to the end state, and
/// that is written with multi-row statements. Returns None when a row changed under it
/// (another instance inserted it between the read and the write): the caller then rolls
/// back and applies the run one change at a time.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn apply_batch(
    conn: &mut Conn,
    shop: &str,
    changes: &[&Change],
    default_region: &str,
    now: Ts,
    from: Provenance,
    notice: &mut PhoneChanges,
) -> Result<Option<Vec<ApplyOutcome>>, sqlx::Error> {
    use std::collections::{BTreeMap, BTreeSet, HashSet};
    let mut customer_ids = BTreeSet::new();
    let mut order_ids = BTreeSet::new();
    let mut fulfillment_ids = BTreeSet::new();
    let mut refund_ids = BTreeSet::new();
    for change in changes {
        match change {
            Change::Customer(c) => {
                customer_ids.insert(c.id.0);
            }
            Change::Order(o) => {
                order_ids.insert(o.id.0);
                customer_ids.extend(o.customer_id().map(|c| c.0));
                fulfillment_ids.extend(o.fulfillments.iter().map(|f| f.id.0));
                refund_ids.extend(o.refunds.iter().map(|r| r.id.0));
            }
            _ => return Ok(None),
        }
    }
    let fulfillment_ids: Vec<i64> = fulfillment_ids.into_iter().collect();
    let refund_ids: Vec<i64> = refund_ids.into_iter().collect();
    let customer_ids: Vec<i64> = customer_ids.into_iter().collect();
    let order_ids: Vec<i64> = order_ids.into_iter().collect();

    // Tombstones, then the stored rows (locked on Postgres, in ID order against deadlocks).
    let mut tombstoned: HashSet<(bool, i64)> = HashSet::new();
    let all_ids: Vec<i64> = customer_ids.iter().chain(&order_ids).copied().collect();
    for chunk in all_ids.chunks(rows_per_statement(1)) {
        // Both kinds named: the key is (shop, kind, id), and `shop = ? AND id IN (…)` alone
        // reads every tombstone of the shop (SQLite's plan: the `shop` prefix only).
        let mut q = QueryBuilder::new("SELECT kind, id FROM tombstones WHERE shop = ");
        q.push_bind(shop).push(" AND kind IN ('customer', 'order') AND id IN (");
        let mut list = q.separated(", ");
        for id in chunk {
            list.push_bind(*id);
        }
        q.push(")");
        let rows: Vec<(String, i64)> = q.build_query_as().persistent(false).fetch_all(&mut *conn).await?;
        tombstoned.extend(rows.into_iter().map(|(kind, id)| (kind == "order", id)));
    }
    let lock = if BACKEND == crate::store::Backend::Postgres { " ORDER BY id FOR UPDATE" } else { "" };
    let mut customers: BTreeMap<i64, Course<'_, CustomerWrite>> = BTreeMap::new();
    for chunk in customer_ids.chunks(rows_per_statement(1)) {
        let mut q = QueryBuilder::new("SELECT id, updated_at, content, synced_at FROM customers WHERE shop = ");
        q.push_bind(shop).push(" AND id IN (");
        let mut list = q.separated(", ");
        for id in chunk {
            list.push_bind(*id);
        }
        q.push(")").push(lock);
        let rows: Vec<(i64, Ts, Option<String>, Ts)> =
            q.build_query_as().persistent(false).fetch_all(&mut *conn).await?;
        for (id, updated_at, content, synced_at) in rows {
            customers.insert(id, Course::stored(RowState { updated_at, content, synced_at }));
        }
    }
    let mut orders: BTreeMap<i64, Course<'_, OrderWrite>> = BTreeMap::new();
    let mut stored_owner: std::collections::HashMap<i64, i64> = std::collections::HashMap::new();
    for chunk in order_ids.chunks(rows_per_statement(1)) {
        let mut q =
            QueryBuilder::new("SELECT id, updated_at, content, synced_at, customer_id FROM orders WHERE shop = ");
        q.push_bind(shop).push(" AND id IN (");
        let mut list = q.separated(", ");
        for id in chunk {
            list.push_bind(*id);
        }
        q.push(")").push(lock);
        let rows: Vec<StoredOrder> = q.build_query_as().persistent(false).fetch_all(&mut *conn).await?;
        for (id, updated_at, content, synced_at, customer) in rows {
            orders.insert(id, Course::stored(RowState { updated_at, content, synced_at }));
            stored_owner.extend(customer.map(|c| (id, c)));
        }
    }
    let mut fulfillments: BTreeMap<i64, FulfillmentCourse> = BTreeMap::new();
    for chunk in fulfillment_ids.chunks(rows_per_statement(1)) {
        let mut q = QueryBuilder::new(format!("SELECT {FULFILLMENT_COLUMNS} FROM fulfillments WHERE shop = "));
        q.push_bind(shop).push(" AND id IN (");
        let mut list = q.separated(", ");
        for id in chunk {
            list.push_bind(*id);
        }
        q.push(")").push(lock);
        let rows: Vec<FulfillmentRow> = q.build_query_as().persistent(false).fetch_all(&mut *conn).await?;
        for row in rows {
            fulfillments.insert(row.id, FulfillmentCourse { row: Some(row), ..FulfillmentCourse::default() });
        }
    }
    // Refunds never change once made: only whether each is stored matters.
    let mut stored_refunds: HashSet<i64> = HashSet::new();
    for chunk in refund_ids.chunks(rows_per_statement(1)) {
        let mut q = QueryBuilder::new("SELECT id FROM refunds WHERE shop = ");
        q.push_bind(shop).push(" AND id IN (");
        let mut list = q.separated(", ");
        for id in chunk {
            list.push_bind(*id);
        }
        q.push(")");
        let rows: Vec<(i64,)> = q.build_query_as().persistent(false).fetch_all(&mut *conn).await?;
        stored_refunds.extend(rows.into_iter().map(|(id,)| id));
    }
    let mut new_refunds: Vec<&RefundWrite> = Vec::new();

    // Every version through the write rule, in arrival order.
    let mut outcomes = Vec::with_capacity(changes.len());
    let mut affected = BTreeSet::new();
    for change in changes {
        let outcome = match change {
            Change::Customer(c) => step_customer(&mut customers, &tombstoned, c, default_region, from, now),
            Change::Order(o) if tombstoned.contains(&(true, o.id.0)) => ApplyOutcome::Gone,
            Change::Order(o) => {
                let mut outcome = ApplyOutcome::Unchanged;
                if let Some(c) = &o.customer {
                    outcome = fold(outcome, step_customer(&mut customers, &tombstoned, c, default_region, from, now));
                }
                let phones = order_phones(o, default_region);
                let content = order_content(o, &phones);
                let course = orders.entry(o.id.0).or_default();
                outcome = fold(outcome, course.step(o.as_ref(), phones, o.updated_at, content, from, now));
                // Then its fulfilments and refunds, as `upsert_order` does (`batchable`
                // takes only those of this order).
                for f in &o.fulfillments {
                    let part = fulfillments.entry(f.id.0).or_default().step(f, from, now);
                    if part == ApplyOutcome::Unconfirmed
                        && let Some(state) = course.state.as_mut()
                    {
                        // The caller record is as confirmed as its orders.
                        state.synced_at = UNCONFIRMED;
                        course.synced_moved = true;
                    }
                    outcome = fold(outcome, part);
                }
                for r in &o.refunds {
                    let first = !stored_refunds.contains(&r.id.0) && !new_refunds.iter().any(|n| n.id == r.id);
                    if first {
                        new_refunds.push(r);
                    }
                    outcome = fold(outcome, if first { ApplyOutcome::Applied } else { ApplyOutcome::Unchanged });
                }
                outcome
            }
            _ => return Ok(None),
        };
        // The customers whose caller records this can alter (see `affected_customers`).
        if matches!(outcome, ApplyOutcome::Applied | ApplyOutcome::Removed | ApplyOutcome::Unconfirmed) {
            affected.extend(change.customer_id().map(|c| c.0));
            if let Some(order) = change.order_id() {
                affected.extend(stored_owner.get(&order.0).copied());
            }
        }
        outcomes.push(outcome);
    }
    let affected: Vec<i64> = affected.into_iter().collect();
    // The phones whose caller records this batch alters: those the affected customers are
    // reached by after it (read at the end), and those it takes away, which only the phone
    // rows it replaces can be (returned by their deletion): nothing else moves a phone row.
    let mut phones = Vec::new();

    // Customers: the end state of each one written, then their phones.
    let written: Vec<(&CustomerWrite, &Vec<PhoneEntry>, &RowState)> = customers
        .values()
        .filter_map(|c| Some((c.written.as_ref()?, c.state.as_ref()?)))
        .map(|((c, phones), state)| (*c, phones, state))
        .collect();
    let rows: Vec<(&CustomerWrite, &RowState)> = written.iter().map(|(c, _, state)| (*c, *state)).collect();
    if write_customer_rows(conn, shop, &rows, from == Provenance::Snapshot).await? != rows.len() {
        return Ok(None);
    }
    let owners: Vec<(ShopifyId, Option<ShopifyId>, &[PhoneEntry])> =
        written.iter().map(|(c, phones, _)| (c.id, Some(c.id), phones.as_slice())).collect();
    phones.extend(replace_phones_many(conn, shop, "customer", &owners).await?);

    // Orders: the end state, their line items, their phones.
    let written: Vec<(&OrderWrite, &Vec<PhoneEntry>, &RowState)> = orders
        .values()
        .filter_map(|o| Some((o.written.as_ref()?, o.state.as_ref()?)))
        .map(|((o, phones), state)| (*o, phones, state))
        .collect();
    let rows: Vec<(&OrderWrite, &RowState)> = written.iter().map(|(o, _, state)| (*o, *state)).collect();
    if write_order_rows(conn, shop, &rows, from == Provenance::Snapshot).await? != rows.len() {
        return Ok(None);
    }
    // A whole copy replaces the order's line items (`batchable` takes no truncated one).
    let written_ids: Vec<i64> = written.iter().map(|(o, _, _)| o.id.0).collect();
    delete_owned_many(conn, "DELETE FROM order_line_items WHERE shop = ", shop, " AND order_id IN (", &written_ids)
        .await?;
    // One row per (order, item), as the per-row upsert leaves it: the first position, the
    // last copy's fields, the last fulfilment status that was not null.
    let mut items: Vec<LineItemRow<'_>> = Vec::new();
    for (o, _, _) in &written {
        line_item_rows(o, &mut items);
    }
    write_line_items(conn, shop, &items).await?;
    let owners: Vec<(ShopifyId, Option<ShopifyId>, &[PhoneEntry])> =
        written.iter().map(|(o, phones, _)| (o.id, o.customer_id(), phones.as_slice())).collect();
    phones.extend(replace_phones_many(conn, shop, "order", &owners).await?);

    // Rows not written whose `synced_at` moved: re-confirmed, or marked unconfirmed.
    for (table, moved) in [
        (
            "customers",
            customers
                .iter()
                .filter(|(_, c)| c.written.is_none() && c.synced_moved)
                .filter_map(|(id, c)| Some((*id, c.state.as_ref()?.synced_at)))
                .collect::<Vec<_>>(),
        ),
        (
            "orders",
            orders
                .iter()
                .filter(|(_, o)| o.written.is_none() && o.synced_moved)
                .filter_map(|(id, o)| Some((*id, o.state.as_ref()?.synced_at)))
                .collect::<Vec<_>>(),
        ),
        (
            "fulfillments",
            fulfillments
                .iter()
                .filter(|(_, f)| !f.written && f.synced_moved)
                .filter_map(|(id, f)| Some((*id, f.row.as_ref()?.synced_at)))
                .collect::<Vec<_>>(),
        ),
    ] {
        for synced_at in [now, UNCONFIRMED] {
            let ids: Vec<i64> = moved.iter().filter(|(_, s)| *s == synced_at).map(|(id, _)| *id).collect();
            for chunk in ids.chunks(rows_per_statement(1)) {
                let mut q = QueryBuilder::new(format!("UPDATE {table} SET synced_at = "));
                q.push_bind(synced_at).push(" WHERE shop = ").push_bind(shop).push(" AND id IN (");
                let mut list = q.separated(", ");
                for id in chunk {
                    list.push_bind(*id);
                }
                q.push(")");
                q.build().persistent(false).execute(&mut *conn).await?;
            }
        }
    }

    // Fulfilments: the end state of each one written (the re-confirmed or unconfirmed ones
    // moved with the customers and orders above).
    let rows: Vec<&FulfillmentRow> =
        fulfillments.values().filter(|f| f.written).filter_map(|f| f.row.as_ref()).collect();
    if write_fulfillment_rows(conn, shop, &rows, from == Provenance::Snapshot).await? != rows.len() {
        return Ok(None);
    }
    // Refunds: the first copy of each new one.
    for chunk in new_refunds.chunks(rows_per_statement(9)) {
        let mut q = QueryBuilder::new(
            "INSERT INTO refunds (shop, id, order_id, note, amount, currency, shopify_created_at, \
             processed_at, synced_at) ",
        );
        q.push_values(chunk, |mut row, r| {
            row.push_bind(shop)
                .push_bind(r.id.0)
                .push_bind(r.order_id.0)
                .push_bind(&r.note)
                .push_bind(&r.amount)
                .push_bind(&r.currency)
                .push_bind(r.created_at)
                .push_bind(r.processed_at)
                .push_bind(now);
        });
        q.push(" ON CONFLICT (shop, id) DO NOTHING RETURNING id");
        let ids: Vec<(i64,)> = q.build_query_as().persistent(false).fetch_all(&mut *conn).await?;
        if ids.len() != chunk.len() {
            // Another instance stored one meanwhile: apply one at a time instead.
            return Ok(None);
        }
    }

    phones.extend(phones_of_many(conn, shop, &affected).await?);
    notice.phones.extend(phones);
    Ok(Some(outcomes))
}

/// Writes fulfilment rows decided in memory (`FulfillmentCourse`), a multi-row statement per
/// chunk, under `upsert_fulfillment`'s rule against what is stored; returns how many rows were
/// written (fewer: a row changed under the batch).
async fn write_fulfillment_rows(
    conn: &mut Conn,
    shop: &str,
    rows: &[&FulfillmentRow],
    snapshot: bool,
) -> Result<usize, sqlx::Error> {
    let mut written = 0;
    for chunk in rows.chunks(rows_per_statement(15)) {
        let mut q = QueryBuilder::new(
            "INSERT INTO fulfillments (shop, id, order_id, status, shipment_status, tracking_company, tracking_number,
                                       tracking_url, shopify_created_at, updated_at, synced_at, content,
                                       in_transit_at, delivered_at, estimated_delivery_at) ",
        );
        q.push_values(chunk, |mut row, f| {
            row.push_bind(shop)
                .push_bind(f.id)
                .push_bind(f.order_id)
                .push_bind(&f.status)
                .push_bind(&f.shipment_status)
                .push_bind(&f.tracking_company)
                .push_bind(&f.tracking_number)
                .push_bind(&f.tracking_url)
                .push_bind(f.shopify_created_at)
                .push_bind(f.updated_at)
                .push_bind(f.synced_at)
                .push_bind(&f.content)
                .push_bind(f.in_transit_at)
                .push_bind(f.delivered_at)
                .push_bind(f.estimated_delivery_at);
        });
        q.push(
            " ON CONFLICT (shop, id) DO UPDATE SET
                order_id = excluded.order_id, status = excluded.status, shipment_status = excluded.shipment_status,
                tracking_company = excluded.tracking_company, tracking_number = excluded.tracking_number,
                tracking_url = excluded.tracking_url, shopify_created_at = excluded.shopify_created_at,
                updated_at = excluded.updated_at, synced_at = excluded.synced_at, content = excluded.content,
                in_transit_at = excluded.in_transit_at, delivered_at = excluded.delivered_at,
                estimated_delivery_at = excluded.estimated_delivery_at
             WHERE excluded.updated_at > fulfillments.updated_at OR (",
        )
        .push_bind(snapshot)
        .push(
            " AND excluded.updated_at = fulfillments.updated_at
                AND (excluded.content IS DISTINCT FROM fulfillments.content
                     OR excluded.in_transit_at IS DISTINCT FROM fulfillments.in_transit_at
                     OR excluded.delivered_at IS DISTINCT FROM fulfillments.delivered_at
                     OR excluded.estimated_delivery_at IS DISTINCT FROM fulfillments.estimated_delivery_at))
             RETURNING id",
        );
        let ids: Vec<(i64,)> = q.build_query_as().persistent(false).fetch_all(&mut *conn).await?;
        written += ids.len();
    }
    Ok(written)
}

/// `upsert_customer`'s rule for one version, in memory (see `apply_batch`).
fn step_customer<'a>(
    customers: &mut std::collections::BTreeMap<i64, Course<'a, CustomerWrite>>,
    tombstoned: &std::collections::HashSet<(bool, i64)>,
    c: &'a CustomerWrite,
    default_region: &str,
    from: Provenance,
    now: Ts,
) -> ApplyOutcome {
    let Some(updated_at) = c.updated_at else { return ApplyOutcome::Unchanged };
    if tombstoned.contains(&(false, c.id.0)) {
        return ApplyOutcome::Gone;
    }
    let phones = customer_phones(c, default_region);
    let content = customer_content(c, &phones);
    customers.entry(c.id.0).or_default().step(c, phones, updated_at, content, from, now)
}

/// The caller phones (E.164) of several customers, in one statement per chunk. No `DISTINCT`
/// and no `e164 IS NOT NULL`: SQLite's planner then takes the partial index on (shop, e164) and
/// reads every phone of the shop (EXPLAIN QUERY PLAN; the backfill ran at half speed). The
/// notice keeps each number once.
async fn phones_of_many(conn: &mut Conn, shop: &str, customers: &[i64]) -> Result<Vec<String>, sqlx::Error> {
    let mut phones = Vec::new();
    for chunk in customers.chunks(rows_per_statement(1)) {
        let mut q = QueryBuilder::new("SELECT e164 FROM phone_numbers WHERE shop = ");
        q.push_bind(shop).push(" AND customer_id IN (");
        let mut list = q.separated(", ");
        for id in chunk {
            list.push_bind(*id);
        }
        q.push(")");
        let rows: Vec<(Option<String>,)> = q.build_query_as().persistent(false).fetch_all(&mut *conn).await?;
        phones.extend(rows.into_iter().filter_map(|(p,)| p));
    }
    Ok(phones)
}

/// `DELETE … WHERE shop = ? AND <column> IN (ids)`, chunked.
async fn delete_owned_many(
    conn: &mut Conn,
    head: &'static str,
    shop: &str,
    column: &'static str,
    ids: &[i64],
) -> Result<(), sqlx::Error> {
    for chunk in ids.chunks(rows_per_statement(1)) {
        let mut q = QueryBuilder::new(head);
        q.push_bind(shop).push(column);
        let mut list = q.separated(", ");
        for id in chunk {
            list.push_bind(*id);
        }
        q.push(")");
        q.build().persistent(false).execute(&mut *conn).await?;
    }
    Ok(())
}

/// `replace_phones` for many owners of one kind: one delete, then multi-row inserts. Returns
/// the numbers (E.164) of the rows it deleted.
async fn replace_phones_many(
    conn: &mut Conn,
    shop: &str,
    owner_kind: &str,
    owners: &[(ShopifyId, Option<ShopifyId>, &[PhoneEntry])],
) -> Result<Vec<String>, sqlx::Error> {
    let mut removed = Vec::new();
    if owners.is_empty() {
        return Ok(removed);
    }
    let ids: Vec<i64> = owners.iter().map(|(id, _, _)| id.0).collect();
    for chunk in ids.chunks(rows_per_statement(1)) {
        let mut q = QueryBuilder::new("DELETE FROM phone_numbers WHERE shop = ");
        q.push_bind(shop).push(" AND owner_kind = ").push_bind(owner_kind).push(" AND owner_id IN (");
        let mut list = q.separated(", ");
        for id in chunk {
            list.push_bind(*id);
        }
        q.push(") RETURNING e164");
        let rows: Vec<(Option<String>,)> = q.build_query_as().persistent(false).fetch_all(&mut *conn).await?;
        removed.extend(rows.into_iter().filter_map(|(e164,)| e164));
    }
    // One row per (owner, source): a later entry with the same source replaces the earlier
    // one's number, as the per-row upsert does.
    let mut rows: Vec<(ShopifyId, Option<ShopifyId>, &PhoneEntry)> = Vec::new();
    for (owner, customer, entries) in owners {
        let start = rows.len();
        for entry in entries.iter() {
            match rows[start..].iter_mut().find(|(_, _, seen)| seen.source == entry.source) {
                Some(seen) => seen.2 = entry,
                None => rows.push((*owner, *customer, entry)),
            }
        }
    }
    for chunk in rows.chunks(rows_per_statement(7)) {
        let mut q = QueryBuilder::new(
            "INSERT INTO phone_numbers (shop, owner_kind, owner_id, source, customer_id, raw, e164) ",
        );
        q.push_values(chunk, |mut row, (owner, customer, entry)| {
            row.push_bind(shop)
                .push_bind(owner_kind)
                .push_bind(owner.0)
                .push_bind(&entry.source)
                .push_bind(customer.map(|c| c.0))
                .push_bind(&entry.raw)
                .push_bind(&entry.e164);
        });
        q.build().persistent(false).execute(&mut *conn).await?;
    }
    Ok(removed)
}

/// shop/redact: everything of the shop goes, but the row of the delivery that asked.
async fn redact_shop(conn: &mut Conn, shop: &str, keep_delivery: Option<i64>) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM call_events WHERE call_sid IN (SELECT call_sid FROM calls WHERE shop = $1)")
        .bind(shop)
        .execute(&mut *conn)
        .await?;
    for table in [
        "customers",
        "orders",
        "order_line_items",
        "fulfillments",
        "refunds",
        "returns",
        "phone_numbers",
        "tombstones",
        "data_requests",
        "sync_watermarks",
        "calls",
        "stream_handoffs",
        "sms_messages",
        "voicemails",
        "callbacks",
        "call_days",
        "call_days_rolled",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE shop = $1")))
            .bind(shop)
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query("DELETE FROM webhook_deliveries WHERE shop = $1 AND id <> $2")
        .bind(shop)
        .bind(keep_delivery.unwrap_or(-1))
        .execute(&mut *conn)
        .await?;
    Ok(())
}
