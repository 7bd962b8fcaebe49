//! Every shipment and fulfilment state Shopify's published Admin schema names is mapped to what
//! the caller hears, and GraphQL and webhooks store the same value for the same state. The
//! schema is the committed extract of Shopify's introspection (tests/fixtures/shopify/README.md):
//! when a new API version adds a value, these tests fail until the mapping names it.

use apollo_compiler::schema::ExtendedType;
use orderline::ivr::order_status::OrderState;
use orderline::shopify::payload::{DisplayStatus, ShipmentStatus, fulfillment_status_from_display};
use orderline::shopify::schema;

fn enum_values(name: &str) -> Vec<String> {
    match schema::admin().types.get(name) {
        Some(ExtendedType::Enum(e)) => e.values.keys().map(|v| v.to_string()).collect(),
        other => panic!("the Admin schema has no enum {name}: {other:?}"),
    }
}

#[test]
fn every_fulfillment_display_status_in_the_schema_is_named_by_the_mapping() {
    let values = enum_values("FulfillmentDisplayStatus");
    assert!(values.len() >= 18, "{values:?}");
    for value in &values {
        let mapped = ShipmentStatus::from_display_status(value);
        assert_ne!(mapped, DisplayStatus::Unknown, "FulfillmentDisplayStatus.{value} is not mapped");
        if let DisplayStatus::Shipment(status) = mapped {
            // One way back, so the emulator answers with the value Shopify would.
            assert_eq!(status.display_status(), value);
            // And the caller hears something for it (the match in `of_shipment` is exhaustive).
            assert!(OrderState::ALL.contains(&OrderState::of_shipment(status)));
        }
    }
    // Nothing in the mapping that Shopify does not have.
    for status in ShipmentStatus::ALL {
        assert!(values.iter().any(|v| v == status.display_status()), "{status:?} is not in the schema");
    }
}

#[test]
fn a_rest_shipment_status_and_the_graphql_display_status_store_the_same_word() {
    // REST `shipment_status` (webhooks) takes its words from the fulfilment events:
    // FulfillmentEventStatus, lower-cased.
    for value in enum_values("FulfillmentEventStatus") {
        let rest = value.to_ascii_lowercase();
        let from_webhook = ShipmentStatus::parse(&rest).unwrap_or_else(|| panic!("REST word {rest} is not mapped"));
        assert_eq!(ShipmentStatus::from_display_status(&value), DisplayStatus::Shipment(from_webhook));
        assert_eq!(from_webhook.as_str(), rest);
    }
}

#[test]
fn every_order_display_fulfillment_status_becomes_a_word_rest_sends() {
    let rest_words = [None, Some("fulfilled"), Some("partial"), Some("restocked")];
    for value in enum_values("OrderDisplayFulfillmentStatus") {
        let word = fulfillment_status_from_display(&value)
            .unwrap_or_else(|_| panic!("OrderDisplayFulfillmentStatus.{value} is not mapped"));
        assert!(rest_words.contains(&word), "{value} → {word:?}, a word REST never sends");
    }
    assert_eq!(fulfillment_status_from_display("ON_HOLD"), Ok(None));
    assert_eq!(fulfillment_status_from_display("PARTIALLY_FULFILLED"), Ok(Some("partial")));
}

#[test]
fn every_order_state_has_a_name_of_its_own() {
    let names: std::collections::HashSet<&str> = OrderState::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(names.len(), OrderState::ALL.len());
    assert!(OrderState::Delayed.needs_a_person() && OrderState::DeliveryFailed.needs_a_person());
    assert!(!OrderState::Shipped.needs_a_person());
}
