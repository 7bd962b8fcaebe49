//! The agent feed: call events (started, step, verified, transferred, ended) as JSON, pushed to
//! every connected agent. Fed by the store's call notices, which on Postgres reach every
//! instance (LISTEN/NOTIFY), so an agent connected anywhere sees calls answered anywhere.

use std::sync::Arc;

use futures::SinkExt;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Serialize;
use tokio::sync::{Semaphore, broadcast};

use super::AgentDesk;
use super::auth::{Access, SESSION_COOKIE, check_origin, cookie, require_agent, session_hash};
use super::card::{CallCard, call_card};
use crate::store::Ts;

/// How far back a connecting agent's catch-up reaches, and how many calls it holds.
const CATCH_UP_HOURS: i64 = 4;
const CATCH_UP_CALLS: i64 = 50;
/// How often a console session's feed checks that the session is still live (logout, expiry):
/// an ended session's feed is closed within this.
const SESSION_RECHECK: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Clone)]
pub struct AgentFeed {
    /// Each event serialized once; every agent's socket shares the same bytes.
    sender: broadcast::Sender<Utf8Bytes>,
    seq: Arc<AtomicU64>,
}

/// One message per call per change: `type` is the latest of what happened (`started`, `step`,
/// `verified`, `transferred`, `ended`), `types` all of it in order, `call` the card after it.
#[derive(Serialize)]
struct FeedEvent<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    types: &'a [String],
    seq: u64,
    emitted_at: chrono::DateTime<Utc>,
    call: &'a CallCard,
}

#[derive(Serialize)]
struct Snapshot {
    #[serde(rename = "type")]
    kind: &'static str,
    calls: Vec<CallCard>,
}

impl Default for AgentFeed {
    fn default() -> Self {
        AgentFeed::new()
    }
}

impl AgentFeed {
    pub fn new() -> AgentFeed {
        let (sender, _) = broadcast::channel(4096);
        AgentFeed { sender, seq: Arc::new(AtomicU64::new(0)) }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Utf8Bytes> {
        self.sender.subscribe()
    }

    /// Turns the store's call notices into feed events, for as long as the store lives. Up to
    /// `READ_AHEAD` notices have their cards read at once; events still go out in notice order.
    pub async fn run(self, desk: AgentDesk) {
        use futures::StreamExt;
        const READ_AHEAD: usize = 16;
        let notices = futures::stream::unfold(desk.store.subscribe_calls(), |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(changes) => return Some((changes, rx)),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "agent feed fell behind the call notices");
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        let desk = &desk;
        let sender = &self.sender;
        let read = notices
            .map(|changes| async move {
                // With no agent connected nobody would read the cards: they are not built. An agent
                // who connects after this check still sees the call, in the snapshot it reads after
                // subscribing (the notice comes after the write).
                if sender.receiver_count() == 0 {
                    return (changes, Vec::new());
                }
                let cards = futures::future::join_all(changes.calls.iter().map(|c| call_card(desk, &c.call_sid))).await;
                (changes, cards)
            })
            .buffered(READ_AHEAD);
        let mut read = std::pin::pin!(read);
        while let Some((changes, cards)) = read.next().await {
            for (change, card) in changes.calls.iter().zip(cards) {
                let card = match card {
                    Ok(Some(card)) => card,
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "agent feed: cannot read a call");
                        continue;
                    }
                };
                let Some(kind) = change.kinds.last() else { continue };
                self.emit(kind, &change.kinds, &card);
            }
        }
    }

    fn emit(&self, kind: &str, types: &[String], card: &CallCard) {
        let event = FeedEvent {
            kind,
            types,
            seq: self.seq.fetch_add(1, Ordering::SeqCst) + 1,
            emitted_at: Utc::now(),
            call: card,
        };
        if let Ok(json) = serde_json::to_string(&event) {
            // No agent connected is not an error.
            let _ = self.sender.send(Utf8Bytes::from(json));
        }
    }
}

/// `GET /agent/feed`: the WebSocket. First a snapshot of the calls of the last hours (in
/// progress and recently ended), then every event as it happens.
pub async fn feed(
    ws: WebSocketUpgrade,
    State(desk): State<AgentDesk>,
    State(feed): State<AgentFeed>,
    State(slots): State<Arc<Semaphore>>,
    headers: HeaderMap,
) -> Response {
    // A WebSocket is not covered by the browser's same-origin rules: a page on another origin
    // (even another port of this host, which SameSite counts as the same site) could open it
    // with the agent's cookie. Browser sessions must come from the console's origin.
    let access = match require_agent(&desk, &headers).await {
        Ok(access) => access,
        Err(refused) => return refused.into_response(),
    };
    if let Err(refused) = check_origin(&desk, &headers, access) {
        tracing::warn!("agent feed refused: a browser session from another origin");
        return refused.into_response();
    }
    let session = match (access, desk.settings.agents.agent_token.as_ref(), cookie(&headers, SESSION_COOKIE)) {
        (Access::Session, Some(token), Some(session)) => Some(session_hash(token, session)),
        _ => None,
    };
    // Capped, with a small read buffer (agents send next to nothing; tungstenite's default is
    // 128 KiB a socket), messages from the agent bounded to 4 KiB (the console sends none, only
    // pongs; tungstenite would otherwise buffer up to 64 MiB) and pings that a live console
    // answers, so the transport's idle timeout ends only dead ones.
    let Ok(slot) = slots.try_acquire_owned() else {
        tracing::warn!("agent feed refused: ORDERLINE_MAX_FEED_CLIENTS are connected");
        return (axum::http::StatusCode::SERVICE_UNAVAILABLE, "too many agent feed connections\n").into_response();
    };
    ws.read_buffer_size(4096).max_message_size(4096).max_frame_size(4096).on_upgrade(move |socket| async move {
        serve(socket, desk, feed, session).await;
        drop(slot);
    })
}

/// True while the console session (by its stored hash) is live; a bearer feed has none to end.
async fn session_is_live(desk: &AgentDesk, session: Option<&str>) -> bool {
    let Some(session) = session else { return true };
    let now = Ts::from(desk.clock.now());
    // A store that does not answer is not a logout: the feed goes on until it can tell.
    desk.store.session_is_live(session, now).await.unwrap_or(true)
}

async fn serve(mut socket: WebSocket, desk: AgentDesk, feed: AgentFeed, session: Option<String>) {
    // Subscribe before reading the snapshot, so nothing falls between the two.
    let mut events = feed.subscribe();
    if send_snapshot(&mut socket, &desk).await.is_err() {
        return;
    }
    let mut ping = tokio::time::interval(desk.settings.transport.idle_timeout / 3);
    let mut recheck = tokio::time::interval(SESSION_RECHECK);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ping.tick() => {
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
            _ = recheck.tick(), if session.is_some() => {
                if !session_is_live(&desk, session.as_deref()).await {
                    tracing::info!("agent feed closed: its console session has ended");
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
            }
            event = events.recv() => match event {
                Ok(json) => {
                    // Queue what else is already waiting, then write it all with one flush.
                    let mut batch = vec![json];
                    while batch.len() < 64 {
                        match events.try_recv() {
                            Ok(json) => batch.push(json),
                            Err(_) => break,
                        }
                    }
                    for json in batch {
                        if socket.feed(Message::Text(json)).await.is_err() {
                            return;
                        }
                    }
                    if socket.flush().await.is_err() {
                        return;
                    }
                }
                // Too slow to keep up: start again from the current state.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    if send_snapshot(&mut socket, &desk).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

async fn send_snapshot(socket: &mut WebSocket, desk: &AgentDesk) -> Result<(), axum::Error> {
    let calls = snapshot(desk).await;
    let json = serde_json::to_string(&Snapshot { kind: "snapshot", calls }).unwrap_or_default();
    socket.send(Message::Text(json.into())).await
}

async fn snapshot(desk: &AgentDesk) -> Vec<CallCard> {
    let shop = desk.settings.shopify.shop.clone().unwrap_or_default();
    let since = Ts::from(desk.clock.now() - chrono::Duration::hours(CATCH_UP_HOURS));
    let sids = match desk.store.recent_calls(&shop, since, CATCH_UP_CALLS).await {
        Ok(sids) => sids,
        Err(e) => {
            tracing::warn!(error = %e, "agent feed: cannot read recent calls");
            return Vec::new();
        }
    };
    let mut cards = Vec::with_capacity(sids.len());
    for sid in sids {
        if let Ok(Some(card)) = call_card(desk, &sid).await {
            cards.push(card);
        }
    }
    cards
}
