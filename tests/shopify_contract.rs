//! Every GraphQL document orderline can send, checked against Shopify's published Admin schema
//! (the committed extract of @shopify/dev-mcp's introspection, see tests/fixtures/shopify/README.md).
//! No network: the extract is in the repository.

use orderline::shopify::graphql::{API_VERSION, Operation};
use orderline::shopify::schema;

#[test]
fn every_document_orderline_sends_is_valid_against_shopifys_admin_schema() {
    for op in Operation::ALL {
        let document = op.document();
        if let Err(errors) = schema::validate(&document) {
            panic!("{} is not valid against the Admin API {API_VERSION} schema: {errors:#?}", op.name());
        }
    }
}

#[test]
fn no_document_uses_a_field_shopify_has_deprecated() {
    for op in Operation::ALL {
        let document = schema::validate(&op.document()).expect("valid (see the test above)");
        assert_eq!(schema::deprecated_fields(&document), Vec::<String>::new(), "{}", op.name());
    }
}
