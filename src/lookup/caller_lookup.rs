//! `CallerLookup`: a caller ID in, the matching customers and their recent orders out, with how
//! fresh the answer is and where it came from. Cache first, then the store, and Shopify live only
//! when the row is older than the freshness window, never longer than the caller's budget.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use moka::Expiry;
use moka::future::Cache;

use super::caller_id::CallerId;
use super::record::{CallerRecord, OrderCard, ShopCallers};
use crate::clock::Clock;
use crate::domain::{PhoneNumber, ShopifyId};
use crate::ops::Metrics;
use crate::shopify::client::{ORDERS_WINDOW_WITHOUT_READ_ALL_ORDERS, ShopifyClient, ShopifyError};
use crate::shopify::payload::ShopifyChange;
use crate::shopify::writes::{DeliveryReader, writes};
use crate::store::{OrderParts, PhoneChanges, Store, StoreError, Ts};

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The in-memory cache, fresh.
    Cache,
    /// The store (cache miss), fresh.
    Store,
    /// Shopify, within the budget.
    Shopify,
    /// Cache or store, older than the freshness window: Shopify was down, slow or not configured.
    Stale,
    /// Nobody has this number (known from Shopify, or from a recent check).
    Unknown,
    /// No number to look up.
    Withheld,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Cache => "cache",
            Source::Store => "store",
            Source::Shopify => "shopify",
            Source::Stale => "stale",
            Source::Unknown => "unknown",
            Source::Withheld => "withheld",
        }
    }
}

/// The answer to one lookup.
#[derive(Debug, Clone)]
pub struct CallerAnswer {
    pub caller: CallerId,
    /// The customers the number belongs to; `None` when nobody (or no number).
    pub record: Option<Arc<CallerRecord>>,
    pub source: Source,
    /// When the answer was last confirmed against Shopify, if it is about somebody.
    pub confirmed_at: Option<DateTime<Utc>>,
}

impl CallerAnswer {
    pub fn is_stale(&self) -> bool {
        self.source == Source::Stale
    }
}

/// An order found by what a caller keyed in (or by its ID), and whose it is.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderMatch {
    pub order: OrderCard,
    pub customer_id: Option<i64>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

#[derive(Debug, Clone)]
pub struct LookupConfig {
    pub shop: String,
    pub default_region: String,
    pub freshness: Duration,
    pub budget: Duration,
    /// How long "nobody has this number" is believed after Shopify said so.
    pub negative_ttl: Duration,
    /// Upper bound of the cache, in (approximate) bytes.
    pub cache_max_bytes: u64,
    pub orders_per_customer: i64,
    /// How long a live fetch may go on in the background after the caller stopped waiting.
    pub background_deadline: Duration,
}

impl LookupConfig {
    pub fn new(shop: impl Into<String>) -> Self {
        LookupConfig {
            shop: shop.into(),
            default_region: "US".into(),
            freshness: Duration::from_secs(300),
            budget: Duration::from_millis(1500),
            negative_ttl: Duration::from_secs(60),
            cache_max_bytes: 512 * 1024 * 1024,
            orders_per_customer: 3,
            background_deadline: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone)]
enum Entry {
    Known(Arc<CallerRecord>),
    /// Nobody in the store; `checked_at` (micros) if Shopify said so too.
    Nobody {
        checked_at: Option<i64>,
    },
}

struct EntryExpiry {
    negative_ttl: Duration,
}

impl Expiry<PhoneNumber, Entry> for EntryExpiry {
    fn expire_after_create(&self, _: &PhoneNumber, value: &Entry, _: std::time::Instant) -> Option<Duration> {
        match value {
            Entry::Known(_) => None,
            Entry::Nobody { .. } => Some(self.negative_ttl),
        }
    }

    fn expire_after_update(
        &self,
        key: &PhoneNumber,
        value: &Entry,
        at: std::time::Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        self.expire_after_create(key, value, at)
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum LookupError {
    #[error("store: {0}")]
    Store(String),
}

impl From<StoreError> for LookupError {
    fn from(e: StoreError) -> Self {
        LookupError::Store(e.to_string())
    }
}

/// Warming the whole shop hands records from the thread that builds them to this many tasks
/// that cache them, this many at a time (moka takes concurrent inserts: with two, a million
/// records went in in 1.9 s instead of 3.3 s on 2 cores).
const WARM_INSERTERS: usize = 2;
const WARM_BATCH: usize = 1024;

type Fetch = Shared<BoxFuture<'static, Result<Entry, String>>>;

struct Inner {
    config: LookupConfig,
    store: Store,
    client: Option<Arc<ShopifyClient>>,
    cache: Cache<PhoneNumber, Entry>,
    /// Caller IDs as Twilio sends them, parsed: a pure function of the text (and the region),
    /// and libphonenumber's parse is the costliest step of a warm caller's request, which every
    /// request of a call repeats (the incoming call, each answer, each status). Bounded.
    caller_ids: moka::sync::Cache<String, CallerId>,
    inflight: Mutex<HashMap<PhoneNumber, Fetch>>,
    /// Reconciliation has confirmed every row up to here (micros; 0 = never).
    reconciled_through: AtomicI64,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
}

/// Parsed caller IDs kept (about 100 bytes each).
const CALLER_IDS_KEPT: u64 = 20_000;

/// Cheap to clone; every clone shares the cache.
#[derive(Clone)]
pub struct CallerLookup {
    inner: Arc<Inner>,
}

impl CallerLookup {
    pub fn new(
        config: LookupConfig,
        store: Store,
        client: Option<Arc<ShopifyClient>>,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
    ) -> CallerLookup {
        PhoneNumber::load_metadata(&config.default_region);
        let cache = Cache::builder()
            .max_capacity(config.cache_max_bytes)
            .weigher(|phone: &PhoneNumber, entry: &Entry| {
                let key = phone.as_str().len() as u32 + 64;
                match entry {
                    Entry::Known(record) => key.saturating_add(record.weight()),
                    Entry::Nobody { .. } => key,
                }
            })
            .expire_after(EntryExpiry { negative_ttl: config.negative_ttl })
            .build();
        CallerLookup {
            inner: Arc::new(Inner {
                config,
                store,
                client,
                cache,
                caller_ids: moka::sync::Cache::new(CALLER_IDS_KEPT),
                inflight: Mutex::new(HashMap::new()),
                reconciled_through: AtomicI64::new(0),
                clock,
                metrics,
            }),
        }
    }

    /// Starts the task that drops cached callers when any instance changes them.
    pub fn follow_changes(&self) -> tokio::task::JoinHandle<()> {
        let mut changes = self.inner.store.subscribe_changes();
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                let notice = match changes.recv().await {
                    Ok(notice) => notice,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        PhoneChanges { all: true, ..Default::default() }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                let Some(inner) = weak.upgrade() else { return };
                CallerLookup { inner }.forget(&notice).await;
            }
        })
    }

    /// Drops the cached callers a change notice names.
    pub async fn forget(&self, notice: &PhoneChanges) {
        if notice.all {
            self.inner.cache.invalidate_all();
            return;
        }
        if !notice.shop.is_empty() && notice.shop != self.inner.config.shop {
            return;
        }
        for phone in &notice.phones {
            if let Some(phone) = PhoneNumber::from_e164(phone) {
                self.inner.cache.invalidate(&phone).await;
            }
        }
    }

    /// Records that reconciliation has confirmed every row up to `through`.
    pub fn set_reconciled_through(&self, through: DateTime<Utc>) {
        self.inner.reconciled_through.fetch_max(through.timestamp_micros(), Ordering::SeqCst);
    }

    /// Reads the reconciliation watermarks from the store (another instance may have moved them).
    pub async fn refresh_watermark(&self) -> Result<(), LookupError> {
        let shop = &self.inner.config.shop;
        let orders = self.inner.store.watermark(shop, "orders").await?;
        let customers = self.inner.store.watermark(shop, "customers").await?;
        if let (Some(orders), Some(customers)) = (orders, customers) {
            self.set_reconciled_through(orders.0.min(customers.0));
        }
        Ok(())
    }

    /// What the cache holds for a number right now, without reading the store or asking
    /// Shopify (for screens that show a call, not for answering one).
    pub async fn cached(&self, raw_caller_id: &str) -> Option<Arc<CallerRecord>> {
        let CallerId::Number(phone) = self.caller_id(raw_caller_id) else {
            return None;
        };
        match self.inner.cache.get(&phone).await {
            Some(Entry::Known(record)) => Some(record),
            _ => None,
        }
    }

    pub fn cached_entries(&self) -> u64 {
        self.inner.cache.entry_count()
    }

    /// Puts the `count` most recently updated customers' phones in the cache, in bulk.
    /// Returns how many phones were cached.
    pub async fn warm(&self, count: i64) -> Result<usize, LookupError> {
        let inner = &self.inner;
        let shop = inner.config.shop.clone();
        let customers = inner.store.customer_count(&shop).await?;
        if count > 0 && count >= customers {
            let cached = self.warm_whole_shop(usize::try_from(customers).unwrap_or(0)).await?;
            inner.cache.run_pending_tasks().await;
            inner.metrics.cache_entries.set(inner.cache.entry_count() as i64);
            return Ok(cached);
        }
        let ids = inner.store.most_recent_customers(&shop, count).await?;
        // Two stages in step: the store reads chunk n + 1 while chunk n is built and cached.
        let read = |chunk: Vec<i64>| {
            let (store, shop, orders_each) = (inner.store.clone(), shop.clone(), inner.config.orders_per_customer);
            tokio::spawn(async move {
                let owners = store.owners_of_shared_phones(&shop, &chunk).await?;
                let mut customers: Vec<i64> = owners.iter().map(|(_, c)| *c).collect();
                customers.sort_unstable();
                customers.dedup();
                let parts = store.caller_parts(&shop, &customers, orders_each).await?;
                Ok::<_, StoreError>((owners, parts))
            })
        };
        let mut chunks = ids.chunks(10_000).map(<[i64]>::to_vec);
        let mut next = chunks.next().map(read);
        let mut cached = 0;
        while let Some(reading) = next.take() {
            let (owners, parts) = reading.await.map_err(|e| LookupError::Store(e.to_string()))??;
            next = chunks.next().map(read);
            cached += self.cache_groups(&owners, &parts).await;
        }
        inner.cache.run_pending_tasks().await;
        inner.metrics.cache_entries.set(inner.cache.entry_count() as i64);
        Ok(cached)
    }

    /// Caches every caller of the shop. A few sequential scans beat any number of indexed
    /// look-ups; then the records are built on a blocking thread (seconds of CPU, kept off the
    /// runtime's workers) while `WARM_INSERTERS` tasks put them in the cache.
    async fn warm_whole_shop(&self, customers: usize) -> Result<usize, LookupError> {
        type Batch = Vec<(PhoneNumber, CallerRecord)>;
        let inner = &self.inner;
        let mut callers = ShopCallers::new(inner.config.orders_per_customer, customers);
        inner.store.scan_callers(&inner.config.shop, &mut callers).await?;
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..WARM_INSERTERS).map(|_| tokio::sync::mpsc::channel::<Batch>(4)).unzip();
        let building = tokio::task::spawn_blocking(move || {
            let mut batch = Vec::with_capacity(WARM_BATCH);
            let mut sent = 0;
            let mut send = |batch: Batch| {
                sent += 1;
                senders[sent % senders.len()].blocking_send(batch).is_ok()
            };
            callers.into_records(|phone, record| {
                batch.push((phone, record));
                batch.len() < WARM_BATCH || send(std::mem::replace(&mut batch, Vec::with_capacity(WARM_BATCH)))
            });
            send(batch);
        });
        let inserting: Vec<_> = receivers
            .into_iter()
            .map(|mut batches| {
                let cache = inner.cache.clone();
                tokio::spawn(async move {
                    let mut cached = 0;
                    while let Some(batch) = batches.recv().await {
                        cached += batch.len();
                        for (phone, record) in batch {
                            cache.insert(phone, Entry::Known(Arc::new(record))).await;
                        }
                    }
                    cached
                })
            })
            .collect();
        let mut cached = 0;
        for task in inserting {
            cached += task.await.map_err(|e| LookupError::Store(e.to_string()))?;
        }
        building.await.map_err(|e| LookupError::Store(e.to_string()))?;
        Ok(cached)
    }

    /// Caches one record per phone, from its owners' parts.
    async fn cache_groups(&self, owners: &[(String, i64)], parts: &[crate::store::CallerParts]) -> usize {
        let by_id: HashMap<i64, &crate::store::CallerParts> = parts.iter().map(|p| (p.customer.id, p)).collect();
        let mut groups: HashMap<&str, Vec<&crate::store::CallerParts>> = HashMap::new();
        for (phone, customer) in owners {
            if let Some(p) = by_id.get(customer) {
                let group = groups.entry(phone.as_str()).or_default();
                // A number can stand on a customer more than once (phone and address).
                if !group.iter().any(|g| g.customer.id == *customer) {
                    group.push(p);
                }
            }
        }
        let mut cached = 0;
        for (phone, group) in groups {
            if let Some(phone) = PhoneNumber::from_e164(phone) {
                let record = CallerRecord::from_parts(group.iter().copied());
                self.inner.cache.insert(phone, Entry::Known(Arc::new(record))).await;
                cached += 1;
            }
        }
        cached
    }

    /// Looks a caller up. Never waits on Shopify longer than the budget; when Shopify is slow,
    /// down or throttled, the stale answer is served and the fetch finishes in the background.
    pub async fn lookup(&self, raw_caller_id: &str) -> Result<CallerAnswer, LookupError> {
        let answer = self.lookup_inner(raw_caller_id).await;
        if let Ok(a) = &answer {
            self.inner.metrics.lookup(a.source.as_str());
        }
        answer
    }

    async fn lookup_inner(&self, raw_caller_id: &str) -> Result<CallerAnswer, LookupError> {
        let inner = &self.inner;
        let started = tokio::time::Instant::now();
        let caller = self.caller_id(raw_caller_id);
        let phone = match &caller {
            CallerId::Number(phone) => phone.clone(),
            CallerId::Withheld | CallerId::Unparseable(_) => {
                return Ok(CallerAnswer { caller, record: None, source: Source::Withheld, confirmed_at: None });
            }
        };
        // A cache hit (the usual case) is answered without the cache's loading machinery, whose
        // state (boxed) is only made on a miss.
        let (mut entry, mut from_store) = match inner.cache.get(&phone).await {
            Some(entry) => (entry, false),
            None => Box::pin(self.load_into_cache(&phone)).await?,
        };
        // A delivery acknowledged for one of these customers or their orders and not yet
        // applied would change the record: it is applied first, within the budget. If it
        // cannot be, the record is not fresh (the live path below).
        let mut pending_left = false;
        if let Entry::Known(record) = &entry
            && self.has_pending(record)
        {
            match Box::pin(self.apply_pending_first(&phone, record, started + inner.config.budget)).await {
                PendingFirst::NothingPending => {}
                PendingFirst::Applied(applied) => {
                    entry = applied;
                    from_store = true;
                }
                PendingFirst::Left => pending_left = true,
            }
        }
        let now = inner.clock.now().timestamp_micros();
        match &entry {
            Entry::Known(record) if !pending_left && self.is_fresh(record, now) => {
                let source = if from_store { Source::Store } else { Source::Cache };
                return Ok(self.answer(caller, &entry, source));
            }
            Entry::Nobody { checked_at: Some(at) } if now - at < inner.config.negative_ttl.as_micros() as i64 => {
                return Ok(self.answer(caller, &entry, Source::Unknown));
            }
            _ => {}
        }
        // Stale or never checked with Shopify: ask, within what is left of the budget (boxed, so
        // that a fresh answer does not carry the fetch's state).
        Ok(Box::pin(self.ask_shopify(caller, &phone, entry, started)).await)
    }

    /// `raw` parsed, as [`CallerId::parse`] does, once per text while it is kept.
    fn caller_id(&self, raw: &str) -> CallerId {
        if let Some(known) = self.inner.caller_ids.get(raw) {
            return known;
        }
        let parsed = CallerId::parse(raw, &self.inner.config.default_region);
        self.inner.caller_ids.insert(raw.to_string(), parsed.clone());
        parsed
    }

    /// The caller's cache entry, read from the store (once for concurrent callers) on a miss;
    /// true when this call read it.
    async fn load_into_cache(&self, phone: &PhoneNumber) -> Result<(Entry, bool), LookupError> {
        let loader = {
            let this = self.clone();
            let phone = phone.clone();
            async move { this.load_from_store(&phone).await }
        };
        let cached = self.inner.cache.entry(phone.clone()).or_try_insert_with(loader).await;
        let cached = cached.map_err(|e| LookupError::Store(e.to_string()))?;
        let fresh = cached.is_fresh();
        Ok((cached.into_value(), fresh))
    }

    /// Shopify's answer within what is left of the budget, else the stale entry.
    async fn ask_shopify(
        &self,
        caller: CallerId,
        phone: &PhoneNumber,
        entry: Entry,
        started: tokio::time::Instant,
    ) -> CallerAnswer {
        let Some(fetch) = self.fetch(phone) else {
            return self.answer(caller, &entry, Source::Stale);
        };
        let remaining = self.inner.config.budget.saturating_sub(started.elapsed());
        match tokio::time::timeout(remaining, fetch).await {
            Ok(Ok(fresh)) => self.answer(caller, &fresh, Source::Shopify),
            Ok(Err(_)) | Err(_) => self.answer(caller, &entry, Source::Stale),
        }
    }

    /// The order a caller keyed in: `1042` finds `#1042`, and `1001` finds `SO-1001-A` in a shop
    /// that names its orders so. The store first (by order number, then by the keyed name),
    /// then Shopify within the budget, asking `name:` with the exact name in each format the
    /// shop's stored orders use (whatever Shopify returns is applied like any other record).
    pub async fn order_by_number(&self, digits: &str) -> Result<Option<OrderMatch>, LookupError> {
        let digits = digits.trim();
        if digits.is_empty() {
            return Ok(None);
        }
        let inner = &self.inner;
        let shop = &inner.config.shop;
        let number: Option<i64> = digits.parse().ok();
        if let Some(number) = number
            && let Some(order) = inner.store.order_numbered(shop, number).await?
        {
            return Ok(Some(self.order_match(order).await?));
        }
        let mut names: Vec<String> =
            inner.store.order_name_formats(shop).await?.iter().map(|f| f.name(digits)).collect();
        for fallback in [format!("#{digits}"), digits.to_string()] {
            if !names.contains(&fallback) {
                names.push(fallback);
            }
        }
        if let Some(found) = self.order_named(&names).await? {
            return Ok(Some(found));
        }
        let Some(client) = inner.client.clone() else { return Ok(None) };
        let budget = inner.config.budget;
        let deadline = tokio::time::Instant::now() + budget;
        // The shop's formats, then `#` + digits (Shopify's default) when none is known yet.
        for name in names.iter().take(3) {
            let orders = match tokio::time::timeout_at(deadline, client.orders_by_name(name, deadline)).await {
                Ok(Ok(orders)) => orders,
                Ok(Err(e)) => {
                    tracing::info!(error = %e, "order lookup on Shopify failed");
                    return Ok(None);
                }
                Err(_) => return Ok(None),
            };
            // Shopify's search may match more than the exact name: keep the exact one.
            let orders: Vec<_> = orders.into_iter().filter(|o| o.name == *name).collect();
            if orders.is_empty() {
                continue;
            }
            let mut changes = Vec::new();
            for order in orders {
                if let Some(customer) = &order.customer {
                    changes.push(ShopifyChange::Customer(Box::new(customer.clone())));
                }
                changes.push(ShopifyChange::Order(Box::new(order)));
            }
            let now = Ts::from(inner.clock.now());
            inner.store.apply_all(shop, &writes(changes), &inner.config.default_region, now).await?;
            return self.order_named(std::slice::from_ref(name)).await;
        }
        Ok(None)
    }

    /// An order by its Shopify ID, from the store.
    /// How many other calls the customer made since `since` (the store's call records).
    pub async fn customer_calls_since(
        &self,
        customer_id: i64,
        since: DateTime<Utc>,
        except_call_sid: &str,
    ) -> Result<i64, LookupError> {
        let shop = &self.inner.config.shop;
        Ok(self.inner.store.customer_calls_since(shop, customer_id, Ts::from(since), except_call_sid).await?)
    }

    pub async fn order_by_id(&self, id: i64) -> Result<Option<OrderMatch>, LookupError> {
        let store = &self.inner.store;
        let shop = &self.inner.config.shop;
        let Some(order) = store.order(shop, ShopifyId(id)).await? else { return Ok(None) };
        Ok(Some(self.order_match(order).await?))
    }

    async fn order_named(&self, names: &[String]) -> Result<Option<OrderMatch>, LookupError> {
        let Some(order) = self.inner.store.order_named(&self.inner.config.shop, names).await? else {
            return Ok(None);
        };
        Ok(Some(self.order_match(order).await?))
    }

    async fn order_match(&self, order: crate::store::OrderRow) -> Result<OrderMatch, LookupError> {
        let store = &self.inner.store;
        let shop = &self.inner.config.shop;
        let id = ShopifyId(order.id);
        let customer = match order.customer_id {
            Some(c) => store.customer(shop, ShopifyId(c)).await?,
            None => None,
        };
        let parts = OrderParts {
            fulfillments: store.fulfillments(shop, id).await?,
            refunds: store.refunds(shop, id).await?,
            returns: store.returns(shop, id.0).await?,
            order,
        };
        Ok(OrderMatch {
            order: OrderCard::from_parts(&parts),
            customer_id: parts.order.customer_id,
            first_name: customer.as_ref().and_then(|c| c.first_name.clone()),
            last_name: customer.and_then(|c| c.last_name),
        })
    }

    fn answer(&self, caller: CallerId, entry: &Entry, source: Source) -> CallerAnswer {
        match entry {
            Entry::Known(record) => CallerAnswer {
                caller,
                record: Some(record.clone()),
                source,
                confirmed_at: Some(DateTime::from_timestamp_micros(self.confirmed_through(record)).unwrap_or_default()),
            },
            Entry::Nobody { .. } => CallerAnswer {
                caller,
                record: None,
                source: if source == Source::Shopify { Source::Unknown } else { source },
                confirmed_at: None,
            },
        }
    }

    /// Until when `record` is confirmed (micros): by its rows' own `synced_at`, and by the
    /// reconciliation watermark when the sweeps could see every order it shows. A sweep sees
    /// only what Shopify shows the app: without `read_all_orders`, no order created more than
    /// 60 days before the watermark, so its silence says nothing about such an order.
    fn confirmed_through(&self, record: &CallerRecord) -> i64 {
        let swept = self.inner.reconciled_through.load(Ordering::SeqCst);
        let window = ORDERS_WINDOW_WITHOUT_READ_ALL_ORDERS.num_microseconds().unwrap_or(i64::MAX);
        let sees_all = self.inner.client.as_ref().is_none_or(|c| c.sees_all_orders());
        if sees_all || record.oldest_order_created_at() >= swept.saturating_sub(window) {
            record.confirmed_at.max(swept)
        } else {
            record.confirmed_at
        }
    }

    /// The customers and orders a record shows.
    fn subjects(record: &CallerRecord) -> (Vec<i64>, Vec<i64>) {
        let customers = record.customers.iter().map(|c| c.id).collect();
        let orders = record.customers.iter().flat_map(|c| c.orders.iter().map(|o| o.id)).collect();
        (customers, orders)
    }

    /// True when a delivery about the record's customers or orders may be pending (the store's
    /// in-memory hint; no database round trip when it says no).
    fn has_pending(&self, record: &CallerRecord) -> bool {
        let (customers, orders) = Self::subjects(record);
        self.inner.store.pending_subjects().may_touch(&customers, &orders)
    }

    /// Applies the pending deliveries about the record's customers (and their orders) and
    /// rereads the record, before `deadline`. `NothingPending` when the database had none and
    /// the hint was only unsure: the cached record stands as it is. `Left` when they could not all
    /// be applied in time (another instance holds some of them, or the store failed): the caller
    /// takes the live path.
    async fn apply_pending_first(
        &self,
        phone: &PhoneNumber,
        record: &CallerRecord,
        deadline: tokio::time::Instant,
    ) -> PendingFirst {
        let inner = &self.inner;
        let (customers, orders) = Self::subjects(record);
        // The hint named them (not merely unsure): a delivery about them was stored, and if the
        // database has none pending now, another applier (the processor) applied it since the
        // cached record was read, so that record may lack it: read it again.
        let hint = inner.store.pending_subjects();
        let (named, mark) = (hint.names(&customers, &orders), hint.mark());
        let work = async {
            let mut applied_any = named;
            loop {
                let now = Ts::from(inner.clock.now());
                let (processed, left) = inner
                    .store
                    .apply_pending_for(
                        &inner.config.shop,
                        &customers,
                        &orders,
                        &DeliveryReader,
                        &inner.config.default_region,
                        now,
                    )
                    .await?;
                for p in &processed {
                    let topic = crate::shopify::payload::Topic::parse(&p.topic).map_or("other", |t| t.as_str());
                    inner.metrics.processed(topic, p.status.as_str());
                }
                applied_any |= !processed.is_empty();
                if left == 0 && !applied_any {
                    return Ok(None);
                }
                if left == 0 {
                    return self.load_from_store(phone).await.map(Some);
                }
                // Being applied by another instance right now: it will be done in a moment.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        match tokio::time::timeout_at(deadline, work).await {
            Ok(Ok(None)) => PendingFirst::NothingPending,
            Ok(Ok(Some(entry))) => {
                // The database said nothing is pending about these customers or any of their
                // orders, those the record read again shows included (an order the processor
                // just applied): the hint forgets them, unless named again since `mark`.
                if let Entry::Known(record) = &entry {
                    let (customers, orders) = Self::subjects(record);
                    hint.settle(mark, &customers, &orders);
                }
                inner.cache.insert(phone.clone(), entry.clone()).await;
                PendingFirst::Applied(entry)
            }
            Ok(Err(e)) => {
                tracing::info!(phone = %phone.masked(), error = %e, "could not apply the caller's pending deliveries");
                PendingFirst::Left
            }
            Err(_) => PendingFirst::Left,
        }
    }

    /// Fresh: confirmed (by a webhook, a live fetch or a reconciliation sweep) within the window.
    /// A record with a row a same-second webhook contradicted (`store::UNCONFIRMED`) is never
    /// fresh: the next lookup refetches it, whatever the reconciliation watermark says.
    fn is_fresh(&self, record: &CallerRecord, now: i64) -> bool {
        if record.is_unconfirmed() {
            return false;
        }
        now - self.confirmed_through(record) < self.inner.config.freshness.as_micros() as i64
    }

    async fn load_from_store(&self, phone: &PhoneNumber) -> Result<Entry, StoreError> {
        let inner = &self.inner;
        let shop = &inner.config.shop;
        let owners = inner.store.phone_owners(shop, &[phone.as_str().to_string()]).await?;
        if owners.is_empty() {
            return Ok(Entry::Nobody { checked_at: None });
        }
        let ids: Vec<i64> = owners.into_iter().map(|(_, c)| c).collect();
        let parts = inner.store.caller_parts(shop, &ids, inner.config.orders_per_customer).await?;
        if parts.is_empty() {
            return Ok(Entry::Nobody { checked_at: None });
        }
        Ok(Entry::Known(Arc::new(CallerRecord::from_parts(&parts))))
    }

    /// The live fetch for `phone`: one per number at a time, shared by every caller waiting on
    /// it, and run as its own task so it completes after they stop waiting.
    fn fetch(&self, phone: &PhoneNumber) -> Option<Fetch> {
        let client = self.inner.client.clone()?;
        let mut inflight = self.inner.inflight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = inflight.get(phone) {
            return Some(existing.clone());
        }
        let this = self.clone();
        let key = phone.clone();
        let task = tokio::spawn(async move {
            let result = this.fetch_and_apply(&client, &key).await;
            this.inner.inflight.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
            result
        });
        let shared: Fetch =
            async move { task.await.unwrap_or_else(|e| Err(format!("live fetch task failed: {e}"))) }.boxed().shared();
        inflight.insert(phone.clone(), shared.clone());
        Some(shared)
    }

    async fn fetch_and_apply(&self, client: &ShopifyClient, phone: &PhoneNumber) -> Result<Entry, String> {
        let inner = &self.inner;
        let deadline = tokio::time::Instant::now() + inner.config.background_deadline;
        let found = client.customers_by_phone(phone.as_str(), deadline).await.map_err(|e: ShopifyError| {
            tracing::info!(phone = %phone.masked(), error = %e, "live fetch failed; serving what the store has");
            e.to_string()
        })?;
        let now = inner.clock.now();
        let mut changes = Vec::new();
        for c in &found {
            changes.push(ShopifyChange::Customer(Box::new(c.customer.clone())));
            changes.extend(c.orders.iter().map(|o| ShopifyChange::Order(Box::new(o.clone()))));
        }
        inner
            .store
            .apply_all(&inner.config.shop, &writes(changes), &inner.config.default_region, Ts::from(now))
            .await
            .map_err(|e| e.to_string())?;
        let entry = match self.load_from_store(phone).await.map_err(|e| e.to_string())? {
            // What Shopify did not return is as confirmed as the store can know it now.
            Entry::Known(record) => {
                let mut record = (*record).clone();
                record.confirmed_at = record.confirmed_at.max(now.timestamp_micros());
                Entry::Known(Arc::new(record))
            }
            Entry::Nobody { .. } => Entry::Nobody { checked_at: Some(now.timestamp_micros()) },
        };
        inner.cache.insert(phone.clone(), entry.clone()).await;
        Ok(entry)
    }
}

/// What applying a caller's pending deliveries before answering came to.
enum PendingFirst {
    /// The database had none: the cached record stands.
    NothingPending,
    /// Some were applied: the record as the store now has it.
    Applied(Entry),
    /// Not all could be applied within the budget: the record is not fresh.
    Left,
}

/// The reconciler (below, in `shopify`) tells the lookup when its watermark moves.
impl crate::shopify::reconciler::Confirmations for CallerLookup {
    fn reconciled_through(&self, watermark: DateTime<Utc>) {
        self.set_reconciled_through(watermark);
    }
}
