//! The incoming-call bench's callgrind mode (see the bench's top comment): the server under
//! valgrind's callgrind, instrumentation switched on only around a fixed number of calls, and the
//! bare axum floor it is compared with. Counts instructions; never times anything.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use super::support::{self, PgDatabase, Server, number};
use super::{Conn, SERVER_BIN, seed, server_env, wait_recorded, wait_warm};

/// The argument that makes this bench's binary the bare floor server instead.
pub const FLOOR_ARG: &str = "--bare-floor-server";

/// Where the dumps go (kept for `callgrind_annotate`).
const OUT_DIR: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/callgrind");

pub fn wanted() -> bool {
    std::env::var("BENCH_CALLGRIND").is_ok_and(|v| v.trim() == "1")
}

pub async fn run() -> Result<(), String> {
    let admin = support::admin_url();
    let customers = number("BENCH_CUSTOMERS", 500);
    let warmup = number("BENCH_CALLGRIND_WARMUP", 100);
    let calls = number("BENCH_CALLGRIND_CALLS", 500);
    std::fs::create_dir_all(OUT_DIR).map_err(|e| format!("{OUT_DIR}: {e}"))?;
    let db = PgDatabase::create(&admin, "bench").await?;
    let (store, phones) = seed(&db, customers).await?;

    let args = valgrind_args(SERVER_BIN, &["serve"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = support::serve_with("valgrind", &args, &server_env(&db.url, customers))?;
    wait_warm(&server, phones.len(), Duration::from_secs(900)).await?;
    calls_on_one_connection(&server, &phones, "w", warmup).await?;
    wait_all_recorded(&store, warmup as i64).await?;
    let (orderline, dump) = measure(&server, async {
        calls_on_one_connection(&server, &phones, "m", calls).await?;
        wait_all_recorded(&store, (warmup + calls) as i64).await?;
        // The agent feed reads each call's card after its record is written.
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok(())
    })
    .await?;
    drop(server);
    store.close().await;
    report("orderline /twilio/voice", orderline, calls, &dump);

    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let args = valgrind_args(&exe.to_string_lossy(), &[FLOOR_ARG]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let floor_server = support::serve_with("valgrind", &args, &[])?;
    calls_on_one_connection(&floor_server, &phones, "fw", warmup).await?;
    let (floor, floor_dump) =
        measure(&floor_server, calls_on_one_connection(&floor_server, &phones, "fm", calls)).await?;
    report("bare axum floor", floor, calls, &floor_dump);
    println!("orderline / floor: {:.1}×", orderline as f64 / floor.max(1) as f64);
    Ok(())
}

fn valgrind_args(program: &str, args: &[&str]) -> Vec<String> {
    let mut all = vec![
        "--tool=callgrind".to_string(),
        "--instr-atstart=no".to_string(),
        format!("--callgrind-out-file={OUT_DIR}/callgrind.out.%p"),
        program.to_string(),
    ];
    all.extend(args.iter().map(|a| a.to_string()));
    all
}

/// `count` signed incoming calls one after another on one keep-alive connection.
async fn calls_on_one_connection(
    server: &Server,
    phones: &Arc<Vec<String>>,
    run: &str,
    count: u64,
) -> Result<(), String> {
    let addr = server.url.trim_start_matches("http://");
    let mut conn = Conn::open(addr).await?;
    let run = format!("{:x}{run}", support::unix_millis() % 0xffff_ffff);
    for i in 0..count {
        let phone = &phones[(i as usize * 7919) % phones.len()];
        conn.call(&format!("CA{run}{i:020}"), phone).await?;
    }
    Ok(())
}

async fn wait_all_recorded(store: &orderline::store::Store, expected: i64) -> Result<(), String> {
    let recorded = wait_recorded(store, expected, Duration::from_secs(300)).await?;
    if recorded < expected {
        return Err(format!("only {recorded} of {expected} calls were recorded"));
    }
    Ok(())
}

/// Runs `window` with callgrind's instrumentation on; returns the instructions counted in it
/// (every thread) and the dump's path.
async fn measure(server: &Server, window: impl Future<Output = Result<(), String>>) -> Result<(u64, PathBuf), String> {
    let pid = server.pid().to_string();
    callgrind_control(&["-i", "on", &pid])?;
    window.await?;
    callgrind_control(&["-i", "off", &pid])?;
    callgrind_control(&["--dump", &pid])?;
    let dump = newest_dump(&pid)?;
    let text = std::fs::read_to_string(&dump).map_err(|e| format!("{}: {e}", dump.display()))?;
    let total = text
        .lines()
        .find_map(|l| l.strip_prefix("totals:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or(format!("no total in {}", dump.display()))?;
    Ok((total, dump))
}

fn callgrind_control(args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new("callgrind_control")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run callgrind_control: {e}"))?;
    if !out.status.success() {
        return Err(format!("callgrind_control {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr)));
    }
    Ok(())
}

/// The last dump callgrind wrote for `pid` (`callgrind.out.PID.N`, N counting up).
fn newest_dump(pid: &str) -> Result<PathBuf, String> {
    let prefix = format!("callgrind.out.{pid}.");
    let dumps = std::fs::read_dir(OUT_DIR).map_err(|e| format!("{OUT_DIR}: {e}"))?;
    dumps
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| {
            let n = p.file_name()?.to_str()?.strip_prefix(&prefix)?.parse::<u32>().ok()?;
            Some((n, p))
        })
        .max_by_key(|(n, _)| *n)
        .map(|(_, p)| p)
        .ok_or(format!("callgrind wrote no dump for {pid} in {OUT_DIR}"))
}

fn report(name: &str, total: u64, calls: u64, dump: &Path) {
    println!(
        "{name:<26} {:>10} instructions per call ({total} over {calls} calls; {})",
        total / calls.max(1),
        dump.display()
    );
}

/// The floor: a plain axum handler reading the body and answering a static TwiML document.
pub async fn serve_floor() -> ExitCode {
    use axum::routing::post;
    const TWIML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Gather input=\"dtmf\" numDigits=\"1\">\
        <Say>Your order number 1001 has shipped.</Say></Gather></Response>";
    let app = axum::Router::new().route(
        "/twilio/voice",
        post(|_body: String| async { ([(axum::http::header::CONTENT_TYPE, "text/xml; charset=utf-8")], TWIML) }),
    );
    let Ok(listener) = tokio::net::TcpListener::bind("127.0.0.1:0").await else { return ExitCode::FAILURE };
    let Ok(addr) = listener.local_addr() else { return ExitCode::FAILURE };
    println!("orderline listening on http://{addr}");
    match axum::serve(listener, app).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}
