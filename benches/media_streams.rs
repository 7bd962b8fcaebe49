//! Media Streams benchmark: `BENCH_STREAMS` (500) calls at once in Media Streams mode
//! (ORDERLINE_PROMPT_MODE=media_stream) against `orderline serve` on Postgres, all from the demo
//! shop's known caller (Dana, +15551234567). Each call is answered `<Connect><Stream>`; a lean
//! client per stream opens the WebSocket, sends `connected` and `start`, streams inbound silence
//! every 20 ms as Twilio does (`BENCH_SILENCE`, 1; 0 turns it off), and records when each audio
//! frame of the first prompt (greeting, order status, menu: 986 frames, 19.7 s) arrives. At the
//! prompt's mark (or after `BENCH_SECONDS`, 20, enough for that prompt and its mark) it sends
//! `stop` and closes. Streams start
//! spread evenly over `BENCH_RAMP_MS` (2000).
//!
//! Reports first audio (`start` sent → first `media` frame), playback underruns (the client plays
//! what it has queued in order, as Twilio does, and counts each time it runs dry before the next
//! audio arrives; ORDERLINE_MEDIA_LEAD's lead arrives first, in one message), frame jitter at the
//! client over the paced frames after the lead (|t_i − t_0 − i·20 ms|; again against each
//! stream's earliest frame, and how many streams' first frame came late, which moves a whole
//! stream's figures) and inter-arrival gaps, the server's own `media_frame_lag_seconds` and
//! `media_first_audio_seconds` histograms from /metrics, and the server's CPU time. Targets: 500
//! concurrent calls on 2 cores with frame jitter p99 < 5 ms and first audio p99 < 50 ms. Reports;
//! exits non-zero only when streams fail (no connection, no audio, a frame not 160 bytes).
//!
//! `cargo bench --bench media_streams`; `ORDERLINE_TEST_POSTGRES`, `BENCH_STREAMS`,
//! `BENCH_RAMP_MS`, `BENCH_SECONDS`, `BENCH_SILENCE`.

mod support;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::Utc;
use futures::StreamExt;
use orderline::shopify::payload::ShopifyChange;
use orderline::shopify::writes::writes;
use orderline::sim::media::{StreamSocket, connect_stream, connected, send, silence_frame, start, stream_of};
use orderline::sim::shopify::{ShopifySim, SimConfig};
use orderline::sim::twilio::{ACCOUNT_SID, CallerConfig, TwilioCaller};
use orderline::speech::FRAME_BYTES;
use orderline::store::{Store, Ts};
use orderline::twilio::media::protocol::{FromTwilio, Stop, ToTwilio};
use support::{PgDatabase, Server, number, percentile};
use tokio_tungstenite::tungstenite::Message;

const TOKEN: &str = "bench-twilio-token";
const SHOP: &str = "orderline-demo.myshopify.com";
/// The demo shop's known caller: Dana Whitfield, an order in transit.
const CALLER: &str = "+15551234567";
/// One frame of audio.
const FRAME: Duration = Duration::from_millis(20);
/// Longest the WebSocket handshake may take.
const CONNECT_LIMIT: Duration = Duration::from_secs(10);
/// After `stop`, how long the close handshake may take.
const CLOSE_LIMIT: Duration = Duration::from_secs(2);
const JITTER_TARGET: Duration = Duration::from_millis(5);
const FIRST_AUDIO_TARGET: Duration = Duration::from_millis(50);

fn start_server(db_url: &str) -> Result<Server, String> {
    support::serve(&[
        ("DATABASE_URL", db_url.to_string()),
        ("TWILIO_AUTH_TOKEN", TOKEN.to_string()),
        ("SHOPIFY_SHOP", SHOP.to_string()),
        ("ORDERLINE_VERIFY", "none".to_string()),
        ("ORDERLINE_PROMPT_MODE", "media_stream".to_string()),
    ])
}

/// What one stream saw.
#[derive(Default)]
struct Outcome {
    /// When `start` was sent.
    started: Option<Instant>,
    /// When the stream was closed.
    ended: Option<Instant>,
    /// `start` sent → the first `media` frame.
    first_audio: Option<Duration>,
    /// When each paced `media` frame arrived (the lead, sent at once in one message, apart).
    arrivals: Vec<Instant>,
    /// Frames in the first message: ORDERLINE_MEDIA_LEAD's worth, sent at once.
    lead_frames: usize,
    /// Messages whose payload was not whole 160-byte frames of base64.
    bad_frames: u64,
    /// Times the modelled playback (Twilio plays what it has queued, in order) ran dry before
    /// the next audio arrived, after the first.
    underruns: u64,
    /// When the queued audio runs out.
    played_until: Option<Instant>,
    /// The first prompt's mark, when it came.
    mark: Option<String>,
    /// Orderline closed the stream before the mark.
    closed_early: bool,
    /// Couldn't dial in or connect, or the stream broke.
    error: Option<String>,
}

impl Outcome {
    fn failed(&self) -> bool {
        self.error.is_some() || self.arrivals.is_empty() || self.bad_frames > 0
    }
}

/// What every stream shares.
struct Plan {
    base_url: String,
    twilio: TwilioCaller,
    /// Identifies this run in the CallSids and StreamSids.
    run: u64,
    /// Longest a stream lasts after `start`.
    limit: Duration,
    silence: bool,
}

/// One call: dial in at `at`, run the stream until the first prompt's mark (or the limit).
async fn stream(plan: Arc<Plan>, index: usize, at: Instant) -> Outcome {
    tokio::time::sleep_until(at.into()).await;
    let mut outcome = Outcome::default();
    if let Err(e) = run_stream(&plan, index, &mut outcome).await {
        outcome.error = Some(e);
    }
    outcome.ended.get_or_insert_with(Instant::now);
    outcome
}

async fn run_stream(plan: &Plan, index: usize, outcome: &mut Outcome) -> Result<(), String> {
    let call_sid = format!("CA{:016x}{index:016x}", plan.run);
    let stream_sid = format!("MZ{:016x}{index:016x}", plan.run);
    let voice_url = format!("{}/twilio/voice", plan.base_url);
    let turn = plan
        .twilio
        .post(&voice_url, &plan.twilio.base_params(&call_sid, "ringing"))
        .await
        .map_err(|e| format!("POST /twilio/voice: {e}"))?;
    if turn.status != 200 {
        return Err(format!("POST /twilio/voice answered HTTP {}", turn.status));
    }
    let document = orderline::twilio::twiml::parse(&turn.body).map_err(|e| format!("the answer is not TwiML: {e}"))?;
    let Some((url, parameters)) = stream_of(&document, &voice_url) else {
        return Err(format!("the answer has no <Connect><Stream>: {}", turn.body));
    };
    if !url.starts_with("ws://127.0.0.1:") {
        return Err(format!("the stream URL {url} is not on 127.0.0.1"));
    }
    let mut socket = tokio::time::timeout(CONNECT_LIMIT, connect_stream(&url, TOKEN))
        .await
        .map_err(|_| format!("the WebSocket handshake took longer than {CONNECT_LIMIT:?}"))?
        .map_err(|e| format!("connecting the stream: {e}"))?;
    send(&mut socket, &connected()).await.map_err(|e| e.to_string())?;
    send(&mut socket, &start(&stream_sid, &call_sid, &parameters)).await.map_err(|e| e.to_string())?;
    let started = Instant::now();
    outcome.started = Some(started);
    let result = listen(plan, &mut socket, &stream_sid, started, outcome).await;
    // Hang up as Twilio does, whatever happened; orderline may have closed the socket already.
    let stop = FromTwilio::Stop {
        sequence_number: None,
        stream_sid: stream_sid.clone(),
        stop: Stop { account_sid: ACCOUNT_SID.into(), call_sid },
    };
    let _ = send(&mut socket, &stop).await;
    let _ = socket.close(None).await;
    outcome.ended = Some(Instant::now());
    let _ = tokio::time::timeout(CLOSE_LIMIT, async { while let Some(Ok(_)) = socket.next().await {} }).await;
    result
}

/// Reads the first prompt, frame by frame, until its mark, the close, or the limit.
async fn listen(
    plan: &Plan,
    socket: &mut StreamSocket,
    stream_sid: &str,
    started: Instant,
    outcome: &mut Outcome,
) -> Result<(), String> {
    outcome.arrivals.reserve(1000);
    let limit = tokio::time::sleep_until((started + plan.limit).into());
    tokio::pin!(limit);
    let mut silence = tokio::time::interval_at((started + FRAME).into(), FRAME);
    silence.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut chunk = 0u64;
    loop {
        tokio::select! {
            message = socket.next() => {
                let now = Instant::now();
                let text = match message {
                    None | Some(Ok(Message::Close(_))) => {
                        outcome.closed_early = true;
                        return Ok(());
                    }
                    Some(Err(e)) => return Err(format!("the stream broke: {e}")),
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(_)) => continue,
                };
                match serde_json::from_str::<ToTwilio>(text.as_str()) {
                    Ok(ToTwilio::Media { media, .. }) => {
                        let bytes = BASE64.decode(media.payload).map_or(0, |audio| audio.len());
                        if bytes == 0 || bytes % FRAME_BYTES != 0 {
                            outcome.bad_frames += 1;
                        }
                        let frames = bytes.div_ceil(FRAME_BYTES).max(1);
                        let first = outcome.played_until.is_none();
                        if first {
                            outcome.first_audio = Some(now - started);
                        }
                        if outcome.played_until.is_some_and(|until| now > until) {
                            outcome.underruns += 1;
                        }
                        let from = outcome.played_until.map_or(now, |until| until.max(now));
                        outcome.played_until = Some(from + FRAME * frames as u32);
                        if first && frames > 1 {
                            outcome.lead_frames = frames;
                        } else {
                            outcome.arrivals.push(now);
                        }
                    }
                    Ok(ToTwilio::Mark { mark, .. }) => {
                        outcome.mark = Some(mark.name);
                        return Ok(());
                    }
                    Ok(ToTwilio::Clear { .. }) => {}
                    Err(e) => return Err(format!("orderline sent {text}: {e}")),
                }
            }
            _ = silence.tick(), if plan.silence => {
                chunk += 1;
                let message = silence_frame(stream_sid, chunk, started.elapsed());
                send(socket, &message).await.map_err(|e| format!("sending silence: {e}"))?;
            }
            _ = &mut limit => return Ok(()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The server's own view: histograms from /metrics

/// A Prometheus histogram: cumulative counts by upper bound.
#[derive(Default)]
struct Histogram {
    count: f64,
    sum: f64,
    buckets: Vec<(f64, f64)>,
}

impl Histogram {
    /// `name`'s `_bucket`, `_sum` and `_count` lines in a text exposition.
    fn parse(text: &str, name: &str) -> Option<Histogram> {
        let mut histogram = Histogram::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else { continue };
            let Ok(value) = value.trim().parse::<f64>() else { continue };
            let Some(rest) = series.strip_prefix(name) else { continue };
            if rest == "_sum" {
                histogram.sum = value;
            } else if rest == "_count" {
                histogram.count = value;
            } else if let Some(le) = rest.strip_prefix("_bucket{le=\"").and_then(|l| l.strip_suffix("\"}")) {
                let bound = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
                histogram.buckets.push((bound, value));
            }
        }
        histogram.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        (!histogram.buckets.is_empty()).then_some(histogram)
    }

    /// Quantile `q`, interpolated linearly inside its bucket (as Prometheus' histogram_quantile
    /// does), with the bucket's upper bound; in seconds.
    fn quantile(&self, q: f64) -> Option<(f64, f64)> {
        let total = self.buckets.last()?.1;
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let (mut lower, mut below) = (0.0, 0.0);
        for &(bound, count) in &self.buckets {
            if count >= rank {
                if bound.is_infinite() {
                    return Some((lower, bound));
                }
                let within = if count > below { (rank - below) / (count - below) } else { 1.0 };
                return Some((lower + (bound - lower) * within, bound));
            }
            (lower, below) = (bound, count);
        }
        None
    }

    fn describe(&self, q: f64) -> String {
        match self.quantile(q) {
            Some((_, bound)) if bound.is_infinite() => {
                let largest = self.buckets.iter().rev().find(|(b, _)| b.is_finite()).map_or(0.0, |(b, _)| *b);
                format!("> {:.2} ms (past the largest bucket)", largest * 1e3)
            }
            Some((estimate, bound)) => format!("≈{:.2} ms (bucket ≤ {:.2} ms)", estimate * 1e3, bound * 1e3),
            None => "-".into(),
        }
    }
}

/// `name{label="value"} n` lines of a counter family, by label value.
fn counters(text: &str, name: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix('{')?;
            let (labels, value) = rest.rsplit_once("} ")?;
            let label = labels.split_once("=\"").map_or(labels, |(_, v)| v.trim_end_matches('"'));
            Some((label.to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// CPU time from /proc

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// User + system CPU seconds of a process (all its threads), from `/proc/PID/stat`.
fn cpu_seconds(pid: &str, ticks: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: count fields after the last `)`.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // Fields 14 (utime) and 15 (stime); the first after `)` is field 3.
    let user: f64 = fields.get(14 - 3)?.parse().ok()?;
    let system: f64 = fields.get(15 - 3)?.parse().ok()?;
    Some((user + system) / ticks)
}

// ---------------------------------------------------------------------------------------------
// Figures

fn ms(d: Option<Duration>) -> f64 {
    d.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
}

fn verdict(value: Option<Duration>, target: Duration) -> &'static str {
    match value {
        Some(v) if v < target => "met",
        Some(_) => "missed",
        None => "unknown",
    }
}

/// A histogram's quantile against a target: by the interpolated estimate; past the largest
/// bucket it is only known to be above that bucket's bound.
/// One of the server's histograms, its p50 and p99, and the verdict on its p99.
fn report_histogram(metrics: &str, what: &str, name: &str, counted: &str, target: Duration) {
    match Histogram::parse(metrics, name) {
        Some(h) => println!(
            "{what} ({name}, {} {counted}, mean {:.3} ms): p50 {}, p99 {}  [target p99 < {} ms: {}]",
            h.count,
            h.sum / h.count.max(1.0) * 1e3,
            h.describe(0.5),
            h.describe(0.99),
            target.as_millis(),
            server_verdict(&h, 0.99, target)
        ),
        None => println!("{what}: /metrics has no {name}"),
    }
}

fn server_verdict(histogram: &Histogram, q: f64, target: Duration) -> &'static str {
    match histogram.quantile(q) {
        Some((lower, bound)) if bound.is_infinite() && lower >= target.as_secs_f64() => "missed",
        Some((_, bound)) if bound.is_infinite() => "unknown",
        Some((estimate, _)) => verdict(Some(Duration::from_secs_f64(estimate)), target),
        None => "unknown",
    }
}

/// p50 / p99 / max of sorted durations, in ms.
fn spread(sorted: &[Duration]) -> String {
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(percentile(sorted, 0.5)),
        ms(percentile(sorted, 0.99)),
        ms(percentile(sorted, 1.0))
    )
}

async fn run() -> Result<(), String> {
    let admin = support::admin_url();
    let streams = number("BENCH_STREAMS", 500).max(1) as usize;
    let ramp = Duration::from_millis(number("BENCH_RAMP_MS", 2000));
    let seconds = number("BENCH_SECONDS", 20).max(1);
    let silence = number("BENCH_SILENCE", 1) != 0;

    let db = PgDatabase::create(&admin, "bench").await?;
    let sim = ShopifySim::new(SimConfig::default());
    sim.seed_demo();
    let store = Store::connect_with(&db.url, 4).await.map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    let mut changes: Vec<ShopifyChange> =
        sim.customers().into_iter().map(|c| ShopifyChange::Customer(Box::new(c))).collect();
    changes.extend(sim.orders().into_iter().map(|o| ShopifyChange::Order(Box::new(o))));
    store.apply_all(SHOP, &writes(changes), "US", Ts::from(Utc::now())).await.map_err(|e| e.to_string())?;
    let customers = store.customer_count(SHOP).await.map_err(|e| e.to_string())?;
    if !sim.customers().iter().any(|c| c.phone.as_deref() == Some(CALLER)) {
        return Err(format!("the demo shop has no customer {CALLER}"));
    }

    let server = start_server(&db.url)?;
    let server_pid = server.pid().to_string();
    println!(
        "media_streams: {streams} streams from {CALLER} ({customers} demo customers), started over {} ms, \
         each until its first prompt's mark or {seconds} s; inbound silence {}; orderline serve at {} (pid {server_pid})",
        ramp.as_millis(),
        if silence { "on" } else { "off" },
        server.url
    );
    let plan = Arc::new(Plan {
        base_url: server.url.clone(),
        twilio: TwilioCaller::new(CallerConfig::new(&server.url, TOKEN, CALLER)),
        run: support::unix_millis(),
        limit: Duration::from_secs(seconds),
        silence,
    });

    let ticks = clock_ticks();
    let server_cpu_before = cpu_seconds(&server_pid, ticks);
    let client_cpu_before = cpu_seconds("self", ticks);
    let began = Instant::now();
    let zero = began + Duration::from_millis(100);
    let tasks: Vec<_> = (0..streams)
        .map(|i| {
            let at = zero + ramp.mul_f64(i as f64 / streams as f64);
            tokio::spawn(stream(plan.clone(), i, at))
        })
        .collect();
    let mut outcomes = Vec::with_capacity(streams);
    for task in tasks {
        outcomes.push(task.await.map_err(|e| format!("a stream task failed: {e}"))?);
    }
    let wall = began.elapsed();
    let server_cpu = server_cpu_before.zip(cpu_seconds(&server_pid, ticks)).map(|(a, b)| b - a);
    let client_cpu = client_cpu_before.zip(cpu_seconds("self", ticks)).map(|(a, b)| b - a);
    // Let the server finish the sessions' ends before reading its metrics.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let metrics = match reqwest::get(format!("{}/metrics", server.url)).await {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(e) => {
            eprintln!("GET /metrics: {e}");
            String::new()
        }
    };
    drop(server);
    store.close().await;

    // ---- the client's view ----
    let mut first_audio: Vec<Duration> = outcomes.iter().filter_map(|o| o.first_audio).collect();
    let mut jitter: Vec<Duration> = Vec::new();
    let mut lateness: Vec<Duration> = Vec::new();
    // Streams whose first paced frame came later than the target behind their earliest frame's
    // schedule, with their first audio: every later frame of theirs counts that much "early".
    let mut late_first: Vec<Duration> = Vec::new();
    let mut gaps: Vec<Duration> = Vec::new();
    let mut frames: Vec<usize> = Vec::new();
    for o in &outcomes {
        let Some(&t0) = o.arrivals.first() else { continue };
        frames.push(o.arrivals.len());
        // Each frame's offset from the schedule the first frame sets: t_i − t_0 − i·20 ms.
        let offsets: Vec<i128> = o
            .arrivals
            .iter()
            .enumerate()
            .map(|(i, t)| t.duration_since(t0).as_nanos() as i128 - (FRAME * i as u32).as_nanos() as i128)
            .collect();
        jitter.extend(offsets.iter().map(|d| Duration::from_nanos(d.unsigned_abs() as u64)));
        let earliest = offsets.iter().copied().min().unwrap_or(0);
        lateness.extend(offsets.iter().map(|d| Duration::from_nanos((d - earliest) as u64)));
        if Duration::from_nanos(earliest.unsigned_abs() as u64) > JITTER_TARGET {
            late_first.extend(o.first_audio);
        }
        gaps.extend(o.arrivals.windows(2).map(|w| w[1].duration_since(w[0])));
    }
    first_audio.sort_unstable();
    jitter.sort_unstable();
    lateness.sort_unstable();
    late_first.sort_unstable();
    gaps.sort_unstable();
    frames.sort_unstable();
    let starts: Vec<Instant> = outcomes.iter().filter_map(|o| o.started).collect();
    let start_spread = starts.iter().max().zip(starts.iter().min()).map(|(last, first)| *last - *first);
    // The most streams open at once, between `start` sent and the close.
    let mut edges: Vec<(Instant, i64)> =
        outcomes.iter().filter_map(|o| Some([(o.started?, 1), (o.ended?, -1)])).flatten().collect();
    edges.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let peak = edges.iter().scan(0i64, |open, (_, d)| {
        *open += d;
        Some(*open)
    });
    let peak = peak.max().unwrap_or(0);
    let mut marks: BTreeMap<&str, usize> = BTreeMap::new();
    for o in &outcomes {
        *marks.entry(o.mark.as_deref().unwrap_or("(none)")).or_default() += 1;
    }
    let errors: Vec<&str> = outcomes.iter().filter_map(|o| o.error.as_deref()).collect();
    let no_audio = outcomes.iter().filter(|o| o.error.is_none() && o.arrivals.is_empty()).count();
    let with_bad_frames = outcomes.iter().filter(|o| o.bad_frames > 0).count();
    let bad_frames: u64 = outcomes.iter().map(|o| o.bad_frames).sum();
    let failed = outcomes.iter().filter(|o| o.failed()).count();
    let timed_out = outcomes
        .iter()
        .filter(|o| o.error.is_none() && o.started.is_some() && o.mark.is_none() && !o.closed_early)
        .count();
    let closed_early = outcomes.iter().filter(|o| o.closed_early).count();
    let underruns: u64 = outcomes.iter().map(|o| o.underruns).sum();
    let with_underruns = outcomes.iter().filter(|o| o.underruns > 0).count();
    let mut leads: Vec<usize> = outcomes.iter().map(|o| o.lead_frames).collect();
    leads.sort_unstable();

    println!(
        "{} of {streams} streams started (spread over {:.0} ms), at most {peak} open at once, {:.1} s in all",
        starts.len(),
        ms(start_spread),
        wall.as_secs_f64()
    );
    println!(
        "first prompt: {} ended by their mark ({}), {timed_out} ran out of time, {closed_early} closed by orderline first",
        streams - marks.get("(none)").copied().unwrap_or(0),
        marks.iter().map(|(m, n)| format!("{m} × {n}")).collect::<Vec<_>>().join(", ")
    );
    println!(
        "frames per stream: min {}, p50 {}, max {} ({} frames in all); frames not 160 bytes: {bad_frames}",
        frames.first().copied().unwrap_or(0),
        frames.get(frames.len() / 2).copied().unwrap_or(0),
        frames.last().copied().unwrap_or(0),
        jitter.len()
    );
    println!(
        "lead sent at once: {} ms (p50 of streams); playback underruns (client model: queued audio ran out before the next arrived): {underruns} in {with_underruns} streams  [target 0]",
        leads.get(leads.len() / 2).copied().unwrap_or(0) * 20
    );
    let first_p99 = percentile(&first_audio, 0.99);
    println!(
        "first audio (start sent → first media frame, client): {}  [target p99 < {} ms: {}]",
        spread(&first_audio),
        FIRST_AUDIO_TARGET.as_millis(),
        verdict(first_p99, FIRST_AUDIO_TARGET)
    );
    let jitter_p99 = percentile(&jitter, 0.99);
    println!(
        "frame jitter (client, |t_i − t_0 − i·20 ms|, every frame): {}  [target p99 < {} ms: {}]",
        spread(&jitter),
        JITTER_TARGET.as_millis(),
        verdict(jitter_p99, JITTER_TARGET)
    );
    println!(
        "  the same against each stream's earliest frame instead of its first (a late first frame set aside): {}",
        spread(&lateness)
    );
    println!(
        "  streams whose first paced frame was more than {} ms late on that schedule: {}{}",
        JITTER_TARGET.as_millis(),
        late_first.len(),
        if late_first.is_empty() { String::new() } else { format!(" (their first audio: {})", spread(&late_first)) }
    );
    println!(
        "inter-arrival gap − 20 ms (client): p50 {:+.2} ms, p99 {:+.2} ms, max {:+.2} ms",
        ms(percentile(&gaps, 0.5)) - 20.0,
        ms(percentile(&gaps, 0.99)) - 20.0,
        ms(percentile(&gaps, 1.0)) - 20.0
    );

    // ---- the server's view ----
    report_histogram(&metrics, "server frame lag", "orderline_media_frame_lag_seconds", "frames", JITTER_TARGET);
    report_histogram(
        &metrics,
        "server first audio",
        "orderline_media_first_audio_seconds",
        "streams",
        FIRST_AUDIO_TARGET,
    );
    let ended = counters(&metrics, "orderline_media_streams_ended_total");
    if !ended.is_empty() {
        let ended: Vec<String> = ended.iter().map(|(end, n)| format!("{end} {n}")).collect();
        println!("server streams ended: {}", ended.join(", "));
    }
    let per_core = |cpu: Option<f64>| cpu.map_or(f64::NAN, |c| c / wall.as_secs_f64() * 100.0);
    println!(
        "CPU during the run ({:.1} s): server {:.2} s user+sys ({:.0}% of one core), this client {:.2} s ({:.0}%); {} cores",
        wall.as_secs_f64(),
        server_cpu.unwrap_or(f64::NAN),
        per_core(server_cpu),
        client_cpu.unwrap_or(f64::NAN),
        per_core(client_cpu),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "targets: {streams} concurrent calls on 2 cores (client included), frame jitter p99 < {} ms, first audio p99 < {} ms (the server's figures interpolated in their buckets)",
        JITTER_TARGET.as_millis(),
        FIRST_AUDIO_TARGET.as_millis()
    );
    println!(
        "failures: {failed} streams ({} could not connect or broke, {no_audio} got no audio, {with_bad_frames} had frames not 160 bytes)",
        errors.len()
    );
    let mut distinct: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &errors {
        *distinct.entry(e).or_default() += 1;
    }
    for (e, n) in distinct.iter().take(5) {
        println!("  {n} × {e}");
    }
    if failed > 0 {
        return Err(format!("{failed} of {streams} streams failed"));
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let limit = Duration::from_secs(120 + number("BENCH_SECONDS", 20) + number("BENCH_RAMP_MS", 2000) / 1000);
    support::main_with_limit("media_streams", limit, run()).await
}
