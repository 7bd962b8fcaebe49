//! `GET /api/customers?phone=…`: the caller lookup for an agent's CRM (outbound or transferred
//! calls). IDs are strings in the JSON, so JavaScript never rounds them.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::AgentDesk;
use super::auth::require_bearer;
use crate::lookup::{CallerAnswer, CallerId, CallerRecord};

#[derive(Deserialize)]
pub struct PhoneQuery {
    phone: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CallerJson {
    pub phone: Option<String>,
    pub source: &'static str,
    pub stale: bool,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub customers: Vec<CustomerJson>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CustomerJson {
    pub id: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub orders: Vec<OrderJson>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OrderJson {
    pub id: String,
    pub name: String,
    pub financial_status: Option<&'static str>,
    pub fulfillment_status: Option<&'static str>,
    pub cancelled: bool,
    pub created_at: Option<DateTime<Utc>>,
    pub total_price: Option<String>,
    pub currency: Option<String>,
    pub refunds: u16,
    pub fulfillments: Vec<FulfillmentJson>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FulfillmentJson {
    pub status: Option<&'static str>,
    pub shipment_status: Option<&'static str>,
    pub tracking_company: Option<String>,
    pub tracking_number: Option<String>,
    pub tracking_url: Option<String>,
}

fn text(t: &Option<Box<str>>) -> Option<String> {
    t.as_deref().map(str::to_string)
}

pub fn customers_json(record: &CallerRecord) -> Vec<CustomerJson> {
    record
        .customers
        .iter()
        .map(|c| CustomerJson {
            id: c.id.to_string(),
            first_name: text(&c.first_name),
            last_name: text(&c.last_name),
            email: text(&c.email),
            orders: c
                .orders
                .iter()
                .map(|o| OrderJson {
                    id: o.id.to_string(),
                    name: o.name.to_string(),
                    financial_status: o.financial_status,
                    fulfillment_status: o.fulfillment_status,
                    cancelled: o.cancelled_at.is_some(),
                    created_at: DateTime::from_timestamp_micros(o.created_at),
                    total_price: text(&o.total_price),
                    currency: text(&o.currency),
                    refunds: o.refunds,
                    fulfillments: o
                        .fulfillments
                        .iter()
                        .map(|f| FulfillmentJson {
                            status: f.status,
                            shipment_status: f.shipment_status,
                            tracking_company: text(&f.tracking_company),
                            tracking_number: text(&f.tracking_number),
                            tracking_url: text(&f.tracking_url),
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect()
}

pub fn caller_json(answer: &CallerAnswer) -> CallerJson {
    CallerJson {
        phone: match &answer.caller {
            CallerId::Number(p) => Some(p.as_str().to_string()),
            _ => None,
        },
        source: answer.source.as_str(),
        stale: answer.is_stale(),
        confirmed_at: answer.confirmed_at,
        customers: answer.record.as_deref().map(customers_json).unwrap_or_default(),
    }
}

pub async fn customers_by_phone(
    State(desk): State<AgentDesk>,
    headers: HeaderMap,
    Query(query): Query<PhoneQuery>,
) -> Response {
    if let Err(refused) = require_bearer(desk.settings.agents.agent_token.as_ref(), &headers) {
        return refused.into_response();
    }
    match desk.lookup.lookup(&query.phone).await {
        Ok(answer) => Json(caller_json(&answer)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "lookup failed");
            (StatusCode::SERVICE_UNAVAILABLE, "lookup unavailable: the store did not answer\n").into_response()
        }
    }
}
