//! Prometheus metrics: requests by method and code, a latency histogram per
//! method, rate-limit rejections and open connections. Counters are atomics in
//! fixed arrays indexed by method, so the hot path takes no lock.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::error::Code;

/// Upper bounds in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];
const CODES: usize = Code::ALL.len() + 1; // + "ok"

struct MethodStats {
    by_code: [AtomicU64; CODES],
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl MethodStats {
    fn new() -> Self {
        MethodStats {
            by_code: std::array::from_fn(|_| AtomicU64::new(0)),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }
}

pub struct Metrics {
    /// The method names, by index (the method table's order).
    names: Vec<&'static str>,
    /// One per method, plus one for paths that are no method.
    methods: Vec<MethodStats>,
    pub rate_limited: AtomicU64,
    pub open_connections: AtomicI64,
    /// Connections closed at rest to make room at the connection cap.
    pub shed_connections: AtomicU64,
    /// Sticky resolves answered from the binding cache, and read from SQL.
    pub resolve_cache: [AtomicU64; 2],
    pub gateway: GatewayStats,
}

/// Why a gateway connection got no tunnel, as the `reason` label.
pub const GATEWAY_FAILURES: [&str; 6] = [
    "login",
    "resolve",
    "upstream_connect",
    "upstream_timeout",
    "upstream_refused",
    "bad_request",
];

/// The proxy gateway's counters (`src/gateway/`).
pub struct GatewayStats {
    pub open: AtomicI64,
    pub established: AtomicU64,
    pub failed: [AtomicU64; GATEWAY_FAILURES.len()],
    /// Bytes (to upstream, to client) by pool id (base64): a handful of
    /// pools, added to once per tunnel when it closes.
    pub bytes: parking_lot::Mutex<std::collections::BTreeMap<String, (u64, u64)>>,
}

impl GatewayStats {
    /// Counts a failure; `reason` is one of `GATEWAY_FAILURES`.
    pub fn failed(&self, reason: &str) {
        if let Some(i) = GATEWAY_FAILURES.iter().position(|r| *r == reason) {
            self.failed[i].fetch_add(1, Relaxed);
        }
    }
    pub fn add_bytes(&self, pool: String, up: u64, down: u64) {
        let mut m = self.bytes.lock();
        let e = m.entry(pool).or_default();
        e.0 += up;
        e.1 += down;
    }
}

impl Metrics {
    /// Counters for the methods `names` (index i is method i).
    pub fn new(names: Vec<&'static str>) -> Self {
        Metrics {
            methods: (0..=names.len()).map(|_| MethodStats::new()).collect(),
            names,
            rate_limited: AtomicU64::new(0),
            open_connections: AtomicI64::new(0),
            shed_connections: AtomicU64::new(0),
            resolve_cache: Default::default(),
            gateway: GatewayStats {
                open: AtomicI64::new(0),
                established: AtomicU64::new(0),
                failed: std::array::from_fn(|_| AtomicU64::new(0)),
                bytes: Default::default(),
            },
        }
    }
}

fn code_index(code: Option<Code>) -> usize {
    match code {
        None => 0,
        Some(c) => 1 + Code::ALL.iter().position(|x| *x == c).unwrap_or(0),
    }
}

impl Metrics {
    /// `method`: index into the names, or None for an unknown path.
    pub fn record(&self, method: Option<usize>, code: Option<Code>, elapsed: Duration) {
        let unknown = self.names.len();
        let m = &self.methods[method.unwrap_or(unknown).min(unknown)];
        m.by_code[code_index(code)].fetch_add(1, Relaxed);
        let secs = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            m.buckets[i].fetch_add(1, Relaxed);
        }
        m.count.fetch_add(1, Relaxed);
        m.sum_micros.fetch_add(elapsed.as_micros() as u64, Relaxed);
    }

    /// A refusal by a rate limiter, counted where it happens: other
    /// resource_exhausted answers (a body over the limit) are not one.
    pub fn rate_limited(&self, retry_after: u64) -> crate::error::Error {
        self.rate_limited.fetch_add(1, Relaxed);
        crate::error::Error::rate_limited(retry_after)
    }

    /// The Prometheus text exposition; `sessions` are (state, count) pairs.
    pub fn render(&self, sessions: &[(&str, i64)]) -> String {
        let mut s = String::new();
        self.render_requests(&mut s);
        self.render_latency(&mut s);
        family(
            &mut s,
            "proxyplane_rate_limited_total",
            "counter",
            "Requests refused by a rate limiter.",
        );
        line(
            &mut s,
            format_args!(
                "proxyplane_rate_limited_total {}",
                self.rate_limited.load(Relaxed)
            ),
        );
        family(
            &mut s,
            "proxyplane_open_connections",
            "gauge",
            "Open HTTP connections.",
        );
        line(
            &mut s,
            format_args!(
                "proxyplane_open_connections {}",
                self.open_connections.load(Relaxed)
            ),
        );
        family(
            &mut s,
            "proxyplane_shed_connections_total",
            "counter",
            "Connections at rest closed to admit new ones at the connection cap.",
        );
        line(
            &mut s,
            format_args!(
                "proxyplane_shed_connections_total {}",
                self.shed_connections.load(Relaxed)
            ),
        );
        family(
            &mut s,
            "proxyplane_resolve_cache_total",
            "counter",
            "ResolveProxy reads of a standing binding, from the binding cache (hit) or SQL (miss).",
        );
        for (result, n) in ["hit", "miss"].iter().zip(&self.resolve_cache) {
            line(
                &mut s,
                format_args!(
                    "proxyplane_resolve_cache_total{{result=\"{result}\"}} {}",
                    n.load(Relaxed)
                ),
            );
        }
        family(&mut s, "proxyplane_sessions", "gauge", "Sessions by state.");
        for (state, n) in sessions {
            line(
                &mut s,
                format_args!("proxyplane_sessions{{state=\"{state}\"}} {n}"),
            );
        }
        self.render_gateway(&mut s);
        s
    }

    fn render_gateway(&self, s: &mut String) {
        let g = &self.gateway;
        family(
            s,
            "proxyplane_gateway_tunnels_open",
            "gauge",
            "Open gateway tunnels.",
        );
        line(
            s,
            format_args!("proxyplane_gateway_tunnels_open {}", g.open.load(Relaxed)),
        );
        family(
            s,
            "proxyplane_gateway_tunnels_established_total",
            "counter",
            "Gateway tunnels established through an upstream.",
        );
        line(
            s,
            format_args!(
                "proxyplane_gateway_tunnels_established_total {}",
                g.established.load(Relaxed)
            ),
        );
        family(
            s,
            "proxyplane_gateway_tunnels_failed_total",
            "counter",
            "Gateway connections that got no tunnel, by reason.",
        );
        for (i, r) in GATEWAY_FAILURES.iter().enumerate() {
            line(
                s,
                format_args!(
                    "proxyplane_gateway_tunnels_failed_total{{reason=\"{r}\"}} {}",
                    g.failed[i].load(Relaxed)
                ),
            );
        }
        family(
            s,
            "proxyplane_gateway_bytes_total",
            "counter",
            "Bytes through gateway tunnels by pool and direction (up: to the upstream).",
        );
        for (pool, (up, down)) in g.bytes.lock().iter() {
            line(
                s,
                format_args!(
                    "proxyplane_gateway_bytes_total{{pool=\"{pool}\",direction=\"up\"}} {up}"
                ),
            );
            line(
                s,
                format_args!(
                    "proxyplane_gateway_bytes_total{{pool=\"{pool}\",direction=\"down\"}} {down}"
                ),
            );
        }
    }

    fn name(&self, i: usize) -> &'static str {
        self.names.get(i).copied().unwrap_or("unknown")
    }

    fn render_requests(&self, s: &mut String) {
        family(
            s,
            "proxyplane_requests_total",
            "counter",
            "Requests by method and Connect code.",
        );
        for (i, m) in self.methods.iter().enumerate() {
            for (ci, c) in m.by_code.iter().enumerate() {
                let n = c.load(Relaxed);
                if n > 0 {
                    let code = if ci == 0 {
                        "ok"
                    } else {
                        Code::ALL[ci - 1].as_str()
                    };
                    line(
                        s,
                        format_args!(
                            "proxyplane_requests_total{{method=\"{}\",code=\"{code}\"}} {n}",
                            self.name(i)
                        ),
                    );
                }
            }
        }
    }

    fn render_latency(&self, s: &mut String) {
        family(
            s,
            "proxyplane_request_duration_seconds",
            "histogram",
            "Request latency by method.",
        );
        for (i, m) in self.methods.iter().enumerate() {
            let count = m.count.load(Relaxed);
            if count == 0 {
                continue;
            }
            let name = self.name(i);
            let mut cum = 0;
            for (b, n) in BUCKETS.iter().zip(&m.buckets) {
                cum += n.load(Relaxed);
                line(
                    s,
                    format_args!(
                        "proxyplane_request_duration_seconds_bucket{{method=\"{name}\",le=\"{b}\"}} {cum}"
                    ),
                );
            }
            line(
                s,
                format_args!(
                    "proxyplane_request_duration_seconds_bucket{{method=\"{name}\",le=\"+Inf\"}} {count}"
                ),
            );
            line(
                s,
                format_args!(
                    "proxyplane_request_duration_seconds_sum{{method=\"{name}\"}} {}",
                    m.sum_micros.load(Relaxed) as f64 / 1e6
                ),
            );
            line(
                s,
                format_args!(
                    "proxyplane_request_duration_seconds_count{{method=\"{name}\"}} {count}"
                ),
            );
        }
    }
}

/// The HELP and TYPE lines of a metric family.
fn family(s: &mut String, name: &str, kind: &str, help: &str) {
    line(s, format_args!("# HELP {name} {help}"));
    line(s, format_args!("# TYPE {name} {kind}"));
}

fn line(s: &mut String, args: std::fmt::Arguments<'_>) {
    // Writing to a String cannot fail.
    s.write_fmt(args).ok();
    s.push('\n');
}
