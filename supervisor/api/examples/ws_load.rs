//! Load generator for `ci/bench/hearthd.sh`: N WebSocket subscribers on `/ws/db` while
//! `db.put.ui` mutations are applied at a fixed rate; prints the patch latency (time from
//! sending the mutation to each subscriber receiving its patch) and the RPC round trip.
//!
//! `ws_load ADDR LOCAL_COOKIE_FILE SUBSCRIBERS RATE_PER_SEC SECONDS`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn now_us() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_micros(),
    )
    .unwrap()
}

async fn rpc(addr: SocketAddr, local: &str, body: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST /rpc/v1 HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-type: application/json\r\nx-hearth-local-auth: {local}\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let addr: SocketAddr = a[1].parse().unwrap();
    let local = std::fs::read_to_string(&a[2]).unwrap();
    let subscribers: usize = a[3].parse().unwrap();
    let rate: u64 = a[4].parse().unwrap();
    let secs: u64 = a[5].parse().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(addr, local, subscribers, rate, secs));
}

async fn run(addr: SocketAddr, local: String, subscribers: usize, rate: u64, secs: u64) {
    let latencies = Arc::new(Mutex::new(Vec::<u64>::new()));
    let ready = Arc::new(AtomicUsize::new(0));
    let dumps = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..subscribers {
        let (local, lat, ready, dumps) = (
            local.clone(),
            latencies.clone(),
            ready.clone(),
            dumps.clone(),
        );
        tasks.spawn(async move {
            let mut req = format!("ws://{addr}/ws/db").into_client_request().unwrap();
            req.headers_mut()
                .insert("x-hearth-local-auth", local.parse().unwrap());
            let tcp = TcpStream::connect(addr).await.unwrap();
            let (mut ws, _) = tokio_tungstenite::client_async(req, tcp).await.unwrap();
            let mut mine = Vec::new();
            while let Some(Ok(msg)) = ws.next().await {
                let Message::Text(t) = msg else { continue };
                let now = now_us();
                // Cheap scan instead of a full JSON parse: the generator must not be the
                // bottleneck. Frames are `{"rev":N,"value":…}` (dump) or
                // `{"rev":N,"patch":[…"value":TIMESTAMP…]}`.
                let t = t.as_str();
                if t.contains("\"value\":{") && !t.contains("\"patch\"") {
                    if dumps.fetch_add(1, Ordering::Relaxed) < subscribers {
                        ready.fetch_add(1, Ordering::Relaxed);
                    }
                    continue;
                }
                if t.contains("/ui/stop") {
                    break;
                }
                for part in t.split("\"value\":").skip(1) {
                    let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
                    if let Ok(sent) = digits.parse::<u64>() {
                        mine.push(now.saturating_sub(sent));
                    }
                }
            }
            lat.lock().await.extend(mine);
        });
    }
    let t = Instant::now();
    while ready.load(Ordering::Relaxed) < subscribers {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "subscribers did not connect"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "subscribers connected: {subscribers} in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    println!("READY");
    // Open loop on its own thread and runtime: one mutation per tick, each on its own
    // connection, so neither a slow reply nor the 1,000 subscriber tasks delay the next.
    let mutator_local = local.clone();
    let (sent, mut rtts, elapsed) = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut inflight = tokio::task::JoinSet::new();
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let started = Instant::now();
            let mut sent = 0u64;
            while started.elapsed() < Duration::from_secs(secs) {
                tick.tick().await;
                let local = mutator_local.clone();
                inflight.spawn(async move {
                    let body = format!(
                        r#"{{"method":"db.put.ui","params":{{"pointer":"/bench","value":{}}}}}"#,
                        now_us()
                    );
                    let t0 = Instant::now();
                    let out = rpc(addr, &local, &body).await;
                    assert!(out.contains("\"revision\""), "{out}");
                    u64::try_from(t0.elapsed().as_micros()).unwrap()
                });
                sent += 1;
            }
            let elapsed = started.elapsed();
            let mut rtts = Vec::new();
            while let Some(r) = inflight.join_next().await {
                rtts.push(r.unwrap());
            }
            (sent, rtts, elapsed)
        })
    })
    .join()
    .unwrap();
    let achieved = sent as f64 / elapsed.as_secs_f64();
    // A new value every time, so that the write is never a no-op (no revision, no patch).
    let stop = format!(
        r#"{{"method":"db.put.ui","params":{{"pointer":"/stop","value":"stop-{}"}}}}"#,
        now_us()
    );
    rpc(addr, &local, &stop).await;
    let drained = tokio::time::timeout(Duration::from_secs(60), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        println!(
            "WARNING: {} subscribers did not see the final patch within 60 s",
            tasks.len()
        );
        tasks.abort_all();
    }
    let mut lat = latencies.lock().await.clone();
    lat.sort_unstable();
    rtts.sort_unstable();
    let expected = sent as usize * subscribers;
    println!(
        "mutations: {sent} ({achieved:.1}/s), patches received: {} of {expected}, extra dumps: {}",
        lat.len(),
        dumps.load(Ordering::Relaxed).saturating_sub(subscribers)
    );
    println!(
        "patch latency ms: p50 {:.2} p99 {:.2} max {:.2}",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0)
    );
    println!(
        "rpc round trip ms: p50 {:.2} p99 {:.2}",
        percentile(&rtts, 0.5),
        percentile(&rtts, 0.99)
    );
    println!(
        "ratio patch p50 / rpc p50: {:.2}",
        percentile(&lat, 0.5) / percentile(&rtts, 0.5)
    );
}
