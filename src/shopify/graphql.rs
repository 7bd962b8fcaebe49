//! The Admin GraphQL contract: the operations orderline sends, what each may cost, the response
//! shapes, and the conversions between GraphQL nodes and the records the apply path takes.
//! The client sends these documents; the emulator (`sim::shopify`) answers them. Nothing here
//! does I/O.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::payload::{
    DisplayStatus, ShipmentStatus, ShopifyAddress, ShopifyCustomer, ShopifyFulfillment, ShopifyLineItem, ShopifyOrder,
    ShopifyRefund, ShopifyTransaction, Truncated, fulfillment_status_from_display,
};
use crate::domain::{ShopifyId, order_number_in};

/// Line items an order node carries (`lineItems(first: 5)` in the documents below).
pub const LINE_ITEMS: usize = 5;

/// The Admin API version every request is pinned to.
pub const API_VERSION: &str = "2026-10";

/// Orders and customers asked per page by the reconciler (the `$first` variable): 10 keeps an
/// orders page with their newest returns (2 + 10 × 59 = 592 points by Shopify's documented rules) under the 1000-point
/// single-query limit; the client shrinks it further if Shopify answers `MAX_COST_EXCEEDED`.
pub const PAGE_SIZE: u32 = 10;

/// The most IDs one query may carry: "Input arguments that accept an array have a maximum size
/// of 250" (https://shopify.dev/docs/api/usage/limits, "Input limits", read 2026-12-04).
pub const MAX_IDS: usize = 250;

/// One operation the client can send. `estimated_cost` is the safe starting estimate of what
/// Shopify charges up front for the document; the client replaces it with the
/// `requestedQueryCost` Shopify reports in each answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    CustomersByPhone,
    OrdersByName,
    OrdersUpdatedSince,
    CustomersUpdatedSince,
    /// The app's access scopes, checked at start.
    AccessScopes,
    /// Whether Shopify still has a customer: a `customers/delete` is applied only once
    /// `customer(id:)` answers null (`shopify::destructive::confirm`).
    CustomerExists,
    /// Whether Shopify still has an order: the same for `orders/delete` (`order(id:)`).
    OrderExists,
    /// Which of up to 250 stored records Shopify still has (`nodes(ids:)`): the reconciler's
    /// deletion check, for deletions whose webhook never arrived.
    StillHeld,
    /// The app's webhook subscriptions, a page at a time (`setup shopify`, `doctor`).
    WebhookSubscriptions,
    /// `webhookSubscriptionCreate` / `Update` / `Delete` (`setup shopify`).
    WebhookSubscriptionCreate,
    WebhookSubscriptionUpdate,
    WebhookSubscriptionDelete,
    /// Starts a bulk query (`bulkOperationRunQuery`): the reconciler's backfill of a resource.
    BulkRunQuery,
    /// Where a bulk operation is (`bulkOperation(id:)`), polled until it finishes.
    BulkOperationStatus,
}

impl Operation {
    pub const ALL: [Operation; 14] = [
        Operation::CustomersByPhone,
        Operation::OrdersByName,
        Operation::OrdersUpdatedSince,
        Operation::CustomersUpdatedSince,
        Operation::AccessScopes,
        Operation::CustomerExists,
        Operation::OrderExists,
        Operation::StillHeld,
        Operation::WebhookSubscriptions,
        Operation::WebhookSubscriptionCreate,
        Operation::WebhookSubscriptionUpdate,
        Operation::WebhookSubscriptionDelete,
        Operation::BulkRunQuery,
        Operation::BulkOperationStatus,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Operation::CustomersByPhone => "CustomersByPhone",
            Operation::OrdersByName => "OrdersByName",
            Operation::OrdersUpdatedSince => "OrdersUpdatedSince",
            Operation::CustomersUpdatedSince => "CustomersUpdatedSince",
            Operation::AccessScopes => "AccessScopes",
            Operation::CustomerExists => "CustomerExists",
            Operation::OrderExists => "OrderExists",
            Operation::StillHeld => "StillHeld",
            Operation::WebhookSubscriptions => "WebhookSubscriptions",
            Operation::WebhookSubscriptionCreate => "WebhookSubscriptionCreate",
            Operation::WebhookSubscriptionUpdate => "WebhookSubscriptionUpdate",
            Operation::WebhookSubscriptionDelete => "WebhookSubscriptionDelete",
            Operation::BulkRunQuery => "BulkRunQuery",
            Operation::BulkOperationStatus => "BulkOperationStatus",
        }
    }

    pub fn parse(name: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|o| o.name() == name)
    }

    pub fn document(self) -> String {
        match self {
            Operation::CustomersByPhone => format!(
                "query CustomersByPhone($query: String!) {{ customers(first: 3, query: $query) {{ nodes {{ {CUSTOMER} \
                 orders(first: 3, sortKey: CREATED_AT, reverse: true) {{ nodes {{ {ORDER} }} }} }} }} }}"
            ),
            Operation::OrdersByName => format!(
                "query OrdersByName($query: String!) {{ orders(first: 3, query: $query) {{ nodes {{ {ORDER} \
                 customer {{ {CUSTOMER} }} }} }} }}"
            ),
            Operation::OrdersUpdatedSince => format!(
                "query OrdersUpdatedSince($query: String!, $after: String, $first: Int!) {{ orders(first: $first, after: $after, \
                 query: $query, sortKey: UPDATED_AT) {{ nodes {{ {ORDER} customer {{ {CUSTOMER} }} }} \
                 pageInfo {{ hasNextPage endCursor }} }} }}"
            ),
            Operation::CustomersUpdatedSince => format!(
                "query CustomersUpdatedSince($query: String!, $after: String, $first: Int!) {{ customers(first: $first, \
                 after: $after, query: $query, sortKey: UPDATED_AT) {{ nodes {{ {CUSTOMER} }} \
                 pageInfo {{ hasNextPage endCursor }} }} }}"
            ),
            Operation::AccessScopes => {
                "query AccessScopes { currentAppInstallation { accessScopes { handle } } }".into()
            }
            // QueryRoot.customer(id:) and .order(id:) answer null for an ID the shop does not
            // hold (https://shopify.dev/docs/api/admin-graphql/latest/queries/customer and
            // .../queries/order, read 2026-12-04; both nullable in admin_2026-10.graphql).
            Operation::CustomerExists => "query CustomerExists($id: ID!) { customer(id: $id) { id } }".into(),
            Operation::OrderExists => "query OrderExists($id: ID!) { order(id: $id) { id } }".into(),
            // QueryRoot.nodes(ids:) answers one entry per ID, null where the shop no longer holds
            // the record (https://shopify.dev/docs/api/admin-graphql/latest/queries/nodes, read
            // 2026-12-04); input lists hold at most 250 IDs (https://shopify.dev/docs/api/usage/limits,
            // "Input limits").
            Operation::StillHeld => "query StillHeld($ids: [ID!]!) { nodes(ids: $ids) { id } }".into(),
            // `uri`, not the deprecated `callbackUrl` (WebhookSubscription and
            // WebhookSubscriptionInput in admin_2026-10.graphql: "Use `uri` instead.").
            Operation::WebhookSubscriptions => format!(
                "query WebhookSubscriptions($after: String) {{ webhookSubscriptions(first: {SUBSCRIPTIONS_PAGE}, \
                 after: $after) {{ nodes {{ {SUBSCRIPTION} }} pageInfo {{ hasNextPage endCursor }} }} }}"
            ),
            Operation::WebhookSubscriptionCreate => format!(
                "mutation WebhookSubscriptionCreate($topic: WebhookSubscriptionTopic!, $uri: String!) {{ \
                 webhookSubscriptionCreate(topic: $topic, webhookSubscription: {{ uri: $uri, format: JSON }}) {{ \
                 webhookSubscription {{ {SUBSCRIPTION} }} userErrors {{ field message }} }} }}"
            ),
            Operation::WebhookSubscriptionUpdate => format!(
                "mutation WebhookSubscriptionUpdate($id: ID!, $uri: String!) {{ webhookSubscriptionUpdate(id: $id, \
                 webhookSubscription: {{ uri: $uri, format: JSON }}) {{ webhookSubscription {{ {SUBSCRIPTION} }} \
                 userErrors {{ field message }} }} }}"
            ),
            Operation::WebhookSubscriptionDelete => "mutation WebhookSubscriptionDelete($id: ID!) { \
                 webhookSubscriptionDelete(id: $id) { deletedWebhookSubscriptionId userErrors { field message } } }"
                .into(),
            // bulkOperationRunQuery(query:, groupObjects:) returns the new operation and
            // userErrors (https://shopify.dev/docs/api/admin-graphql/latest/mutations/bulkOperationRunQuery,
            // read 2026-12-04). `groupObjects: true` asks for child lines directly below their
            // parent (the default turned false in 2026-01: https://shopify.dev/changelog/bulk-operations-group-objects-default-changed-to-false),
            // which lets the backfill join them as it streams.
            Operation::BulkRunQuery => "mutation BulkRunQuery($query: String!) { bulkOperationRunQuery(query: $query, \
                 groupObjects: true) { bulkOperation { id status createdAt } userErrors { field message code } } }"
                .into(),
            // bulkOperation(id:) (https://shopify.dev/docs/api/admin-graphql/latest/queries/bulkOperation,
            // read 2026-12-04); `currentBulkOperation` is deprecated in 2026-10.
            Operation::BulkOperationStatus => {
                "query BulkOperationStatus($id: ID!) { bulkOperation(id: $id) { id status \
                 errorCode createdAt completedAt objectCount rootObjectCount url partialDataUrl } }"
                    .into()
            }
        }
    }

    /// The up-front charge for the document with `first` nodes per page (the sweeps' `$first`;
    /// ignored by the lookups, whose sizes are fixed), counted by Shopify's documented rules
    /// (objects 1, connections 2 + first × node, scalars and enums 0):
    /// customer node 1 + email 1 + phone 1 + defaultAddress 1 + addressesV2 (2 + 3) = 9;
    /// order node 1 + totalPriceSet 2 + 2 addresses + lineItems (2 + 5 × 3) + fulfillments
    /// 3 × (1 + trackingInfo 1) + refunds 3 × 3 = 37, + returns `returns::RETURNS_COST` (13).
    pub fn estimated_cost(self, first: u32) -> u32 {
        const CUSTOMER: u32 = 9;
        const ORDER: u32 = 37 + super::returns::RETURNS_COST;
        match self {
            Operation::CustomersByPhone => 2 + 3 * (CUSTOMER + 2 + 3 * ORDER),
            Operation::OrdersByName => 2 + 3 * (ORDER + CUSTOMER),
            Operation::OrdersUpdatedSince => 2 + first * (ORDER + CUSTOMER),
            Operation::CustomersUpdatedSince => 2 + first * CUSTOMER,
            // currentAppInstallation 1 + the accessScopes list 1
            Operation::AccessScopes => 2,
            // one object, its id a scalar
            Operation::CustomerExists | Operation::OrderExists => 1,
            // A plain list (no `first`), whose cost the documented rules leave open: one object
            // per ID, for the most IDs one query may ask, is the safe side until Shopify's answers
            // teach the real figure.
            Operation::StillHeld => MAX_IDS as u32,
            // the connection 2 + one object per subscription
            Operation::WebhookSubscriptions => 2 + SUBSCRIPTIONS_PAGE,
            // "Mutation | 10" (the rate-limits page's cost table)
            Operation::WebhookSubscriptionCreate
            | Operation::WebhookSubscriptionUpdate
            | Operation::WebhookSubscriptionDelete => 10,
            // Shopify charges a mutation 10 points (https://shopify.dev/docs/api/usage/limits,
            // "Cost calculation": mutations 10).
            Operation::BulkRunQuery => 10,
            // bulkOperation 1, its fields scalars and enums.
            Operation::BulkOperationStatus => 1,
        }
    }

    /// Whether the document takes a page size (`$first`).
    pub fn is_paged(self) -> bool {
        matches!(self, Operation::OrdersUpdatedSince | Operation::CustomersUpdatedSince)
    }
}

/// Webhook subscriptions asked per page.
pub const SUBSCRIPTIONS_PAGE: u32 = 100;

const SUBSCRIPTION: &str = "id topic uri format";

const CUSTOMER: &str = "id firstName lastName state locale createdAt updatedAt \
    defaultEmailAddress { emailAddress } defaultPhoneNumber { phoneNumber } \
    defaultAddress { id phone zip countryCodeV2 } addressesV2(first: 3) { nodes { id phone zip countryCodeV2 } }";

const ORDER: &str = "id name email phone customerLocale createdAt updatedAt cancelledAt cancelReason closedAt \
    displayFinancialStatus displayFulfillmentStatus totalPriceSet { shopMoney { amount currencyCode } } \
    shippingAddress { phone zip countryCodeV2 } billingAddress { phone zip countryCodeV2 } \
    lineItems(first: 5) { nodes { id title variantTitle sku quantity originalUnitPriceSet { shopMoney { amount currencyCode } } } } \
    fulfillments(first: 3) { id status displayStatus createdAt updatedAt inTransitAt deliveredAt estimatedDeliveryAt \
    trackingInfo(first: 1) { company number url } } \
    refunds(first: 3) { id createdAt note totalRefundedSet { shopMoney { amount currencyCode } } } \
    returnStatus returns(first: 1, reverse: true) { nodes { id name status createdAt requestApprovedAt closedAt \
    totalQuantity decline { reason note } reverseFulfillmentOrders(first: 1) { nodes { reverseDeliveries(first: 1) { \
    nodes { deliverable { ... on ReverseDeliveryShippingDeliverable { tracking { carrierName number url } \
    label { publicFileUrl } } } } } } } } }";

/// What a backfill asks Shopify for in bulk: every customer, or every order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkResource {
    Customers,
    Orders,
}

impl BulkResource {
    /// The document given to `bulkOperationRunQuery`: one top-level connection with the same
    /// fields as the paged sweep's nodes. A bulk query takes no `first` ("The GraphQL Admin API
    /// supports querying a single top-level field"; nested connections come back as separate
    /// JSONL lines with `__parentId`: https://shopify.dev/docs/api/usage/bulk-operations/queries,
    /// read 2026-12-04). The order's customer leaves out its addresses (a connection under an
    /// object): the customers backfill brings them, and the record is flagged partial.
    ///
    /// The order's `returns` come as lines of their own under the order, with what the paged
    /// documents read of each return except its label. Shopify allows "up to five connections
    /// with a maximum nesting depth of two levels" (the guide above and
    /// https://shopify.dev/docs/api/admin-graphql/latest/mutations/bulkOperationRunQuery, both
    /// read 2026-12-05); the label sits at `returns > reverseFulfillmentOrders >
    /// reverseDeliveries`, three connections below `orders`, so a bulk query cannot have it.
    /// The backfill marks the order of each open return for a refetch instead (`shopify::bulk`),
    /// as a `returns/update` does, so the first lookup reads the label live.
    pub fn query(self) -> String {
        match self {
            BulkResource::Customers => format!(
                "{{ customers {{ edges {{ node {{ {BULK_CUSTOMER} \
                 addressesV2 {{ edges {{ node {{ id phone zip countryCodeV2 }} }} }} }} }} }} }}"
            ),
            BulkResource::Orders => format!(
                "{{ orders {{ edges {{ node {{ {BULK_ORDER} customer {{ {BULK_CUSTOMER} }} \
                 lineItems {{ edges {{ node {{ {BULK_LINE_ITEM} }} }} }} \
                 returns {{ edges {{ node {{ {BULK_RETURN} }} }} }} }} }} }} }}"
            ),
        }
    }

    /// The nested connection of a child line, by the type of its ID (`gid://shopify/<Type>/…`).
    pub fn child_connection(self, gid: &str) -> Option<&'static str> {
        let kind = gid.strip_prefix("gid://shopify/")?.split('/').next()?;
        match (self, kind) {
            (BulkResource::Customers, "MailingAddress") => Some("addressesV2"),
            (BulkResource::Orders, "LineItem") => Some("lineItems"),
            (BulkResource::Orders, "Return") => Some("returns"),
            _ => None,
        }
    }
}

const BULK_CUSTOMER: &str = "id firstName lastName state locale createdAt updatedAt \
    defaultEmailAddress { emailAddress } defaultPhoneNumber { phoneNumber } \
    defaultAddress { id phone zip countryCodeV2 }";

const BULK_ORDER: &str = "id name email phone customerLocale createdAt updatedAt cancelledAt cancelReason closedAt \
    displayFinancialStatus displayFulfillmentStatus totalPriceSet { shopMoney { amount currencyCode } } \
    shippingAddress { phone zip countryCodeV2 } billingAddress { phone zip countryCodeV2 } \
    fulfillments(first: 3) { id status displayStatus createdAt updatedAt inTransitAt deliveredAt estimatedDeliveryAt \
    trackingInfo(first: 1) { company number url } } \
    refunds(first: 3) { id createdAt note totalRefundedSet { shopMoney { amount currencyCode } } } returnStatus";

const BULK_LINE_ITEM: &str =
    "id title variantTitle sku quantity originalUnitPriceSet { shopMoney { amount currencyCode } }";

/// A return as the paged documents read it (`ORDER`), without `reverseFulfillmentOrders` (see
/// `BulkResource::query`).
const BULK_RETURN: &str = "id name status createdAt requestApprovedAt closedAt totalQuantity decline { reason note }";

/// `data` of BulkRunQuery.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkRunQueryData {
    pub bulk_operation_run_query: BulkRunQueryPayload,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkRunQueryPayload {
    #[serde(default)]
    pub bulk_operation: Option<GqlBulkOperation>,
    #[serde(default)]
    pub user_errors: Vec<BulkUserError>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BulkUserError {
    #[serde(default)]
    pub field: Option<Vec<String>>,
    pub message: String,
    #[serde(default)]
    pub code: Option<String>,
}

/// `data` of BulkOperationStatus: null for an ID Shopify does not know.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkOperationData {
    #[serde(default)]
    pub bulk_operation: Option<GqlBulkOperation>,
}

/// A `BulkOperation` as orderline reads it (fields of Admin 2026-10's `BulkOperation`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GqlBulkOperation {
    pub id: String,
    /// CREATED, RUNNING, COMPLETED, FAILED, CANCELING, CANCELED, EXPIRED.
    pub status: String,
    #[serde(default)]
    pub error_code: Option<String>,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub completed_at: Option<DateTime<Utc>>,
    /// `UnsignedInt64`, which Shopify sends as a string.
    #[serde(default)]
    pub object_count: Option<String>,
    #[serde(default)]
    pub root_object_count: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub partial_data_url: Option<String>,
}

/// The request body: `{"query", "variables", "operationName"}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphqlRequest {
    pub query: String,
    #[serde(default)]
    pub variables: serde_json::Value,
    #[serde(default)]
    pub operation_name: Option<String>,
}

impl GraphqlRequest {
    pub fn new(operation: Operation, variables: serde_json::Value) -> Self {
        GraphqlRequest { query: operation.document(), variables, operation_name: Some(operation.name().to_string()) }
    }
}

/// The response envelope.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GraphqlResponse<T> {
    #[serde(default = "Option::default")]
    pub data: Option<T>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<GraphqlError>,
    #[serde(default)]
    pub extensions: Option<Extensions>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GraphqlError {
    pub message: String,
    /// Where in `data` the error is (field names and list indexes), for field errors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub path: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<ErrorExtensions>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorExtensions {
    /// `THROTTLED`, `ACCESS_DENIED`, `MAX_COST_EXCEEDED`, `INTERNAL_SERVER_ERROR`, …
    #[serde(default)]
    pub code: Option<String>,
    /// MAX_COST_EXCEEDED: the query's cost and Shopify's single-query limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cost: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Extensions {
    pub cost: QueryCost,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryCost {
    pub requested_query_cost: u32,
    #[serde(default)]
    pub actual_query_cost: Option<u32>,
    pub throttle_status: ThrottleStatus,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ThrottleStatus {
    pub maximum_available: f64,
    pub currently_available: f64,
    pub restore_rate: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Nodes<T> {
    pub nodes: Vec<T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_info: Option<PageInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PageInfo {
    pub has_next_page: bool,
    #[serde(default)]
    pub end_cursor: Option<String>,
}

/// `data` of CustomersByPhone and CustomersUpdatedSince.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CustomersData {
    pub customers: Nodes<GqlCustomer>,
}

/// `data` of StillHeld: one entry per ID asked, null where the shop no longer holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodesData {
    pub nodes: Vec<Option<NodeId>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeId {
    pub id: String,
}

/// `data` of AccessScopes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessScopesData {
    pub current_app_installation: AppInstallation,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppInstallation {
    pub access_scopes: Vec<AccessScope>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessScope {
    pub handle: String,
}

/// One webhook subscription as `setup shopify` reads it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GqlWebhookSubscription {
    pub id: String,
    /// `WebhookSubscriptionTopic`, e.g. `ORDERS_CREATE`.
    pub topic: String,
    pub uri: String,
    /// `JSON` or `XML`.
    pub format: String,
}

/// `data` of WebhookSubscriptions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSubscriptionsData {
    pub webhook_subscriptions: Nodes<GqlWebhookSubscription>,
}

/// A mutation's `userErrors` entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UserError {
    #[serde(default)]
    pub field: Option<Vec<String>>,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionPayload {
    #[serde(default)]
    pub webhook_subscription: Option<GqlWebhookSubscription>,
    #[serde(default)]
    pub user_errors: Vec<UserError>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletePayload {
    #[serde(default)]
    pub deleted_webhook_subscription_id: Option<String>,
    #[serde(default)]
    pub user_errors: Vec<UserError>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionCreateData {
    pub webhook_subscription_create: SubscriptionPayload,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionUpdateData {
    pub webhook_subscription_update: SubscriptionPayload,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionDeleteData {
    pub webhook_subscription_delete: DeletePayload,
}

/// A webhook topic as `WebhookSubscriptionTopic` spells it: `orders/partially_fulfilled` →
/// `ORDERS_PARTIALLY_FULFILLED`.
pub fn subscription_topic(topic: super::payload::Topic) -> String {
    topic.as_str().replace('/', "_").to_ascii_uppercase()
}

/// `data` of OrdersByName and OrdersUpdatedSince.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrdersData {
    pub orders: Nodes<GqlOrder>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Money {
    pub amount: String,
    pub currency_code: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MoneyBag {
    pub shop_money: Money,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GqlAddress {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub zip: Option<String>,
    #[serde(default)]
    pub country_code_v2: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GqlEmail {
    pub email_address: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GqlPhone {
    pub phone_number: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GqlCustomer {
    pub id: String,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    /// `Customer.locale` (`String!`: the language the customer chose in the shop, else the
    /// shop's primary one; `es`, `es-MX`: shopify.dev/changelog "Locale fields are now appended
    /// with language and country codes", 2021-12-10).
    #[serde(default)]
    pub locale: Option<String>,
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub default_email_address: Option<GqlEmail>,
    #[serde(default)]
    pub default_phone_number: Option<GqlPhone>,
    #[serde(default)]
    pub default_address: Option<GqlAddress>,
    /// `addressesV2` (Shopify deprecated the `addresses` list in favour of this connection).
    #[serde(default, rename = "addressesV2")]
    pub addresses_v2: Option<Nodes<GqlAddress>>,
    /// Present in CustomersByPhone only: the customer's most recent orders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orders: Option<Nodes<GqlOrder>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GqlLineItem {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub variant_title: Option<String>,
    #[serde(default)]
    pub sku: Option<String>,
    pub quantity: i64,
    #[serde(default)]
    pub original_unit_price_set: Option<MoneyBag>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GqlTrackingInfo {
    #[serde(default)]
    pub company: Option<String>,
    #[serde(default)]
    pub number: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GqlFulfillment {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub display_status: Option<String>,
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub in_transit_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub delivered_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub estimated_delivery_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub tracking_info: Vec<GqlTrackingInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GqlRefund {
    pub id: String,
    /// Nullable in the Admin schema (`Refund.createdAt: DateTime`).
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub total_refunded_set: Option<MoneyBag>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GqlLineItems {
    pub nodes: Vec<GqlLineItem>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GqlCustomerRef {
    pub id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GqlOrder {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    /// `Order.customerLocale`: the language the order was placed in (nullable).
    #[serde(default)]
    pub customer_locale: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub cancelled_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub cancel_reason: Option<String>,
    #[serde(default)]
    pub closed_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub display_financial_status: Option<String>,
    #[serde(default)]
    pub display_fulfillment_status: Option<String>,
    #[serde(default)]
    pub total_price_set: Option<MoneyBag>,
    #[serde(default)]
    pub shipping_address: Option<GqlAddress>,
    #[serde(default)]
    pub billing_address: Option<GqlAddress>,
    pub line_items: GqlLineItems,
    #[serde(default)]
    pub fulfillments: Vec<GqlFulfillment>,
    #[serde(default)]
    pub refunds: Vec<GqlRefund>,
    /// Newest first in the paged documents; every return, as lines of their own, in bulk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub returns: Option<super::returns::NodeList<super::returns::GqlReturn>>,
    /// `OrderReturnStatus` (NO_RETURN, RETURN_REQUESTED, IN_PROGRESS, INSPECTION_COMPLETE,
    /// RETURNED, RETURN_FAILED): INSPECTION_COMPLETE says the returned items arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_status: Option<String>,
    /// The full customer (OrdersByName, OrdersUpdatedSince) or absent (inside CustomersByPhone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<GqlCustomer>,
}

/// A node whose ID or shape cannot become a record.
#[derive(Debug, thiserror::Error)]
#[error("unexpected GraphQL node: {0}")]
pub struct NodeError(String);

fn id_of(gid: &str) -> Result<ShopifyId, NodeError> {
    ShopifyId::parse(gid).ok_or_else(|| NodeError(format!("not a Shopify ID: {gid:?}")))
}

pub fn gid(kind: &str, id: ShopifyId) -> String {
    format!("gid://shopify/{kind}/{id}")
}

fn lower(s: &Option<String>) -> Option<String> {
    s.as_ref().map(|s| s.to_ascii_lowercase())
}

fn address_from(a: &GqlAddress) -> Result<ShopifyAddress, NodeError> {
    Ok(ShopifyAddress {
        id: a.id.as_deref().map(id_of).transpose()?,
        phone: a.phone.clone(),
        zip: a.zip.clone(),
        country_code: a.country_code_v2.clone(),
    })
}

fn address_to(a: &ShopifyAddress, kind: Option<&str>) -> GqlAddress {
    GqlAddress {
        id: match (kind, a.id) {
            (Some(kind), Some(id)) => Some(format!("{}?model_name={kind}", gid("MailingAddress", id))),
            _ => None,
        },
        phone: a.phone.clone(),
        zip: a.zip.clone(),
        country_code_v2: a.country_code.clone(),
    }
}

impl GqlCustomer {
    pub fn to_record(&self) -> Result<ShopifyCustomer, NodeError> {
        Ok(ShopifyCustomer {
            id: id_of(&self.id)?,
            first_name: self.first_name.clone(),
            last_name: self.last_name.clone(),
            email: self.default_email_address.as_ref().map(|e| e.email_address.clone()),
            phone: self.default_phone_number.as_ref().map(|p| p.phone_number.clone()),
            state: lower(&self.state),
            locale: self.locale.clone(),
            created_at: self.created_at,
            updated_at: Some(self.updated_at),
            default_address: self.default_address.as_ref().map(address_from).transpose()?,
            addresses: self.addresses_v2.iter().flat_map(|a| &a.nodes).map(address_from).collect::<Result<_, _>>()?,
            addresses_omitted: false,
        })
    }

    /// The node Shopify would return for `c` (used by the emulator). `c` must have `updated_at`.
    pub fn from_record(c: &ShopifyCustomer) -> GqlCustomer {
        GqlCustomer {
            id: gid("Customer", c.id),
            first_name: c.first_name.clone(),
            last_name: c.last_name.clone(),
            state: c.state.as_ref().map(|s| s.to_ascii_uppercase()),
            // Never null at Shopify (`String!`): a customer who chose no language has the shop's
            // primary one, `en` in the emulated shop (whose seeded customers all carry theirs).
            locale: Some(c.locale.clone().unwrap_or_else(|| "en".into())),
            created_at: c.created_at,
            updated_at: c.updated_at.unwrap_or_default(),
            default_email_address: c.email.clone().map(|email_address| GqlEmail { email_address }),
            default_phone_number: c.phone.clone().map(|phone_number| GqlPhone { phone_number }),
            default_address: c.default_address.as_ref().map(|a| address_to(a, Some("CustomerAddress"))),
            // Every address: the executor keeps the `first` a document asks (`addressesV2(first: 3)`),
            // a bulk query takes them all.
            addresses_v2: Some(Nodes {
                nodes: c.addresses.iter().map(|a| address_to(a, Some("CustomerAddress"))).collect(),
                page_info: None,
            }),
            orders: None,
        }
    }
}

impl GqlOrder {
    /// The order as the apply path takes it. `customer` is the full customer when the node
    /// carries one (OrdersByName, OrdersUpdatedSince), or the owner the node was found under.
    pub fn to_record(&self, owner: Option<&ShopifyCustomer>) -> Result<ShopifyOrder, NodeError> {
        let customer = match &self.customer {
            Some(c) => Some(c.to_record()?),
            None => owner.cloned(),
        };
        let total = self.total_price_set.as_ref().map(|m| &m.shop_money);
        Ok(ShopifyOrder {
            id: id_of(&self.id)?,
            name: self.name.clone(),
            // GraphQL `name` is prefix + order number + suffix; REST sends `order_number` apart.
            order_number: order_number_in(&self.name).map(|(n, _, _)| n),
            email: self.email.clone(),
            phone: self.phone.clone(),
            customer_locale: self.customer_locale.clone(),
            customer,
            financial_status: lower(&self.display_financial_status),
            // Stored as REST says it (see `fulfillment_status_from_display`); a value this build
            // does not know is stored as nothing rather than as a word REST never sends.
            fulfillment_status: self
                .display_fulfillment_status
                .as_deref()
                .and_then(|d| fulfillment_status_from_display(d).ok().flatten())
                .map(str::to_string),
            cancelled_at: self.cancelled_at,
            cancel_reason: lower(&self.cancel_reason),
            closed_at: self.closed_at,
            total_price: total.map(|m| m.amount.clone()),
            currency: total.map(|m| m.currency_code.clone()),
            billing_address: self.billing_address.as_ref().map(address_from).transpose()?,
            shipping_address: self.shipping_address.as_ref().map(address_from).transpose()?,
            created_at: self.created_at,
            updated_at: self.updated_at,
            line_items: self
                .line_items
                .nodes
                .iter()
                .map(|l| {
                    Ok(ShopifyLineItem {
                        id: id_of(&l.id)?,
                        title: l.title.clone(),
                        variant_title: l.variant_title.clone(),
                        sku: l.sku.clone(),
                        quantity: l.quantity,
                        price: l.original_unit_price_set.as_ref().map(|m| m.shop_money.amount.clone()),
                        fulfillment_status: None,
                    })
                })
                .collect::<Result<_, NodeError>>()?,
            fulfillments: self
                .fulfillments
                .iter()
                .map(|f| {
                    let tracking = f.tracking_info.first();
                    let shipment = match f.display_status.as_deref().map(ShipmentStatus::from_display_status) {
                        Some(DisplayStatus::Shipment(s)) => Some(s.as_str().to_string()),
                        Some(DisplayStatus::NoShipmentStatus | DisplayStatus::Unknown) | None => None,
                    };
                    Ok(ShopifyFulfillment {
                        id: id_of(&f.id)?,
                        order_id: id_of(&self.id)?,
                        status: Some(f.status.to_ascii_lowercase()),
                        shipment_status: shipment,
                        tracking_company: tracking.and_then(|t| t.company.clone()),
                        tracking_number: tracking.and_then(|t| t.number.clone()),
                        tracking_url: tracking.and_then(|t| t.url.clone()),
                        created_at: f.created_at,
                        updated_at: f.updated_at,
                        in_transit_at: f.in_transit_at,
                        delivered_at: f.delivered_at,
                        estimated_delivery_at: f.estimated_delivery_at,
                    })
                })
                .collect::<Result<_, NodeError>>()?,
            refunds: self
                .refunds
                .iter()
                .map(|r| {
                    let money = r.total_refunded_set.as_ref().map(|m| &m.shop_money);
                    Ok(ShopifyRefund {
                        id: id_of(&r.id)?,
                        order_id: id_of(&self.id)?,
                        note: r.note.clone(),
                        created_at: r.created_at,
                        processed_at: None,
                        transactions: money
                            .map(|m| ShopifyTransaction {
                                kind: Some("refund".into()),
                                status: Some("success".into()),
                                amount: Some(m.amount.clone()),
                                currency: Some(m.currency_code.clone()),
                            })
                            .into_iter()
                            .collect(),
                    })
                })
                .collect::<Result<_, NodeError>>()?,
            returns: self
                .returns
                .iter()
                .flat_map(|r| &r.nodes)
                .map(|r| {
                    let received = self.return_status.as_deref() == Some("INSPECTION_COMPLETE");
                    r.to_record(id_of(&self.id)?, received)
                        .ok_or_else(|| NodeError(format!("not a Shopify ID: {:?}", r.id)))
                })
                .collect::<Result<_, NodeError>>()?,
            // The document asks for `lineItems(first: LINE_ITEMS)`: a full page may have left some out.
            truncated: Truncated { line_items: self.line_items.nodes.len() >= LINE_ITEMS },
        })
    }

    /// The node Shopify would return for `o` (used by the emulator). With `with_customer`, the
    /// order carries its full customer (OrdersByName, OrdersUpdatedSince).
    pub fn from_record(o: &ShopifyOrder, with_customer: bool) -> GqlOrder {
        let money = |amount: &Option<String>| {
            amount.as_ref().map(|amount| MoneyBag {
                shop_money: Money {
                    amount: amount.clone(),
                    currency_code: o.currency.clone().unwrap_or_else(|| "USD".into()),
                },
            })
        };
        GqlOrder {
            id: gid("Order", o.id),
            name: o.name.clone(),
            email: o.email.clone(),
            phone: o.phone.clone(),
            customer_locale: o.customer_locale.clone(),
            created_at: o.created_at,
            updated_at: o.updated_at,
            cancelled_at: o.cancelled_at,
            cancel_reason: o.cancel_reason.as_ref().map(|s| s.to_ascii_uppercase()),
            closed_at: o.closed_at,
            display_financial_status: o.financial_status.as_ref().map(|s| s.to_ascii_uppercase()),
            display_fulfillment_status: Some(match o.fulfillment_status.as_deref() {
                None => "UNFULFILLED".into(),
                Some("partial") => "PARTIALLY_FULFILLED".into(),
                Some(other) => other.to_ascii_uppercase(),
            }),
            total_price_set: money(&o.total_price),
            shipping_address: o.shipping_address.as_ref().map(|a| address_to(a, None)),
            billing_address: o.billing_address.as_ref().map(|a| address_to(a, None)),
            line_items: GqlLineItems {
                // Every line item (the executor keeps `lineItems(first: 5)`; a bulk query takes all).
                nodes: o
                    .line_items
                    .iter()
                    .map(|l| GqlLineItem {
                        id: gid("LineItem", l.id),
                        title: l.title.clone(),
                        variant_title: l.variant_title.clone(),
                        sku: l.sku.clone(),
                        quantity: l.quantity,
                        original_unit_price_set: money(&l.price),
                    })
                    .collect(),
            },
            fulfillments: o
                .fulfillments
                .iter()
                .take(3)
                .map(|f| GqlFulfillment {
                    id: gid("Fulfillment", f.id),
                    status: f.status.clone().unwrap_or_else(|| "success".into()).to_ascii_uppercase(),
                    display_status: Some(
                        match f.shipment_status.as_deref().and_then(ShipmentStatus::parse) {
                            Some(s) => s.display_status(),
                            None if f.status.as_deref() == Some("cancelled") => "CANCELED",
                            None => "FULFILLED",
                        }
                        .to_string(),
                    ),
                    created_at: f.created_at,
                    updated_at: f.updated_at,
                    in_transit_at: f.in_transit_at,
                    delivered_at: f.delivered_at,
                    estimated_delivery_at: f.estimated_delivery_at,
                    tracking_info: if f.tracking_company.is_some() || f.tracking_number.is_some() {
                        vec![GqlTrackingInfo {
                            company: f.tracking_company.clone(),
                            number: f.tracking_number.clone(),
                            url: f.tracking_url.clone(),
                        }]
                    } else {
                        Vec::new()
                    },
                })
                .collect(),
            refunds: o
                .refunds
                .iter()
                .take(3)
                .map(|r| GqlRefund {
                    id: gid("Refund", r.id),
                    created_at: r.created_at,
                    note: r.note.clone(),
                    total_refunded_set: r.amount().map(|amount| MoneyBag {
                        shop_money: Money {
                            amount,
                            currency_code: r.currency().or_else(|| o.currency.clone()).unwrap_or_else(|| "USD".into()),
                        },
                    }),
                })
                .collect(),
            // In the order they were requested, as Shopify lists a connection; the emulator's
            // executor applies `reverse` (orderline asks `returns(first: 1, reverse: true)`).
            returns: Some(super::returns::NodeList {
                nodes: o.returns.iter().map(super::returns::GqlReturn::from_record).collect(),
            }),
            return_status: Some(super::returns::order_return_status(&o.returns).to_string()),
            customer: if with_customer { o.customer.as_ref().map(GqlCustomer::from_record) } else { None },
        }
    }
}

/// Shopify search syntax for "changed at or after `since`": `updated_at:>='2026-11-02T15:15:03Z'`.
pub fn updated_since_query(since: DateTime<Utc>) -> String {
    format!("updated_at:>='{}'", since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// Shopify search syntax for a customer phone: `phone:+15551234567`.
pub fn phone_query(e164: &str) -> String {
    format!("phone:{e164}")
}

/// Shopify search syntax for an order name: `name:#1042`.
pub fn order_name_query(name: &str) -> String {
    format!("name:{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> ShopifyOrder {
        let path = format!("{}/tests/fixtures/shopify/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn an_order_survives_the_graphql_round_trip() {
        let order = fixture("order_fulfilled.json");
        let node = GqlOrder::from_record(&order, true);
        let json = serde_json::to_string(&node).unwrap();
        let back: GqlOrder = serde_json::from_str(&json).unwrap();
        let record = back.to_record(None).unwrap();
        assert_eq!(record.id, order.id);
        assert_eq!(record.name, order.name);
        assert_eq!(record.updated_at, order.updated_at);
        assert_eq!(record.financial_status, order.financial_status);
        assert_eq!(record.fulfillment_status, order.fulfillment_status);
        assert_eq!(record.customer.as_ref().unwrap().id, order.customer.as_ref().unwrap().id);
        assert_eq!(record.customer.as_ref().unwrap().phone, order.customer.as_ref().unwrap().phone);
        let (f, g) = (&record.fulfillments[0], &order.fulfillments[0]);
        assert_eq!(
            (&f.shipment_status, &f.tracking_company, &f.tracking_number, &f.tracking_url, f.updated_at),
            (&g.shipment_status, &g.tracking_company, &g.tracking_number, &g.tracking_url, g.updated_at)
        );
        assert_eq!(record.refunds[0].amount(), order.refunds[0].amount());
        assert_eq!(record.shipping_address.as_ref().unwrap().phone, order.shipping_address.as_ref().unwrap().phone);
    }

    #[test]
    fn statuses_map_to_the_rest_words() {
        let mut order = fixture("order_create.json");
        order.fulfillment_status = None;
        let node = GqlOrder::from_record(&order, false);
        assert_eq!(node.display_fulfillment_status.as_deref(), Some("UNFULFILLED"));
        assert_eq!(node.to_record(None).unwrap().fulfillment_status, None);
        order.fulfillment_status = Some("partial".into());
        let node = GqlOrder::from_record(&order, false);
        assert_eq!(node.display_fulfillment_status.as_deref(), Some("PARTIALLY_FULFILLED"));
        assert_eq!(node.to_record(None).unwrap().fulfillment_status.as_deref(), Some("partial"));
    }

    #[test]
    fn queries_use_shopify_search_syntax() {
        let t = DateTime::parse_from_rfc3339("2026-11-02T10:15:03-05:00").unwrap().with_timezone(&Utc);
        assert_eq!(updated_since_query(t), "updated_at:>='2026-11-02T15:15:03Z'");
        assert_eq!(phone_query("+15551234567"), "phone:+15551234567");
        assert_eq!(order_name_query("#1042"), "name:#1042");
        for op in Operation::ALL {
            let changes = op.name().starts_with("WebhookSubscription") && op != Operation::WebhookSubscriptions
                || op == Operation::BulkRunQuery;
            let keyword = if changes { "mutation" } else { "query" };
            assert!(op.document().starts_with(&format!("{keyword} {}", op.name())), "{}", op.name());
            assert_eq!(Operation::parse(op.name()), Some(op));
        }
    }
}
