//! The emulated shop's records, the indexes its searches use, the monotonic sim clock, and
//! Shopify's search syntax and cursors as far as orderline's operations use them.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

use crate::domain::ShopifyId;
use crate::shopify::payload::{ShopifyCustomer, ShopifyOrder};

/// First ID the sim hands out: 2^53 + 1, so every generated ID is beyond a JavaScript number.
pub(crate) const FIRST_ID: i64 = (1 << 53) + 1;

const SECOND: TimeDelta = TimeDelta::seconds(1);

pub(crate) type Key = (DateTime<Utc>, ShopifyId);

/// Shopify's `updated_at` / `updatedAt` have whole-second resolution ("2026-11-02T10:15:03-05:00";
/// shopify.dev/docs/api/admin-graphql/latest/scalars/DateTime: ISO-8601 without fractions): the
/// second `t` falls in.
pub(crate) fn whole_second(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

/// The first whole second at or after `t`.
fn ceil_second(t: DateTime<Utc>) -> DateTime<Utc> {
    let floor = whole_second(t);
    if floor == t { floor } else { floor + SECOND }
}

fn phone_key(phone: &str) -> String {
    let plus = if phone.trim_start().starts_with('+') { "+" } else { "" };
    format!("{plus}{}", phone.chars().filter(char::is_ascii_digit).collect::<String>())
}

fn name_key(name: &str) -> String {
    name.trim().trim_start_matches('#').to_string()
}

fn customer_updated(c: &ShopifyCustomer) -> DateTime<Utc> {
    c.updated_at.unwrap_or_default()
}

pub(crate) struct Store {
    customers: HashMap<ShopifyId, ShopifyCustomer>,
    customers_by_updated: BTreeSet<Key>,
    customers_by_phone: HashMap<String, BTreeSet<ShopifyId>>,
    orders: HashMap<ShopifyId, ShopifyOrder>,
    orders_by_updated: BTreeSet<Key>,
    orders_by_name: HashMap<String, BTreeSet<ShopifyId>>,
    /// customer → (created_at, order id) of its orders.
    orders_by_customer: HashMap<ShopifyId, BTreeSet<Key>>,
    /// When the sim started; the clock never hands out an instant at or before it.
    pub(crate) start: DateTime<Utc>,
    clock: DateTime<Utc>,
    next_id: i64,
    next_order_number: i64,
}

impl Store {
    pub(crate) fn new() -> Store {
        let start = whole_second(Utc::now());
        Store {
            customers: HashMap::new(),
            customers_by_updated: BTreeSet::new(),
            customers_by_phone: HashMap::new(),
            orders: HashMap::new(),
            orders_by_updated: BTreeSet::new(),
            orders_by_name: HashMap::new(),
            orders_by_customer: HashMap::new(),
            start,
            clock: start + SECOND,
            next_id: FIRST_ID,
            next_order_number: 1001,
        }
    }

    /// The instant of a change, as Shopify stamps it: the current whole second, never before an
    /// instant handed out before nor before `after`. Changes within one second share it (a
    /// burst of orders/create, orders/paid and orders/updated carries one `updated_at`).
    pub(crate) fn tick(&mut self, after: Option<DateTime<Utc>>) -> DateTime<Utc> {
        let mut t = whole_second(Utc::now()).max(self.clock);
        if let Some(after) = after {
            t = t.max(ceil_second(after));
        }
        self.clock = t;
        t
    }

    pub(crate) fn alloc_id(&mut self) -> ShopifyId {
        let id = ShopifyId(self.next_id);
        self.next_id += 1;
        id
    }

    pub(crate) fn alloc_order_number(&mut self) -> i64 {
        let n = self.next_order_number;
        self.next_order_number += 1;
        n
    }

    fn saw_id(&mut self, id: ShopifyId) {
        self.next_id = self.next_id.max(id.0.saturating_add(1));
    }

    pub(crate) fn put_customer(&mut self, c: ShopifyCustomer) {
        self.saw_id(c.id);
        if let Some(old) = self.customers.remove(&c.id) {
            self.customers_by_updated.remove(&(customer_updated(&old), old.id));
            if let Some(phone) = &old.phone
                && let Some(set) = self.customers_by_phone.get_mut(&phone_key(phone))
            {
                set.remove(&old.id);
            }
        }
        self.customers_by_updated.insert((customer_updated(&c), c.id));
        if let Some(phone) = &c.phone {
            self.customers_by_phone.entry(phone_key(phone)).or_default().insert(c.id);
        }
        self.customers.insert(c.id, c);
    }

    /// Whether another customer already has `c`'s phone (compared as Shopify stores it, E.164).
    pub(crate) fn phone_taken(&self, c: &ShopifyCustomer) -> bool {
        c.phone.as_deref().is_some_and(|p| {
            self.customers_by_phone.get(&phone_key(p)).is_some_and(|ids| ids.iter().any(|id| *id != c.id))
        })
    }

    /// Stores the order; its customer is stored too unless the sim holds a copy at least as new.
    pub(crate) fn put_order(&mut self, o: ShopifyOrder) {
        self.saw_id(o.id);
        let number = o.order_number.or_else(|| name_key(&o.name).parse().ok());
        if let Some(number) = number {
            self.next_order_number = self.next_order_number.max(number + 1);
        }
        if let Some(c) = &o.customer {
            let newer = match self.customers.get(&c.id) {
                None => true,
                Some(held) => c.updated_at.is_some() && c.updated_at >= held.updated_at,
            };
            if newer {
                self.put_customer(c.clone());
            }
        }
        self.remove_order(o.id);
        self.orders_by_updated.insert((o.updated_at, o.id));
        self.orders_by_name.entry(name_key(&o.name)).or_default().insert(o.id);
        if let Some(cid) = o.customer_id() {
            self.orders_by_customer.entry(cid).or_default().insert((o.created_at, o.id));
        }
        self.orders.insert(o.id, o);
    }

    /// Forgets a customer and its indexes; true if it was held.
    pub(crate) fn remove_customer(&mut self, id: ShopifyId) -> bool {
        let Some(old) = self.customers.remove(&id) else { return false };
        self.customers_by_updated.remove(&(customer_updated(&old), old.id));
        if let Some(phone) = &old.phone
            && let Some(set) = self.customers_by_phone.get_mut(&phone_key(phone))
        {
            set.remove(&old.id);
        }
        true
    }

    /// Forgets an order and its indexes; true if it was held.
    pub(crate) fn remove_order(&mut self, id: ShopifyId) -> bool {
        let Some(old) = self.orders.remove(&id) else { return false };
        self.orders_by_updated.remove(&(old.updated_at, old.id));
        if let Some(set) = self.orders_by_name.get_mut(&name_key(&old.name)) {
            set.remove(&old.id);
        }
        if let Some(cid) = old.customer_id()
            && let Some(set) = self.orders_by_customer.get_mut(&cid)
        {
            set.remove(&(old.created_at, old.id));
        }
        true
    }

    /// The IDs of the customer's orders, oldest first.
    pub(crate) fn order_ids_of(&self, customer: ShopifyId) -> Vec<ShopifyId> {
        self.orders_by_customer.get(&customer).into_iter().flatten().map(|(_, id)| *id).collect()
    }

    pub(crate) fn customer(&self, id: ShopifyId) -> Option<&ShopifyCustomer> {
        self.customers.get(&id)
    }

    /// The stored order as Shopify shows it: carrying its customer's current record.
    pub(crate) fn order(&self, id: ShopifyId) -> Option<ShopifyOrder> {
        self.orders.get(&id).map(|o| self.hydrate(o))
    }

    fn hydrate(&self, o: &ShopifyOrder) -> ShopifyOrder {
        let mut o = o.clone();
        if let Some(current) = o.customer_id().and_then(|id| self.customers.get(&id)) {
            o.customer = Some(current.clone());
        }
        o
    }

    pub(crate) fn all_customers(&self) -> Vec<ShopifyCustomer> {
        let mut all: Vec<_> = self.customers.values().cloned().collect();
        all.sort_by_key(|c| c.id);
        all
    }

    pub(crate) fn all_orders(&self) -> Vec<ShopifyOrder> {
        let mut all: Vec<_> = self.orders.values().map(|o| self.hydrate(o)).collect();
        all.sort_by_key(|o| o.id);
        all
    }

    /// The customer's `n` most recent orders, newest first.
    pub(crate) fn recent_orders_of(&self, customer: ShopifyId, n: usize) -> Vec<ShopifyOrder> {
        let Some(keys) = self.orders_by_customer.get(&customer) else { return Vec::new() };
        keys.iter().rev().take(n).filter_map(|(_, id)| self.order(*id)).collect()
    }

    /// Customers matching `terms`, most recently updated first, at most `limit`.
    pub(crate) fn search_customers(&self, terms: &[Term], limit: usize) -> Vec<ShopifyCustomer> {
        let phone = terms.iter().find_map(|t| if let Term::Phone(p) = t { Some(phone_key(p)) } else { None });
        let mut found: Vec<&ShopifyCustomer> = match phone {
            Some(key) => {
                self.customers_by_phone.get(&key).into_iter().flatten().filter_map(|id| self.customer(*id)).collect()
            }
            None => self.customers.values().collect(),
        };
        found.retain(|c| terms.iter().all(|t| t.matches_customer(c)));
        found.sort_by_key(|c| std::cmp::Reverse((customer_updated(c), c.id)));
        found.into_iter().take(limit).cloned().collect()
    }

    /// Orders matching `terms`, by ID, at most `limit`.
    pub(crate) fn search_orders(&self, terms: &[Term], limit: usize) -> Vec<ShopifyOrder> {
        let name = terms.iter().find_map(|t| if let Term::Name(n) = t { Some(name_key(n)) } else { None });
        let mut found: Vec<&ShopifyOrder> = match name {
            Some(key) => {
                self.orders_by_name.get(&key).into_iter().flatten().filter_map(|id| self.orders.get(id)).collect()
            }
            None => self.orders.values().collect(),
        };
        found.retain(|o| terms.iter().all(|t| t.matches_order(o)));
        found.sort_by_key(|o| o.id);
        found.into_iter().take(limit).map(|o| self.hydrate(o)).collect()
    }

    /// Customers matching `terms` and their addresses, counted without copying them (a bulk
    /// operation's `rootObjectCount` and `objectCount`).
    pub(crate) fn count_customers(&self, terms: &[Term]) -> (u64, u64) {
        let matching = self.customers.values().filter(|c| terms.iter().all(|t| t.matches_customer(c)));
        matching.fold((0, 0), |(roots, all), c| (roots + 1, all + 1 + c.addresses.len() as u64))
    }

    /// Orders matching `terms` and their line items, counted the same way.
    pub(crate) fn count_orders(&self, terms: &[Term]) -> (u64, u64) {
        let matching = self.orders.values().filter(|o| terms.iter().all(|t| t.matches_order(o)));
        matching.fold((0, 0), |(roots, all), o| (roots + 1, all + 1 + o.line_items.len() as u64))
    }

    /// One page of customers matching `terms`, by (updated_at, id), after the cursor.
    pub(crate) fn customer_page(&self, terms: &[Term], after: Option<Key>, limit: usize) -> Page<ShopifyCustomer> {
        let keys = page_keys(&self.customers_by_updated, terms, after, limit, |id| {
            self.customers.get(&id).is_some_and(|c| terms.iter().all(|t| t.matches_customer(c)))
        });
        keys.map(|(_, id)| self.customers[&id].clone())
    }

    /// One page of orders matching `terms`, by (updated_at, id), after the cursor.
    pub(crate) fn order_page(&self, terms: &[Term], after: Option<Key>, limit: usize) -> Page<ShopifyOrder> {
        let keys = page_keys(&self.orders_by_updated, terms, after, limit, |id| {
            self.orders.get(&id).is_some_and(|o| terms.iter().all(|t| t.matches_order(o)))
        });
        keys.map(|(_, id)| self.hydrate(&self.orders[&id]))
    }
}

pub(crate) struct Page<T> {
    pub(crate) nodes: Vec<T>,
    pub(crate) has_next_page: bool,
    pub(crate) end_cursor: Option<String>,
}

impl Page<Key> {
    fn map<T>(self, f: impl Fn(Key) -> T) -> Page<T> {
        Page {
            nodes: self.nodes.into_iter().map(f).collect(),
            has_next_page: self.has_next_page,
            end_cursor: self.end_cursor,
        }
    }
}

fn page_keys(
    index: &BTreeSet<Key>,
    terms: &[Term],
    after: Option<Key>,
    limit: usize,
    keep: impl Fn(ShopifyId) -> bool,
) -> Page<Key> {
    // Start at the later of the cursor and the query's lower bound on updated_at.
    let lower = terms.iter().filter_map(Term::updated_lower_bound).max();
    let start = match (after, lower) {
        (Some(after), Some(lower)) if lower > after.0 => Bound::Included((lower, ShopifyId(i64::MIN))),
        (Some(after), _) => Bound::Excluded(after),
        (None, Some(lower)) => Bound::Included((lower, ShopifyId(i64::MIN))),
        (None, None) => Bound::Unbounded,
    };
    let mut matching = index.range((start, Bound::Unbounded)).filter(|(_, id)| keep(*id)).copied();
    let nodes: Vec<Key> = matching.by_ref().take(limit).collect();
    let has_next_page = matching.next().is_some();
    let end_cursor = nodes.last().map(|&(t, id)| encode_cursor(t, id));
    Page { nodes, has_next_page, end_cursor }
}

/// The opaque cursor: base64 of `updated_at_micros:id`.
pub(crate) fn encode_cursor(t: DateTime<Utc>, id: ShopifyId) -> String {
    BASE64.encode(format!("{}:{}", t.timestamp_micros(), id.0))
}

pub(crate) fn decode_cursor(cursor: &str) -> Option<Key> {
    let text = String::from_utf8(BASE64.decode(cursor.trim()).ok()?).ok()?;
    let (micros, id) = text.split_once(':')?;
    Some((DateTime::from_timestamp_micros(micros.parse().ok()?)?, ShopifyId(id.parse().ok()?)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Cmp {
    fn holds(self, value: DateTime<Utc>, bound: DateTime<Utc>) -> bool {
        match self {
            Cmp::Eq => value == bound,
            Cmp::Gt => value > bound,
            Cmp::Ge => value >= bound,
            Cmp::Lt => value < bound,
            Cmp::Le => value <= bound,
        }
    }
}

/// One term of a Shopify search query (`phone:+1555…`, `name:#1042`, `updated_at:>='…'`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Term {
    Phone(String),
    Email(String),
    Name(String),
    UpdatedAt(Cmp, DateTime<Utc>),
    CreatedAt(Cmp, DateTime<Utc>),
}

impl Term {
    fn updated_lower_bound(&self) -> Option<DateTime<Utc>> {
        match self {
            Term::UpdatedAt(Cmp::Ge | Cmp::Gt | Cmp::Eq, t) => Some(*t),
            _ => None,
        }
    }

    pub(crate) fn applies_to_customers(&self) -> bool {
        !matches!(self, Term::Name(_))
    }

    pub(crate) fn applies_to_orders(&self) -> bool {
        !matches!(self, Term::Phone(_))
    }

    fn matches_customer(&self, c: &ShopifyCustomer) -> bool {
        match self {
            Term::Phone(p) => c.phone.as_deref().is_some_and(|have| phone_key(have) == phone_key(p)),
            Term::Email(e) => c.email.as_deref().is_some_and(|have| have.eq_ignore_ascii_case(e)),
            Term::Name(_) => false,
            Term::UpdatedAt(cmp, t) => cmp.holds(customer_updated(c), *t),
            Term::CreatedAt(cmp, t) => c.created_at.is_some_and(|have| cmp.holds(have, *t)),
        }
    }

    fn matches_order(&self, o: &ShopifyOrder) -> bool {
        match self {
            // Shopify's `name:` filter matches the order's name as the shop writes it
            // (`name:#1042`, `name:SO-1001-A`; shopify.dev/docs/api/admin-graphql/latest/queries/orders,
            // read 2026-12-04): the emulator asks for the exact name (any case), not bare digits.
            Term::Name(n) => o.name.trim().eq_ignore_ascii_case(n.trim()),
            Term::Email(e) => o.email.as_deref().is_some_and(|have| have.eq_ignore_ascii_case(e)),
            Term::Phone(_) => false,
            Term::UpdatedAt(cmp, t) => cmp.holds(o.updated_at, *t),
            Term::CreatedAt(cmp, t) => cmp.holds(o.created_at, *t),
        }
    }
}

/// Parses the `query` argument: whitespace-separated `field:value` terms joined by an implicit
/// (or written) AND. An empty query means every record.
pub(crate) fn parse_search(query: &str) -> Result<Vec<Term>, String> {
    let mut terms = Vec::new();
    for token in tokens(query) {
        if token == "AND" {
            continue;
        }
        if token == "OR" || token == "NOT" || token.starts_with('-') {
            return Err(format!("the emulator does not support `{token}` in search queries"));
        }
        let Some((field, value)) = token.split_once(':') else {
            return Err(format!("the emulator supports only field:value search terms, not `{token}`"));
        };
        let term = match field {
            "phone" => Term::Phone(unquote(value).to_string()),
            "email" => Term::Email(unquote(value).to_string()),
            "name" => Term::Name(unquote(value).to_string()),
            "updated_at" | "created_at" => {
                let (cmp, rest) = [(">=", Cmp::Ge), ("<=", Cmp::Le), (">", Cmp::Gt), ("<", Cmp::Lt)]
                    .into_iter()
                    .find_map(|(op, cmp)| value.strip_prefix(op).map(|rest| (cmp, rest)))
                    .unwrap_or((Cmp::Eq, value));
                let t = parse_time(unquote(rest)).ok_or_else(|| format!("invalid date in `{token}`"))?;
                if field == "updated_at" { Term::UpdatedAt(cmp, t) } else { Term::CreatedAt(cmp, t) }
            }
            other => return Err(format!("the emulator does not support searching by `{other}`")),
        };
        terms.push(term);
    }
    Ok(terms)
}

fn tokens(query: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    for ch in query.chars() {
        match (quote, ch) {
            (Some(q), c) if c == q => {
                quote = None;
                current.push(c);
            }
            (Some(_), c) => current.push(c),
            (None, '\'' | '"') => {
                quote = Some(ch);
                current.push(ch);
            }
            (None, c) if c.is_whitespace() => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            (None, c) => current.push(c),
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn unquote(value: &str) -> &str {
    let v = value.trim();
    for q in ['\'', '"'] {
        if let Some(inner) = v.strip_prefix(q).and_then(|v| v.strip_suffix(q)) {
            return inner;
        }
    }
    v
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(t.and_utc());
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)).map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_terms_parse() {
        assert_eq!(parse_search("").unwrap(), vec![]);
        assert_eq!(parse_search("phone:+15551234567").unwrap(), vec![Term::Phone("+15551234567".into())]);
        assert_eq!(parse_search("name:'#1042'").unwrap(), vec![Term::Name("#1042".into())]);
        let t = DateTime::parse_from_rfc3339("2026-11-02T15:15:03Z").unwrap().with_timezone(&Utc);
        assert_eq!(parse_search("updated_at:>='2026-11-02T15:15:03Z'").unwrap(), vec![Term::UpdatedAt(Cmp::Ge, t)]);
        assert_eq!(
            parse_search("updated_at:>2026-11-02T15:15:03Z AND updated_at:<'2026-11-02 x'").unwrap_err(),
            "invalid date in `updated_at:<'2026-11-02 x'`"
        );
        assert!(parse_search("title:mug").is_err());
        assert!(parse_search("dripper").is_err());
    }

    #[test]
    fn cursors_round_trip() {
        let t = whole_second(Utc::now());
        assert_eq!(decode_cursor(&encode_cursor(t, ShopifyId(FIRST_ID))), Some((t, ShopifyId(FIRST_ID))));
        assert_eq!(decode_cursor("not a cursor"), None);
    }

    #[test]
    fn the_clock_never_goes_back_and_hands_out_whole_seconds() {
        let mut store = Store::new();
        let a = store.tick(None);
        let b = store.tick(None);
        assert!(a > store.start && b >= a);
        assert_eq!(a.timestamp_subsec_micros(), 0);
        let future = Utc::now() + TimeDelta::hours(1);
        let after = store.tick(Some(future));
        assert!(after >= future && after - future < SECOND);
        assert_eq!(after.timestamp_subsec_micros(), 0);
        assert!(store.tick(None) >= after);
    }
}
