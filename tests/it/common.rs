//! The harness every integration test uses: start the real `proxyplane`
//! binary on 127.0.0.1:0 in a fresh data dir, talk raw HTTP/1.1 to it over
//! `std::net::TcpStream` (so tests control every byte), and run its CLI.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};

pub const BIN: &str = env!("CARGO_BIN_EXE_proxyplane");
pub const SVC: &str = "/proxies.v1.Proxies/";

/// How long any single read from the server may block before a test fails.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

static DIRS: AtomicUsize = AtomicUsize::new(0);

/// A directory under the system temp dir, removed on drop.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "proxyplane-it-{tag}-{}-{}-{nanos}",
            std::process::id(),
            DIRS.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }

    /// A path inside the dir (not created).
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A `proxyplane` command with every inherited `PROXYPLANE_*` variable
/// removed, so the developer's environment cannot leak into a test.
pub fn command() -> Command {
    let mut c = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("PROXYPLANE_") {
            c.env_remove(k);
        }
    }
    c
}

/// Runs the CLI to completion: `proxyplane --data-dir DIR ARGS...`.
pub fn cli(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = command();
    c.arg("--data-dir").arg(dir).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdin(Stdio::null()).output().expect("run proxyplane")
}

/// stdout of a CLI run that must succeed.
pub fn cli_ok(dir: &Path, args: &[&str]) -> String {
    let out = cli(dir, args, &[]);
    assert!(
        out.status.success(),
        "proxyplane {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// How to launch a server; `Server::start*` are shorthands for it.
pub struct Launch {
    pub env: Vec<(String, String)>,
    pub args: Vec<String>,
    pub config_toml: Option<String>,
    /// The `--listen` flag after `serve`; None passes no flag.
    pub listen: Option<String>,
    /// An existing data dir to use instead of a fresh temp one.
    pub data_dir: Option<PathBuf>,
}

impl Default for Launch {
    fn default() -> Self {
        Launch {
            env: Vec::new(),
            args: Vec::new(),
            config_toml: None,
            listen: Some("127.0.0.1:0".into()),
            data_dir: None,
        }
    }
}

impl Launch {
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }
    pub fn config(mut self, toml: &str) -> Self {
        self.config_toml = Some(toml.into());
        self
    }
    pub fn listen(mut self, addr: Option<&str>) -> Self {
        self.listen = addr.map(str::to_owned);
        self
    }
    pub fn data_dir(mut self, dir: &Path) -> Self {
        self.data_dir = Some(dir.to_owned());
        self
    }

    /// Spawns the server without waiting for it; for tests that expect it to
    /// fail. Returns the child and the temp dir it owns (if any).
    fn spawn(&self) -> (Child, PathBuf, Option<TempDir>) {
        // A scratch dir for the config file and, unless one was given, the
        // data dir (created by the server itself, inside it).
        let scratch = TempDir::new("srv");
        let base = scratch.path.clone();
        let dir = self.data_dir.clone().unwrap_or_else(|| base.join("data"));
        let owned = Some(scratch);
        let mut c = command();
        c.arg("--data-dir").arg(&dir);
        if let Some(toml) = &self.config_toml {
            let file = base.join(format!(
                "config-{}.toml",
                DIRS.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::write(&file, toml).expect("write config");
            c.arg("--config").arg(file);
        }
        c.arg("serve");
        if let Some(l) = &self.listen {
            c.arg("--listen").arg(l);
        }
        c.args(&self.args);
        if !self
            .env
            .iter()
            .any(|(k, _)| k == "PROXYPLANE_RATE_LIMIT_PER_SECOND")
        {
            c.env("PROXYPLANE_RATE_LIMIT_PER_SECOND", "0");
        }
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        (c.spawn().expect("spawn proxyplane"), dir, owned)
    }

    pub fn start(self) -> Server {
        let (mut child, dir, owned) = self.spawn();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        {
            let mut err = child.stderr.take().expect("stderr");
            let buf = stderr.clone();
            std::thread::spawn(move || {
                let mut chunk = [0u8; 4096];
                while let Ok(n) = err.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    buf.lock().unwrap().extend_from_slice(&chunk[..n]);
                }
            });
        }
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut first = String::new();
            let _ = r.read_line(&mut first);
            let _ = tx.send(first);
            // Keep draining so the pipe never fills.
            let _ = io::copy(&mut r, &mut io::sink());
        });
        let first = rx.recv_timeout(IO_TIMEOUT).unwrap_or_default();
        let addr = first
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse::<SocketAddr>().ok());
        let Some(addr) = addr else {
            let _ = child.kill();
            let status = child.wait();
            std::thread::sleep(Duration::from_millis(100));
            panic!(
                "server did not start: first stdout line {first:?}, status {status:?}, stderr:\n{}",
                String::from_utf8_lossy(&stderr.lock().unwrap())
            );
        };
        let admin = std::fs::read_to_string(dir.join("admin.key"))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        Server {
            addr,
            dir,
            admin,
            listening_line: first.trim().to_owned(),
            child: Some(child),
            stderr,
            _owned: owned,
        }
    }

    /// Runs a server that is expected to exit by itself (a refused start):
    /// its exit status and stderr. Fails the test if it is still up after
    /// IO_TIMEOUT.
    pub fn run_to_exit(self) -> (ExitStatus, String) {
        let (mut child, _dir, _owned) = self.spawn();
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                let mut err = String::new();
                let _ = child
                    .stderr
                    .take()
                    .expect("stderr")
                    .read_to_string(&mut err);
                return (status, err);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("server kept running although it should have refused to start");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A running `proxyplane serve`; killed on drop.
pub struct Server {
    pub addr: SocketAddr,
    pub dir: PathBuf,
    /// The ADMIN secret from `<data-dir>/admin.key`.
    pub admin: String,
    pub listening_line: String,
    child: Option<Child>,
    stderr: Arc<Mutex<Vec<u8>>>,
    _owned: Option<TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Server {
    pub fn start() -> Server {
        Launch::default().start()
    }

    pub fn start_with(
        env: &[(&str, &str)],
        extra_args: &[&str],
        config_toml: Option<&str>,
    ) -> Server {
        let mut l = Launch::default();
        for (k, v) in env {
            l = l.env(k, v);
        }
        l.args = extra_args.iter().map(|s| s.to_string()).collect();
        l.config_toml = config_toml.map(str::to_owned);
        l.start()
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// Everything the server wrote to stderr so far (its log).
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Waits (bounded) until the log contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.stderr().contains(needle) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn sigterm(&self) {
        self.signal(libc::SIGTERM);
    }

    pub fn sigint(&self) {
        self.signal(libc::SIGINT);
    }

    fn signal(&self, sig: libc::c_int) {
        let pid = self.pid();
        assert!(pid > 0, "server already reaped");
        // kill(1) rather than libc::kill: the crate forbids unsafe code,
        // tests included.
        let ok = Command::new("kill")
            .args(["-s", &sig.to_string(), &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -s {sig} {pid} failed");
    }

    /// Waits for the process to exit; None if it is still running after
    /// `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut()?;
            if let Some(s) = child.try_wait().expect("wait") {
                self.child = None;
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A fresh keep-alive connection.
    pub fn conn(&self) -> Conn {
        Conn::open(self.addr).expect("connect to server")
    }

    /// A JSON Connect call on a fresh connection.
    pub fn rpc(&self, method: &str, key: &str, body: Value) -> Reply {
        self.conn().rpc(method, key, &body)
    }

    /// A POST with exactly these headers (plus Host and Content-Length).
    pub fn post_raw(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        self.conn()
            .request("POST", path, headers, body)
            .expect("request")
    }

    pub fn get(&self, path_and_query: &str, headers: &[(&str, &str)]) -> Reply {
        self.conn()
            .request("GET", path_and_query, headers, b"")
            .expect("request")
    }

    /// Connect GET of a read-only method with a JSON message
    /// (`encoding=json&message=<percent-encoded>&connect=v1`).
    pub fn connect_get(&self, method: &str, key: &str, body: &Value) -> Reply {
        let q = format!(
            "encoding=json&message={}&connect=v1",
            percent_encode(body.to_string().as_bytes())
        );
        self.get(
            &format!("{SVC}{method}?{q}"),
            &[("Authorization", &bearer(key))],
        )
    }

    /// Creates a workspace with the ADMIN key; returns its id (base64).
    pub fn create_workspace(&self, name: &str) -> String {
        let r = self.rpc("CreateWorkspace", &self.admin, json!({ "name": name }));
        r.ok();
        r.json["workspace"]["id"]
            .as_str()
            .expect("workspace id")
            .to_owned()
    }

    /// Creates a key of `role` (e.g. "VIEWER") in `workspace` with the ADMIN
    /// key; returns (key id, secret).
    pub fn create_key(&self, workspace: &str, role: &str) -> (String, String) {
        let r = self.rpc(
            "CreateApiKey",
            &self.admin,
            json!({ "workspaceId": workspace, "name": format!("{role} key"), "role": format!("API_KEY_ROLE_{role}") }),
        );
        r.ok();
        (
            r.json["apiKey"]["id"].as_str().expect("key id").to_owned(),
            r.json["secret"].as_str().expect("secret").to_owned(),
        )
    }

    /// A new workspace and a key of `role` in it: (workspace id, secret).
    pub fn workspace_with_key(&self, name: &str, role: &str) -> (String, String) {
        let ws = self.create_workspace(name);
        let (_, secret) = self.create_key(&ws, role);
        (ws, secret)
    }

    /// The /metrics text.
    pub fn metrics(&self) -> String {
        let r = self.get("/metrics", &[]);
        assert_eq!(r.status, 200, "{}", r.text());
        r.text()
    }

    /// Every workspace the ADMIN key lists (all pages).
    pub fn all_workspaces(&self) -> Vec<Value> {
        let mut conn = self.conn();
        let mut out = Vec::new();
        let mut cursor = String::new();
        for _ in 0..10_000 {
            let r = conn.rpc(
                "ListWorkspaces",
                &self.admin,
                &json!({ "pageSize": 1000, "cursor": cursor }),
            );
            r.ok();
            out.extend(r.json["workspaces"].as_array().cloned().unwrap_or_default());
            cursor = r.json["nextCursor"].as_str().unwrap_or("").to_owned();
            if cursor.is_empty() {
                return out;
            }
        }
        panic!("ListWorkspaces never ended");
    }
}

pub fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

/// An HTTP response, with a gzip body already inflated.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The body as sent (still gzipped if Content-Encoding said so).
    pub raw: Vec<u8>,
    /// The body after Content-Encoding: gzip is undone.
    pub body: Vec<u8>,
    /// The body as JSON, or Null when it is not JSON.
    pub json: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts HTTP 200.
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert_eq!(
            self.status,
            200,
            "expected 200, got {}: {}",
            self.status,
            self.text()
        );
        self
    }

    /// Asserts a Connect error: this status, a JSON body `{code, message}`
    /// with this code and a non-empty message.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "status; body: {}", self.text());
        let ct = self.header("content-type").unwrap_or("");
        assert!(
            ct.starts_with("application/json"),
            "error content type {ct:?}"
        );
        assert!(
            self.json.is_object(),
            "error body is not a JSON object: {}",
            self.text()
        );
        assert_eq!(self.json["code"], code, "code; body: {}", self.text());
        let msg = self.json["message"].as_str().unwrap_or("");
        assert!(!msg.is_empty(), "error message is empty: {}", self.text());
    }
}

/// One client connection; requests on it use keep-alive.
pub struct Conn {
    pub stream: TcpStream,
    reader: BufReader<TcpStream>,
    host: String,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            reader: BufReader::new(stream.try_clone()?),
            stream,
            host: addr.to_string(),
        })
    }

    /// Writes bytes as they are.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// The head of a request: request line, Host, the given headers, and
    /// Content-Length unless a Transfer-Encoding or Content-Length header is
    /// among them.
    pub fn head(
        &self,
        verb: &str,
        path: &str,
        headers: &[(&str, &str)],
        body_len: usize,
    ) -> Vec<u8> {
        let mut h = format!("{verb} {path} HTTP/1.1\r\nHost: {}\r\n", self.host);
        for (k, v) in headers {
            h.push_str(&format!("{k}: {v}\r\n"));
        }
        let framed = headers.iter().any(|(k, _)| {
            k.eq_ignore_ascii_case("transfer-encoding") || k.eq_ignore_ascii_case("content-length")
        });
        if !framed && (body_len > 0 || verb == "POST" || verb == "PUT") {
            h.push_str(&format!("Content-Length: {body_len}\r\n"));
        }
        h.push_str("\r\n");
        h.into_bytes()
    }

    pub fn request(
        &mut self,
        verb: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Reply> {
        let mut bytes = self.head(verb, path, headers, body.len());
        bytes.extend_from_slice(body);
        self.send(&bytes)?;
        self.read_reply(verb == "HEAD")
    }

    /// A JSON Connect call on this connection.
    pub fn rpc(&mut self, method: &str, key: &str, body: &Value) -> Reply {
        let auth = bearer(key);
        self.request(
            "POST",
            &format!("{SVC}{method}"),
            &[
                ("Content-Type", "application/json"),
                ("Authorization", &auth),
            ],
            body.to_string().as_bytes(),
        )
        .expect("rpc")
    }

    /// Reads one response (Content-Length, chunked, or until close).
    pub fn read_reply(&mut self, head_only: bool) -> io::Result<Reply> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before a response",
            ));
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad status line {line:?}"),
                )
            })?;
        let mut headers = Vec::new();
        loop {
            let mut l = String::new();
            if self.reader.read_line(&mut l)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "eof in headers",
                ));
            }
            let l = l.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                headers.push((k.trim().to_owned(), v.trim().to_owned()));
            }
        }
        let find = |n: &str| {
            headers
                .iter()
                .find(|(k, _): &&(String, String)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        let mut raw = Vec::new();
        if head_only || status == 204 || status == 304 || (100..200).contains(&status) {
        } else if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            loop {
                let mut size = String::new();
                self.reader.read_line(&mut size)?;
                let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                    .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
                if n == 0 {
                    let mut crlf = String::new();
                    while self.reader.read_line(&mut crlf)? > 2 {
                        crlf.clear();
                    }
                    break;
                }
                let mut chunk = vec![0u8; n + 2];
                self.reader.read_exact(&mut chunk)?;
                raw.extend_from_slice(&chunk[..n]);
            }
        } else if let Some(n) = find("content-length").and_then(|v| v.parse::<usize>().ok()) {
            raw.resize(n, 0);
            self.reader.read_exact(&mut raw)?;
        } else {
            self.reader.read_to_end(&mut raw)?;
        }
        let body = if find("content-encoding").is_some_and(|v| v.eq_ignore_ascii_case("gzip")) {
            gunzip(&raw)
        } else {
            raw.clone()
        };
        let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Ok(Reply {
            status,
            headers,
            raw,
            body,
            json,
        })
    }

    /// Waits until the server closes the connection (EOF or reset),
    /// discarding anything it sends; the time it took, or None if it stayed
    /// open for `limit`.
    pub fn wait_closed(&mut self, limit: Duration) -> Option<Duration> {
        let start = Instant::now();
        self.stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .ok()?;
        let mut buf = [0u8; 4096];
        while start.elapsed() < limit {
            match self.reader.read(&mut buf) {
                Ok(0) => return Some(start.elapsed()),
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return Some(start.elapsed()),
            }
        }
        None
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

pub fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .expect("response is valid gzip");
    out
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn percent_encode(data: &[u8]) -> String {
    let mut s = String::with_capacity(data.len() * 3);
    for &b in data {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

pub fn b64(data: &[u8]) -> String {
    STANDARD.encode(data)
}

pub fn b64url(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

pub fn unb64(s: &str) -> Vec<u8> {
    STANDARD.decode(s).expect("standard base64")
}

/// A random-looking 16-byte id (base64) that names nothing.
pub fn random_id() -> String {
    let mut id = [0u8; 16];
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    id.copy_from_slice(&t.to_le_bytes());
    id[15] ^= 0x5a;
    b64(&id)
}

/// A TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}
