//! Shopify's published Admin GraphQL schema, as far as orderline uses it: the committed extract
//! `tests/fixtures/shopify/admin_<API_VERSION>.graphql` (made by scripts/shopify-schema/extract.py
//! from Shopify's own introspection in @shopify/dev-mcp), parsed once, and the one place a
//! GraphQL document is checked against it. Never fetches anything; never hand-edits the schema.

use std::sync::OnceLock;

use apollo_compiler::ExecutableDocument;
use apollo_compiler::Schema;
use apollo_compiler::executable::{Selection, SelectionSet};
use apollo_compiler::schema::FieldDefinition;
use apollo_compiler::validation::Valid;

use super::graphql::API_VERSION;

/// The extract for `API_VERSION` (checked at start of every test that loads it).
const ADMIN_SDL: &str = include_str!("../../tests/fixtures/shopify/admin_2026-10.graphql");

/// The directive the extract script puts on Shopify's protected customer data fields
/// (`isProtected` / `protectedContent` in Shopify's introspection).
pub const PROTECTED_DIRECTIVE: &str = "protectedCustomerData";

/// The extracted Admin schema, parsed and validated once.
pub fn admin() -> &'static Valid<Schema> {
    static SCHEMA: OnceLock<Valid<Schema>> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        assert!(ADMIN_SDL.contains(&format!("API {API_VERSION}:")), "the extract matches API_VERSION");
        Schema::parse_and_validate(ADMIN_SDL, format!("admin_{API_VERSION}.graphql"))
            .unwrap_or_else(|e| panic!("the committed Admin schema extract is valid GraphQL: {e}"))
    })
}

/// One problem Shopify would report for a document: its message and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentError {
    pub message: String,
    pub locations: Vec<(usize, usize)>,
}

/// Parses and validates `document` against the Admin schema, as Shopify does before running it.
pub fn validate(document: &str) -> Result<Valid<ExecutableDocument>, Vec<DocumentError>> {
    ExecutableDocument::parse_and_validate(admin(), document, "query.graphql").map_err(|with| {
        with.errors
            .iter()
            .map(|d| {
                let json = d.to_json();
                DocumentError {
                    message: json.message,
                    locations: json.locations.iter().map(|l| (l.line, l.column)).collect(),
                }
            })
            .collect()
    })
}

/// Every field of `document` Shopify marks deprecated, as `Type.field` (empty when none).
pub fn deprecated_fields(document: &Valid<ExecutableDocument>) -> Vec<String> {
    fields_where(document, |_, definition| is_deprecated(definition))
}

/// Whether the schema marks the field `@deprecated`.
pub fn is_deprecated(definition: &FieldDefinition) -> bool {
    definition.directives.get("deprecated").is_some()
}

/// Every field `document` selects for which `keep(Type.field, definition)` holds, as
/// `Type.field`, sorted, each once.
pub fn fields_where(
    document: &Valid<ExecutableDocument>,
    keep: impl Fn(&str, &FieldDefinition) -> bool,
) -> Vec<String> {
    let mut found = Vec::new();
    for operation in document.operations.iter() {
        collect_fields(document, &operation.selection_set, &keep, &mut found);
    }
    found.sort();
    found.dedup();
    found
}

fn collect_fields(
    document: &ExecutableDocument,
    set: &SelectionSet,
    keep: &impl Fn(&str, &FieldDefinition) -> bool,
    found: &mut Vec<String>,
) {
    for selection in &set.selections {
        match selection {
            Selection::Field(field) => {
                let name = format!("{}.{}", set.ty, field.name);
                if keep(&name, &field.definition) {
                    found.push(name);
                }
                collect_fields(document, &field.selection_set, keep, found);
            }
            Selection::InlineFragment(inline) => collect_fields(document, &inline.selection_set, keep, found),
            Selection::FragmentSpread(spread) => {
                if let Some(fragment) = document.fragments.get(&spread.fragment_name) {
                    collect_fields(document, &fragment.selection_set, keep, found);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_extract_is_a_valid_schema_for_the_pinned_version() {
        let schema = admin();
        assert!(ADMIN_SDL.contains(&format!("Admin GraphQL API {API_VERSION}:")));
        for name in ["Customer", "Order", "Fulfillment", "AppInstallation", "BulkOperation", "WebhookSubscription"] {
            assert!(schema.get_object(name).is_some(), "{name} is in the extract");
        }
    }

    #[test]
    fn an_undefined_field_is_refused_with_its_location() {
        let errors = validate("query Q { customers(first: 1) { nodes { id phoneNumber } } }").unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].message.contains("phoneNumber"), "{errors:?}");
        assert_eq!(errors[0].locations, vec![(1, 44)], "line 1, column of `phoneNumber`");
    }

    #[test]
    fn deprecated_fields_are_named() {
        let doc = validate("query Q { customers(first: 1) { nodes { id addresses { id } email } } }").unwrap();
        assert_eq!(deprecated_fields(&doc), vec!["Customer.addresses".to_string(), "Customer.email".to_string()]);
    }
}
