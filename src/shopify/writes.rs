//! The one place a Shopify record becomes what the store writes: every path that applies
//! (webhook deliveries, live fetch, reconciliation, bulk backfill) turns its payload types into
//! `store` write structs here. Also how the store reads a stored delivery (`DeliveryReader`).
//! Owns no SQL and no parsing rule of its own: it maps parsed records field by field.

use super::payload::{
    ShopifyAddress, ShopifyChange, ShopifyCustomer, ShopifyFulfillment, ShopifyFulfillmentEvent, ShopifyLineItem,
    ShopifyOrder, ShopifyRefund, Topic, subjects_at_intake, subjects_of_unparsed,
};
use super::returns::{ReturnLabel, ShopifyReturn};
use crate::domain::ShopifyId;
use crate::store::{
    AddressWrite, Change, CustomerWrite, FulfillmentEventWrite, FulfillmentWrite, LineItemWrite, OrderWrite,
    ReadDelivery, RefundWrite, ReturnLabelWrite, ReturnWrite, Ts,
};

impl From<ShopifyChange> for Change {
    fn from(change: ShopifyChange) -> Change {
        match change {
            ShopifyChange::Order(o) => Change::Order(Box::new((*o).into())),
            ShopifyChange::OrderDeleted { id } => Change::OrderDeleted { id },
            ShopifyChange::Fulfillment(f) => Change::Fulfillment(f.into()),
            ShopifyChange::FulfillmentEvent(e) => Change::FulfillmentEvent(e.into()),
            ShopifyChange::Refund(r) => Change::Refund(r.into()),
            ShopifyChange::Customer(c) => Change::Customer(Box::new((*c).into())),
            ShopifyChange::CustomerDeleted { id } => Change::CustomerDeleted { id },
            ShopifyChange::CustomerRedact { customer_id, orders_to_redact } => {
                Change::CustomerRedact { customer_id, orders_to_redact }
            }
            ShopifyChange::ShopRedact => Change::ShopRedact,
            ShopifyChange::DataRequest { request_id, customer_id, orders_requested } => {
                Change::DataRequest { request_id, customer_id, orders_requested }
            }
            ShopifyChange::Return(r) => Change::Return(Box::new((*r).into())),
            ShopifyChange::ReturnTouched { id } => Change::ReturnTouched { id },
        }
    }
}

impl From<ShopifyAddress> for AddressWrite {
    fn from(a: ShopifyAddress) -> AddressWrite {
        AddressWrite { id: a.id, phone: a.phone, zip: a.zip, country_code: a.country_code }
    }
}

impl From<ShopifyCustomer> for CustomerWrite {
    fn from(c: ShopifyCustomer) -> CustomerWrite {
        CustomerWrite {
            id: c.id,
            first_name: c.first_name,
            last_name: c.last_name,
            email: c.email,
            phone: c.phone,
            state: c.state,
            locale: c.locale,
            created_at: c.created_at.map(Ts::from),
            updated_at: c.updated_at.map(Ts::from),
            default_address: c.default_address.map(AddressWrite::from),
            addresses: c.addresses.into_iter().map(AddressWrite::from).collect(),
            partial: c.addresses_omitted,
        }
    }
}

impl From<ShopifyLineItem> for LineItemWrite {
    fn from(item: ShopifyLineItem) -> LineItemWrite {
        LineItemWrite {
            id: item.id,
            title: item.title,
            variant_title: item.variant_title,
            sku: item.sku,
            quantity: item.quantity,
            price: item.price,
            fulfillment_status: item.fulfillment_status,
        }
    }
}

impl From<ShopifyFulfillment> for FulfillmentWrite {
    fn from(f: ShopifyFulfillment) -> FulfillmentWrite {
        FulfillmentWrite {
            id: f.id,
            order_id: f.order_id,
            status: f.status,
            shipment_status: f.shipment_status,
            tracking_company: f.tracking_company,
            tracking_number: f.tracking_number,
            tracking_url: f.tracking_url,
            created_at: f.created_at.map(Ts::from),
            updated_at: Ts::from(f.updated_at),
            in_transit_at: f.in_transit_at.map(Ts::from),
            delivered_at: f.delivered_at.map(Ts::from),
            estimated_delivery_at: f.estimated_delivery_at.map(Ts::from),
        }
    }
}

impl From<ShopifyFulfillmentEvent> for FulfillmentEventWrite {
    fn from(e: ShopifyFulfillmentEvent) -> FulfillmentEventWrite {
        FulfillmentEventWrite {
            fulfillment_id: e.fulfillment_id,
            order_id: e.order_id,
            status: e.status,
            happened_at: e.happened_at.map(Ts::from),
            estimated_delivery_at: e.estimated_delivery_at.map(Ts::from),
        }
    }
}

impl From<ShopifyRefund> for RefundWrite {
    fn from(r: ShopifyRefund) -> RefundWrite {
        RefundWrite {
            amount: r.amount(),
            currency: r.currency(),
            id: r.id,
            order_id: r.order_id,
            note: r.note,
            created_at: r.created_at.map(Ts::from),
            processed_at: r.processed_at.map(Ts::from),
        }
    }
}

impl From<ReturnLabel> for ReturnLabelWrite {
    fn from(l: ReturnLabel) -> ReturnLabelWrite {
        ReturnLabelWrite {
            carrier: l.carrier,
            tracking_number: l.tracking_number,
            tracking_url: l.tracking_url,
            label_url: l.label_url,
        }
    }
}

impl From<ShopifyReturn> for ReturnWrite {
    fn from(r: ShopifyReturn) -> ReturnWrite {
        ReturnWrite {
            id: r.id,
            order_id: r.order_id,
            name: r.name,
            status: r.status,
            requested_at: r.requested_at.map(Ts::from),
            approved_at: r.approved_at.map(Ts::from),
            closed_at: r.closed_at.map(Ts::from),
            decline_reason: r.decline_reason,
            decline_note: r.decline_note,
            return_items: r.return_items,
            exchange_items: r.exchange_items,
            label: r.label.map(ReturnLabelWrite::from),
            received: r.received,
            as_of: r.as_of.map(Ts::from),
        }
    }
}

impl From<ShopifyOrder> for OrderWrite {
    fn from(o: ShopifyOrder) -> OrderWrite {
        OrderWrite {
            id: o.id,
            name: o.name,
            order_number: o.order_number,
            email: o.email,
            phone: o.phone,
            customer: o.customer.map(CustomerWrite::from),
            customer_locale: o.customer_locale,
            financial_status: o.financial_status,
            fulfillment_status: o.fulfillment_status,
            cancelled_at: o.cancelled_at.map(Ts::from),
            cancel_reason: o.cancel_reason,
            closed_at: o.closed_at.map(Ts::from),
            total_price: o.total_price,
            currency: o.currency,
            billing_address: o.billing_address.map(AddressWrite::from),
            shipping_address: o.shipping_address.map(AddressWrite::from),
            created_at: Ts::from(o.created_at),
            updated_at: Ts::from(o.updated_at),
            line_items: o.line_items.into_iter().map(LineItemWrite::from).collect(),
            all_line_items: !o.truncated.line_items,
            fulfillments: o.fulfillments.into_iter().map(FulfillmentWrite::from).collect(),
            refunds: o.refunds.into_iter().map(RefundWrite::from).collect(),
            returns: o.returns.into_iter().map(ReturnWrite::from).collect(),
        }
    }
}

/// Several changes, as the store applies them in one transaction.
pub fn writes(changes: impl IntoIterator<Item = ShopifyChange>) -> Vec<Change> {
    changes.into_iter().map(Change::from).collect()
}

/// Reads stored webhook deliveries for the store's processing: the body parsed by its topic
/// (`ShopifyChange::parse`), then turned into the store's change.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeliveryReader;

impl ReadDelivery for DeliveryReader {
    fn read(&self, topic: &str, body: &[u8]) -> Result<Change, String> {
        let Some(topic) = Topic::parse(topic) else { return Err(format!("topic {topic:?} is not handled")) };
        ShopifyChange::parse(topic, body).map(Change::from).map_err(|e| e.to_string())
    }

    fn subjects(&self, topic: &str, body: &[u8]) -> (Option<ShopifyId>, Option<ShopifyId>) {
        subjects_of_unparsed(Topic::parse(topic), body)
    }
}

/// What intake records of a delivery of `topic` before it is applied: whether orderline
/// handles the topic, and the customer and order the body is about (see `NewDelivery`).
pub fn intake_subjects(topic: &str, body: &[u8]) -> (bool, Option<ShopifyId>, Option<ShopifyId>) {
    match Topic::parse(topic) {
        Some(t) => {
            let (customer, order) = subjects_at_intake(t, body);
            (true, customer, order)
        }
        None => (false, None, None),
    }
}
