//! Shopify's calculated query cost, from the document as Shopify documents it
//! (https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits, "Cost calculation",
//! read 2026-12): scalars and enums 0, objects 1, connections 2 + `first` × the cost of one node,
//! mutations 10; the requested cost before running, the actual cost from what was returned
//! (a null object ends the count, a connection costs what it returned). Owns no bucket and
//! never looks at orderline's own estimates.

use apollo_compiler::ExecutableDocument;
use apollo_compiler::ast::{OperationType, Value as AstValue};
use apollo_compiler::executable::{Field, Operation, Selection, SelectionSet};
use apollo_compiler::schema::ExtendedType;
use serde_json::Value;

use crate::shopify::schema;

/// The cost of a mutation's root field (Shopify: "Mutation | 10").
const MUTATION: u32 = 10;
/// What `first` counts as when a connection is asked without it (Shopify refuses that for
/// connections; for plain lists of objects it is one).
const UNBOUNDED: u32 = 1;

/// What Shopify charges before running `operation`.
pub fn requested(document: &ExecutableDocument, operation: &Operation, variables: &Value) -> u32 {
    let cost = Cost { document, variables };
    match operation.operation_type {
        OperationType::Mutation => operation.selection_set.fields().count() as u32 * MUTATION,
        _ => cost.set(&operation.selection_set, None),
    }
}

/// What the answer `data` actually cost.
pub fn actual(document: &ExecutableDocument, operation: &Operation, variables: &Value, data: &Value) -> u32 {
    let cost = Cost { document, variables };
    match operation.operation_type {
        OperationType::Mutation => operation.selection_set.fields().count() as u32 * MUTATION,
        _ => cost.set(&operation.selection_set, Some(data)),
    }
}

struct Cost<'a> {
    document: &'a ExecutableDocument,
    variables: &'a Value,
}

impl Cost<'_> {
    /// Every field of `set`, fragments flattened.
    fn fields<'s>(&'s self, set: &'s SelectionSet, out: &mut Vec<&'s Field>) {
        for selection in &set.selections {
            match selection {
                Selection::Field(field) => out.push(field),
                Selection::InlineFragment(inline) => self.fields(&inline.selection_set, out),
                Selection::FragmentSpread(spread) => {
                    if let Some(fragment) = self.document.fragments.get(&spread.fragment_name) {
                        self.fields(&fragment.selection_set, out);
                    }
                }
            }
        }
    }

    /// The cost of a selection set, on `data` (the object it selects from) when counting the
    /// actual cost.
    fn set(&self, set: &SelectionSet, data: Option<&Value>) -> u32 {
        let mut fields = Vec::new();
        self.fields(set, &mut fields);
        fields
            .into_iter()
            .map(|field| {
                let key = field.response_key().as_str();
                self.field(field, data.map(|d| d.get(key).unwrap_or(&Value::Null)))
            })
            .sum()
    }

    fn field(&self, field: &Field, data: Option<&Value>) -> u32 {
        let ty = field.definition.ty.inner_named_type();
        let composite = matches!(
            schema::admin().types.get(ty),
            Some(ExtendedType::Object(_) | ExtendedType::Interface(_) | ExtendedType::Union(_))
        );
        if !composite {
            return 0;
        }
        if ty.as_str().ends_with("Connection") {
            return 2 + self.connection_nodes(field, data);
        }
        match data {
            None if field.definition.ty.is_list() => self.first(field) * (1 + self.set(&field.selection_set, None)),
            None => 1 + self.set(&field.selection_set, None),
            Some(Value::Array(items)) => items.iter().map(|item| self.object(field, item)).sum(),
            Some(item) => self.object(field, item),
        }
    }

    fn object(&self, field: &Field, data: &Value) -> u32 {
        if data.is_null() { 0 } else { 1 + self.set(&field.selection_set, Some(data)) }
    }

    /// `first` × one node (requested), or the nodes returned (actual). A node is what `nodes`
    /// or `edges { node }` selects; `pageInfo` and cursors are part of the connection's 2.
    fn connection_nodes(&self, field: &Field, data: Option<&Value>) -> u32 {
        let mut inner = Vec::new();
        self.fields(&field.selection_set, &mut inner);
        let mut total = 0;
        for sub in inner {
            let key = sub.response_key().as_str();
            let node_set = match sub.name.as_str() {
                "nodes" => &sub.selection_set,
                "edges" => {
                    let mut edge_fields = Vec::new();
                    self.fields(&sub.selection_set, &mut edge_fields);
                    match edge_fields.into_iter().find(|f| f.name == "node") {
                        Some(node) => {
                            let node_key = node.response_key().as_str();
                            total += match data.map(|d| d.get(key).unwrap_or(&Value::Null)) {
                                None => self.first(field) * (1 + self.set(&node.selection_set, None)),
                                Some(edges) => edges
                                    .as_array()
                                    .into_iter()
                                    .flatten()
                                    .map(|e| {
                                        let n = e.get(node_key).unwrap_or(&Value::Null);
                                        if n.is_null() { 0 } else { 1 + self.set(&node.selection_set, Some(n)) }
                                    })
                                    .sum(),
                            };
                            continue;
                        }
                        None => continue,
                    }
                }
                _ => continue,
            };
            total += match data.map(|d| d.get(key).unwrap_or(&Value::Null)) {
                None => self.first(field) * (1 + self.set(node_set, None)),
                Some(nodes) => nodes
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|n| if n.is_null() { 0 } else { 1 + self.set(node_set, Some(n)) })
                    .sum(),
            };
        }
        total
    }

    /// The field's `first` (or `last`) argument, a literal or a variable.
    fn first(&self, field: &Field) -> u32 {
        let value = field.specified_argument_by_name("first").or_else(|| field.specified_argument_by_name("last"));
        let n = match value.map(|v| &**v) {
            Some(AstValue::Int(i)) => i.try_to_i32().ok().map(i64::from),
            Some(AstValue::Variable(name)) => self.variables.get(name.as_str()).and_then(Value::as_i64),
            _ => None,
        };
        n.map(|n| n.clamp(0, i64::from(u32::MAX)) as u32).unwrap_or(UNBOUNDED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cost(document: &str, variables: Value) -> u32 {
        let doc = schema::validate(document).unwrap();
        let op = doc.operations.get(None).unwrap();
        requested(&doc, op, &variables)
    }

    #[test]
    fn objects_cost_one_scalars_nothing_connections_two_plus_first_nodes() {
        // Shopify's own example shape: a connection of 10 with an object inside each node.
        let q = "query Q { orders(first: 10) { nodes { id name totalPriceSet { shopMoney { amount } } } } }";
        assert_eq!(cost(q, json!({})), 2 + 10 * (1 + 1 + 1));
        let q = "query Q($n: Int) { customers(first: $n) { nodes { id defaultAddress { zip } } pageInfo { hasNextPage } } }";
        assert_eq!(cost(q, json!({ "n": 25 })), 2 + 25 * 2);
        assert_eq!(cost("query Q { currentAppInstallation { accessScopes { handle } } }", json!({})), 1 + 1);
    }

    #[test]
    fn the_actual_cost_counts_what_came_back() {
        let q = "query Q { orders(first: 10) { nodes { id customer { id } } } }";
        let doc = schema::validate(q).unwrap();
        let op = doc.operations.get(None).unwrap();
        let data = json!({ "orders": { "nodes": [ { "id": "1", "customer": null }, { "id": "2", "customer": { "id": "3" } } ] } });
        assert_eq!(actual(&doc, op, &json!({}), &data), 2 + 1 + (1 + 1));
    }
}
