//! Realistic records for the emulated shop: the hand-written demo shop, generated shops of any
//! size, and the steps an order goes through (paid → shipped → out for delivery → delivered).

use chrono::{DateTime, TimeDelta, Utc};

use super::rng::Rng;
use super::store::Store;
use crate::shopify::payload::{
    ShopifyAddress, ShopifyCustomer, ShopifyFulfillment, ShopifyLineItem, ShopifyOrder, ShopifyRefund,
    ShopifyTransaction,
};

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Paid a moment ago, nothing shipped.
    Paid,
    /// Paid a day or more ago, being picked and packed.
    Preparing,
    /// One parcel on its way, the rest still being prepared.
    PartiallyShipped,
    InTransit,
    OutForDelivery,
    Delivered,
    Cancelled,
    Refunded,
}

impl Stage {
    /// How old (hours) an order at this stage can be, so its whole timeline lies in the past.
    fn age_hours(self) -> (i64, i64) {
        match self {
            Stage::Paid => (1, 20),
            Stage::Preparing => (26, 70),
            Stage::PartiallyShipped => (72, 140),
            Stage::InTransit => (48, 140),
            Stage::OutForDelivery => (48, 110),
            Stage::Delivered => (144, 59 * 24),
            Stage::Cancelled => (24, 59 * 24),
            Stage::Refunded => (14 * 24, 59 * 24),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Carrier {
    Ups,
    Usps,
    FedEx,
}

const CARRIERS: [Carrier; 3] = [Carrier::Ups, Carrier::Usps, Carrier::FedEx];

impl Carrier {
    fn tracking(self, rng: &mut Rng) -> (String, String, String) {
        let digits =
            |rng: &mut Rng, n: usize| (0..n).map(|_| char::from(b'0' + rng.below(10) as u8)).collect::<String>();
        match self {
            Carrier::Ups => {
                let alnum: String =
                    (0..6).map(|_| *rng.pick(b"ABCDEFGHJKLMNPRSTUVWXY0123456789")).map(char::from).collect();
                let n = format!("1Z{alnum}03{}", digits(rng, 8));
                let url = format!("https://www.ups.com/track?loc=en_US&tracknum={n}");
                ("UPS".into(), n, url)
            }
            Carrier::Usps => {
                let n = format!("9400{}", digits(rng, 18));
                let url = format!("https://tools.usps.com/go/TrackConfirmAction?tLabels={n}");
                ("USPS".into(), n, url)
            }
            Carrier::FedEx => {
                let n = digits(rng, 12);
                let url = format!("https://www.fedex.com/fedextrack/?trknbr={n}");
                ("FedEx".into(), n, url)
            }
        }
    }
}

/// (title, variant, sku, price)
const PRODUCTS: [(&str, Option<&str>, &str, &str); 10] = [
    ("Ceramic Pour-Over Dripper", Some("Matte Black"), "POD-CER-BLK", "38.00"),
    ("Single-Origin Coffee Beans 340g", Some("Ethiopia Yirgacheffe / Whole Bean"), "BEAN-ETH-340-WB", "19.50"),
    ("Single-Origin Coffee Beans 340g", Some("Colombia Huila / Ground"), "BEAN-COL-340-GR", "18.00"),
    ("House Espresso Blend 1kg", Some("Whole Bean"), "ESP-HOUSE-1KG", "42.00"),
    ("Gooseneck Kettle 1L", Some("Brushed Steel"), "KET-GN-1L-SS", "64.00"),
    ("Conical Burr Grinder", Some("Charcoal"), "GRD-BURR-CHR", "129.00"),
    ("Paper Filters", Some("Pack of 100"), "FLT-PAPER-100", "7.50"),
    ("Stoneware Mug 350ml", Some("Sea Green"), "MUG-350-GRN", "16.00"),
    ("Cold Brew Bottle 1L", None, "CB-BTL-1L", "29.00"),
    ("Coffee Subscription", Some("Monthly / 2 bags"), "SUB-MONTH-2", "34.00"),
];

fn cents(price: &str) -> i64 {
    let (whole, frac) = price.split_once('.').unwrap_or((price, "0"));
    whole.parse::<i64>().unwrap_or(0) * 100 + format!("{frac:0<2}")[..2].parse::<i64>().unwrap_or(0)
}

fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// A customer to create: names, E.164 phone, where they live.
pub(crate) struct Person {
    pub first: String,
    pub last: String,
    pub email: String,
    pub phone: String,
    pub address_phone: String,
    pub country: &'static str,
    pub zip: String,
    /// The language the customer chose in the shop (Shopify's `Customer.locale: String!` in the
    /// Admin schema 2026-10, tests/fixtures/shopify/admin_2026-10.graphql: never null there; `en`,
    /// the emulated shop's primary language, unless they chose another).
    pub locale: Option<&'static str>,
}

/// An order to create for a customer (index into the people) or a guest.
pub(crate) struct Plan {
    pub customer: Option<usize>,
    pub stage: Stage,
    pub created_at: DateTime<Utc>,
    pub items: Vec<(usize, i64)>,
    pub carrier: Carrier,
}

fn hours(h: i64) -> TimeDelta {
    TimeDelta::hours(h)
}

/// Creates the people and the orders; order IDs and numbers follow creation time.
pub(crate) fn materialize(store: &mut Store, rng: &mut Rng, people: &[Person], mut plans: Vec<Plan>) {
    let start = store.start;
    // (oldest, newest) order of each person
    let mut span: Vec<Option<(DateTime<Utc>, DateTime<Utc>)>> = vec![None; people.len()];
    for plan in &plans {
        if let Some(i) = plan.customer {
            let t = plan.created_at;
            span[i] = Some(span[i].map_or((t, t), |(lo, hi)| (lo.min(t), hi.max(t))));
        }
    }
    let mut customers = Vec::with_capacity(people.len());
    for (i, p) in people.iter().enumerate() {
        let created = span[i].map_or(start, |s| s.0).min(start) - TimeDelta::days(rng.between(60, 900));
        let updated = span[i].map(|s| s.1 + TimeDelta::seconds(rng.between(60, 300))).unwrap_or(created);
        let id = store.alloc_id();
        let address = ShopifyAddress {
            id: Some(store.alloc_id()),
            phone: Some(p.address_phone.clone()),
            zip: Some(p.zip.clone()),
            country_code: Some(p.country.into()),
        };
        let customer = ShopifyCustomer {
            id,
            first_name: Some(p.first.clone()),
            last_name: Some(p.last.clone()),
            email: Some(p.email.clone()),
            phone: Some(p.phone.clone()),
            state: Some("enabled".into()),
            locale: p.locale.map(Into::into),
            created_at: Some(created),
            updated_at: Some(updated.min(start - TimeDelta::seconds(1))),
            default_address: Some(address.clone()),
            addresses: vec![address],
            addresses_omitted: false,
        };
        store.put_customer(customer.clone());
        customers.push(customer);
    }
    plans.sort_by_key(|p| p.created_at);
    for plan in plans {
        let customer = plan.customer.map(|i| &customers[i]);
        let (country, zip, phone) = match plan.customer {
            Some(i) => (people[i].country, people[i].zip.clone(), people[i].address_phone.clone()),
            None => ("US", "94103".to_string(), "+1 555-016-3355".to_string()),
        };
        let order = build_order(store, rng, customer, &plan, country, &zip, &phone);
        store.put_order(order);
    }
}

fn build_order(
    store: &mut Store,
    rng: &mut Rng,
    customer: Option<&ShopifyCustomer>,
    plan: &Plan,
    country: &str,
    zip: &str,
    address_phone: &str,
) -> ShopifyOrder {
    let id = store.alloc_id();
    let number = store.alloc_order_number();
    let created = plan.created_at;
    let gbp = country == "GB";
    let line_items: Vec<ShopifyLineItem> = plan
        .items
        .iter()
        .map(|&(p, quantity)| {
            let (title, variant, sku, price) = PRODUCTS[p % PRODUCTS.len()];
            ShopifyLineItem {
                id: store.alloc_id(),
                title: title.into(),
                variant_title: variant.map(Into::into),
                sku: Some(sku.into()),
                quantity,
                price: Some(price.into()),
                fulfillment_status: None,
            }
        })
        .collect();
    let subtotal: i64 = line_items.iter().map(|l| cents(l.price.as_deref().unwrap_or("0")) * l.quantity).sum();
    let (shipping, tax) =
        if gbp { (495, 0) } else { (if subtotal >= 7500 { 0 } else { 895 }, (subtotal * 8875 + 50_000) / 100_000) };
    let total = subtotal + shipping + tax;
    let address = ShopifyAddress {
        id: None,
        phone: Some(address_phone.into()),
        zip: Some(zip.into()),
        country_code: Some(country.into()),
    };
    let mut order = ShopifyOrder {
        id,
        name: format!("#{number}"),
        order_number: Some(number),
        email: customer.and_then(|c| c.email.clone()).or_else(|| Some("sam.guest@example.net".into())),
        phone: if customer.is_none() { Some("+15550163355".into()) } else { None },
        customer: customer.cloned(),
        // The language the order was placed in (REST `customer_locale`, as in Shopify's
        // orders/create fixture tests/fixtures/shopify/order_create.json): the customer's.
        customer_locale: customer.and_then(|c| c.locale.clone()),
        financial_status: Some("paid".into()),
        fulfillment_status: None,
        cancelled_at: None,
        cancel_reason: None,
        closed_at: None,
        total_price: Some(money(total)),
        currency: Some(if gbp { "GBP" } else { "USD" }.into()),
        billing_address: Some(address.clone()),
        shipping_address: Some(address),
        created_at: created,
        updated_at: created + TimeDelta::seconds(rng.between(2, 90)),
        line_items,
        fulfillments: Vec::new(),
        refunds: Vec::new(),
        returns: Vec::new(),
        truncated: Default::default(),
    };
    let shipped = created + hours(rng.between(16, 24));
    let jitter = |rng: &mut Rng| TimeDelta::seconds(rng.between(0, 3599));
    match plan.stage {
        Stage::Paid => {}
        Stage::Preparing => order.updated_at = created + hours(rng.between(2, 20)),
        Stage::PartiallyShipped => {
            ship(store, rng, &mut order, plan.carrier, shipped, 1);
            set_shipment(&mut order, "in_transit", shipped + hours(10) + jitter(rng));
        }
        Stage::InTransit => {
            ship(store, rng, &mut order, plan.carrier, shipped, usize::MAX);
            set_shipment(&mut order, "in_transit", shipped + hours(rng.between(4, 20)) + jitter(rng));
        }
        Stage::OutForDelivery => {
            ship(store, rng, &mut order, plan.carrier, shipped, usize::MAX);
            set_shipment(&mut order, "out_for_delivery", store.start - hours(rng.between(1, 5)) - jitter(rng));
        }
        Stage::Delivered | Stage::Refunded => {
            ship(store, rng, &mut order, plan.carrier, shipped, usize::MAX);
            set_shipment(&mut order, "delivered", shipped + hours(rng.between(40, 100)) + jitter(rng));
            if plan.stage == Stage::Refunded {
                let at = order.updated_at + hours(rng.between(72, 200));
                refund(store, &mut order, total, "Returned: arrived damaged", at);
            }
        }
        Stage::Cancelled => {
            let at = created + hours(rng.between(1, 6)) + jitter(rng);
            order.cancelled_at = Some(at);
            order.cancel_reason = Some("customer".into());
            order.closed_at = Some(at);
            refund(store, &mut order, total, "Cancelled at the customer's request", at);
        }
    }
    order
}

/// Ships the first `count` line items in one fulfilment (label printed, handed to the carrier).
pub(crate) fn ship(
    store: &mut Store,
    rng: &mut Rng,
    order: &mut ShopifyOrder,
    carrier: Carrier,
    at: DateTime<Utc>,
    count: usize,
) {
    let (company, number, url) = carrier.tracking(rng);
    order.fulfillments.push(ShopifyFulfillment {
        id: store.alloc_id(),
        order_id: order.id,
        status: Some("success".into()),
        shipment_status: Some("confirmed".into()),
        tracking_company: Some(company),
        tracking_number: Some(number),
        tracking_url: Some(url),
        created_at: Some(at),
        updated_at: at,
        in_transit_at: None,
        delivered_at: None,
        estimated_delivery_at: None,
    });
    let shipped = order.line_items.len().min(count);
    for item in order.line_items.iter_mut().take(shipped) {
        item.fulfillment_status = Some("fulfilled".into());
    }
    let all = shipped == order.line_items.len();
    order.fulfillment_status = Some(if all { "fulfilled" } else { "partial" }.into());
    if all && order.closed_at.is_none() {
        order.closed_at = Some(at);
    }
    order.updated_at = order.updated_at.max(at);
}

/// Moves the latest fulfilment to `status` (`in_transit`, `out_for_delivery`, `delivered`).
/// The dates follow Shopify's `Fulfillment` fields: `inTransitAt` and `deliveredAt` are set by
/// the first event of that kind; `estimatedDeliveryAt` comes with carrier tracking events
/// (shopify.dev/docs/api/admin-graphql/latest/objects/Fulfillment, 2026-10).
pub(crate) fn set_shipment(order: &mut ShopifyOrder, status: &str, at: DateTime<Utc>) {
    if let Some(f) = order.fulfillments.last_mut() {
        f.shipment_status = Some(status.into());
        f.updated_at = at;
        match status {
            "in_transit" => {
                f.in_transit_at.get_or_insert(at);
                f.estimated_delivery_at = Some(at + hours(48));
            }
            "out_for_delivery" => {
                f.in_transit_at.get_or_insert(at);
                f.estimated_delivery_at = Some(at + hours(8));
            }
            "delivered" => {
                f.delivered_at.get_or_insert(at);
            }
            _ => {}
        }
    }
    order.updated_at = order.updated_at.max(at);
}

fn refund(store: &mut Store, order: &mut ShopifyOrder, cents: i64, note: &str, at: DateTime<Utc>) {
    order.refunds.push(ShopifyRefund {
        id: store.alloc_id(),
        order_id: order.id,
        note: Some(note.into()),
        created_at: Some(at),
        processed_at: Some(at),
        transactions: vec![ShopifyTransaction {
            kind: Some("refund".into()),
            status: Some("success".into()),
            amount: Some(money(cents)),
            currency: order.currency.clone(),
        }],
    });
    order.financial_status = Some("refunded".into());
    order.updated_at = order.updated_at.max(at);
}

/// A new paid, unshipped order (not stored) for `customer` or a guest.
pub(crate) fn sample_order(store: &mut Store, rng: &mut Rng, customer: Option<&ShopifyCustomer>) -> ShopifyOrder {
    let now = super::store::whole_second(chrono::Utc::now());
    let plan = Plan { customer: None, stage: Stage::Paid, created_at: now, items: items(rng), carrier: Carrier::Ups };
    let (country, zip, phone) = match customer.and_then(|c| c.default_address.clone()) {
        Some(a) => {
            (a.country_code.unwrap_or_else(|| "US".into()), a.zip.unwrap_or_default(), a.phone.unwrap_or_default())
        }
        None => ("US".into(), "94103".into(), "+1 555-016-3355".into()),
    };
    let mut order = build_order(store, rng, customer, &plan, &country, &zip, &phone);
    order.updated_at = now;
    order
}

/// One step along paid → in transit → out for delivery → delivered; false when there is none.
pub(crate) fn advance(store: &mut Store, rng: &mut Rng, order: &mut ShopifyOrder, at: DateTime<Utc>) -> bool {
    if order.cancelled_at.is_some() || order.financial_status.as_deref() == Some("refunded") {
        return false;
    }
    if order.fulfillment_status.as_deref() != Some("fulfilled") {
        let carrier = *rng.pick(&CARRIERS);
        ship(store, rng, order, carrier, at, usize::MAX);
        // Picked up by the carrier at once: in transit, with the carrier's estimate.
        set_shipment(order, "in_transit", at);
        return true;
    }
    let next = match order.fulfillments.last().and_then(|f| f.shipment_status.as_deref()) {
        Some("confirmed" | "label_printed" | "label_purchased") => "in_transit",
        Some("in_transit") => "out_for_delivery",
        Some("out_for_delivery" | "attempted_delivery") => "delivered",
        _ => return false,
    };
    set_shipment(order, next, at);
    true
}

fn items(rng: &mut Rng) -> Vec<(usize, i64)> {
    let n = rng.between(1, 3) as usize;
    let mut items: Vec<(usize, i64)> = Vec::with_capacity(n);
    while items.len() < n {
        let p = rng.below(PRODUCTS.len() as u64) as usize;
        if !items.iter().any(|(q, _)| *q == p) {
            items.push((p, if rng.chance(0.2) { 2 } else { 1 }));
        }
    }
    items
}

fn person(first: &str, last: &str, phone: &str, address_phone: &str, country: &'static str, zip: &str) -> Person {
    Person {
        first: first.into(),
        last: last.into(),
        email: format!("{first}.{last}@example.com").to_ascii_lowercase(),
        phone: phone.into(),
        address_phone: address_phone.into(),
        country,
        zip: zip.into(),
        locale: Some("en"),
    }
}

/// The demo shop: eight customers (two share a household phone, one as her address phone, two
/// are in the UK, one shops in Spanish: Sofia, locale `es`), orders in
/// every stage over the last sixty days, and one guest order.
pub(crate) fn demo(store: &mut Store, rng: &mut Rng) {
    let people = vec![
        person("Dana", "Whitfield", "+15551234567", "(555) 123-4567", "US", "11217"),
        person("Marcus", "Oyelaran", "+15550142381", "555-014-2381", "US", "60614"),
        person("Priya", "Raman", "+15550156702", "(555) 015-6702", "US", "78704"),
        person("Tom", "Becker", "+15550177120", "555 017 7120", "US", "97214"),
        // Shopify keeps Customer.phone unique per shop: Anna has her own mobile, and shares the
        // household number through her address (as real shared numbers do).
        person("Anna", "Becker", "+15550177121", "555 017 7120", "US", "97214"),
        person("Eleanor", "Hughes", "+447700900123", "07700 900123", "GB", "SW1A 1AA"),
        person("Oliver", "Bennett", "+442079460321", "020 7946 0321", "GB", "M1 1AE"),
        Person { locale: Some("es"), ..person("Sofia", "Alvarez", "+15550199034", "+1 (555) 019-9034", "US", "33131") },
    ];
    use Carrier::*;
    use Stage::*;
    /// (customer, stage, age in hours, (product, quantity) items, carrier)
    type DemoOrder = (Option<usize>, Stage, i64, &'static [(usize, i64)], Carrier);
    let plans: [DemoOrder; 21] = [
        (Some(0), InTransit, 70, &[(0, 1), (1, 1)], Ups),
        (Some(0), Delivered, 21 * 24, &[(6, 2)], Usps),
        (Some(0), Refunded, 45 * 24, &[(5, 1)], FedEx),
        (Some(1), OutForDelivery, 60, &[(3, 1)], Usps),
        (Some(1), Delivered, 12 * 24, &[(1, 2), (7, 1)], FedEx),
        (Some(2), Paid, 3, &[(4, 1)], Ups),
        (Some(2), Cancelled, 9 * 24, &[(8, 1)], Ups),
        (Some(2), Delivered, 33 * 24, &[(2, 1)], Usps),
        (Some(3), Preparing, 30, &[(5, 1), (6, 1)], Ups),
        (Some(4), Delivered, 8 * 24, &[(9, 1)], Ups),
        (Some(4), InTransit, 100, &[(7, 2)], FedEx),
        (Some(5), InTransit, 80, &[(1, 1)], Ups),
        (Some(5), Delivered, 27 * 24, &[(0, 1)], Ups),
        (Some(6), PartiallyShipped, 110, &[(4, 1), (2, 2)], Ups),
        (Some(6), Refunded, 50 * 24, &[(8, 1)], Ups),
        (Some(7), Delivered, 17 * 24, &[(3, 1)], Usps),
        (Some(7), OutForDelivery, 75, &[(1, 1), (6, 1)], FedEx),
        (Some(7), Paid, 8, &[(7, 1)], Usps),
        (Some(7), Cancelled, 40 * 24, &[(9, 1)], Usps),
        (Some(3), Delivered, 55 * 24, &[(3, 1)], FedEx),
        (None, InTransit, 52, &[(2, 1), (6, 1)], Usps),
    ];
    let plans = plans
        .iter()
        .map(|&(customer, stage, age, items, carrier)| Plan {
            customer,
            stage,
            created_at: store.start - hours(age) - TimeDelta::seconds(rng.between(0, 3599)),
            items: items.to_vec(),
            carrier,
        })
        .collect();
    materialize(store, rng, &people, plans);
}

const FIRST: [&str; 32] = [
    "Ava", "Liam", "Maya", "Noah", "Zoe", "Ethan", "Leah", "Omar", "Chloe", "Mateo", "Grace", "Ravi", "Hana", "Lucas",
    "Iris", "Kofi", "Nina", "Jonah", "Elif", "Diego", "Ruth", "Felix", "Aiko", "Samir", "Clara", "Owen", "Lena",
    "Theo", "Mila", "Arjun", "Rosa", "Isaac",
];
const LAST: [&str; 32] = [
    "Nguyen", "Patel", "Garcia", "Kim", "Okafor", "Schmidt", "Rossi", "Cohen", "Silva", "Murphy", "Tanaka", "Haddad",
    "Larsen", "Moreau", "Novak", "Reyes", "Brooks", "Ito", "Mensah", "Kowalski", "Fischer", "Lopez", "Sato", "Walsh",
    "Ahmed", "Bianchi", "Dubois", "Jensen", "Park", "Costa", "Hughes", "Ward",
];
const ZIPS: [&str; 8] = ["94103", "94110", "94611", "95014", "94301", "95112", "94704", "94016"];

/// `customers` customers sharing `orders` orders (as evenly as they divide), all last updated
/// before the sim started; phones `+1415555xxxx` (the area code moves on every 10 000 customers).
pub(crate) fn generated(store: &mut Store, rng: &mut Rng, customers: usize, orders: usize) {
    const STAGES: [(Stage, u64); 8] = [
        (Stage::Delivered, 38),
        (Stage::InTransit, 12),
        (Stage::OutForDelivery, 6),
        (Stage::Paid, 8),
        (Stage::Preparing, 10),
        (Stage::PartiallyShipped, 4),
        (Stage::Cancelled, 10),
        (Stage::Refunded, 12),
    ];
    let total_weight: u64 = STAGES.iter().map(|(_, w)| w).sum();
    let mut people = Vec::with_capacity(customers);
    let mut plans = Vec::with_capacity(orders);
    let (each, more) = (orders.checked_div(customers).unwrap_or(0), orders.checked_rem(customers).unwrap_or(0));
    for i in 0..customers {
        let area = 415 + i / 10_000;
        let line = i % 10_000;
        let (first, last) = (*rng.pick(&FIRST), *rng.pick(&LAST));
        let zip = rng.pick(&ZIPS).to_string();
        people.push(Person {
            first: first.into(),
            last: last.into(),
            email: format!("{first}.{last}.{i}@example.com").to_ascii_lowercase(),
            phone: format!("+1{area}555{line:04}"),
            address_phone: format!("({area}) 555-{line:04}"),
            country: "US",
            zip,
            locale: Some("en"),
        });
        for _ in 0..each + usize::from(i < more) {
            let mut roll = rng.below(total_weight);
            let mut stage = Stage::Delivered;
            for (s, weight) in STAGES {
                if roll < weight {
                    stage = s;
                    break;
                }
                roll -= weight;
            }
            let (lo, hi) = stage.age_hours();
            let created_at = store.start - hours(rng.between(lo, hi)) - TimeDelta::seconds(rng.between(0, 3599));
            plans.push(Plan { customer: Some(i), stage, created_at, items: items(rng), carrier: *rng.pick(&CARRIERS) });
        }
    }
    materialize(store, rng, &people, plans);
}
