//! Configuration: built-in defaults < TOML file < `PROXYPLANE_*` environment
//! variables < command-line flags, validated into one `Config` with messages
//! an operator can act on.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Empty: `<data_dir>/master.key`.
    pub master_key_file: PathBuf,
    pub workers: usize,
    pub rate_limit_per_second: f64,
    pub rate_limit_burst: f64,
    pub auth_failure_rate_per_second: f64,
    pub auth_failure_burst: f64,
    pub max_body_bytes: usize,
    pub max_bulk_items: usize,
    pub max_header_bytes: usize,
    /// 0: sized at start-up from the open-file limit (`server::run`).
    pub max_connections: usize,
    pub header_read_timeout_seconds: u64,
    /// One request to a vendor API (SyncProvider), connect to last byte.
    pub vendor_timeout_seconds: u64,
    pub body_read_timeout_seconds: u64,
    pub idle_timeout_seconds: u64,
    pub shutdown_timeout_seconds: u64,
    pub metrics_require_key: bool,
    /// Serve the web dashboard at `/`.
    pub dashboard: bool,
    pub log_level: LogLevel,
    pub log_format: LogFormat,
    pub synchronous: Synchronous,
    /// The built-in proxy gateway (`src/gateway/`); None: off.
    pub gateway_listen: Option<SocketAddr>,
    pub gateway_max_tunnels: usize,
    pub gateway_connect_timeout_seconds: u64,
    pub gateway_idle_timeout_seconds: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// SQLite's `synchronous` in WAL mode: NORMAL may lose the last commits on
/// power loss or an OS crash (never integrity); FULL syncs every commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synchronous {
    Normal,
    Full,
}

impl Synchronous {
    /// The setting's name, as in the config and `PRAGMA synchronous`.
    pub fn name(self) -> &'static str {
        match self {
            Synchronous::Normal => "normal",
            Synchronous::Full => "full",
        }
    }
}

/// Every key, its default (as TOML) and what it means: the one list that
/// `config.example.toml`, the environment names and the validation follow.
pub const KEYS: &[(&str, &str)] = &[
    ("listen", "\"127.0.0.1:8080\""),
    ("data_dir", "\"./data\""),
    ("master_key_file", "\"\""),
    ("workers", "0"),
    ("rate_limit_per_second", "50.0"),
    ("rate_limit_burst", "100"),
    ("auth_failure_rate_per_second", "1.0"),
    ("auth_failure_burst", "20"),
    ("max_body_bytes", "4194304"),
    ("max_bulk_items", "10000"),
    ("max_header_bytes", "16384"),
    ("max_connections", "0"),
    ("header_read_timeout_seconds", "10"),
    ("vendor_timeout_seconds", "30"),
    ("body_read_timeout_seconds", "30"),
    ("idle_timeout_seconds", "60"),
    ("shutdown_timeout_seconds", "30"),
    ("metrics_require_key", "false"),
    ("dashboard", "true"),
    ("log_level", "\"info\""),
    ("log_format", "\"text\""),
    ("synchronous", "\"normal\""),
    ("gateway_listen", "\"\""),
    ("gateway_max_tunnels", "10000"),
    ("gateway_connect_timeout_seconds", "10"),
    ("gateway_idle_timeout_seconds", "300"),
];

/// Where a value came from, for error messages.
#[derive(Debug, Clone)]
enum Source {
    Default,
    File(PathBuf),
    Env(String),
    Flag(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Default => write!(f, "the built-in default"),
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Env(n) => write!(f, "environment variable {n}"),
            Source::Flag(n) => write!(f, "flag --{n}"),
        }
    }
}

/// Raw layers before validation.
#[derive(Default)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    /// Flag values by config key (e.g. "data_dir", "listen").
    pub flags: Vec<(&'static str, String)>,
}

pub fn env_name(key: &str) -> String {
    format!("PROXYPLANE_{}", key.to_ascii_uppercase())
}

/// Environment variables that are not config keys but are ours.
const OTHER_ENV: &[&str] = &["PROXYPLANE_MASTER_KEY", "PROXYPLANE_CONFIG"];

pub fn load(o: &Overrides, env: &BTreeMap<String, String>) -> Result<Config, String> {
    let mut v = Values::defaults()?;
    v.file(o, env)?;
    v.env(env)?;
    for (key, raw) in &o.flags {
        v.set(
            key,
            env_value(key, raw),
            Source::Flag(key.replace('_', "-")),
        );
    }
    v.validate()
}

/// Every key's value and where it came from, layer over layer.
struct Values(BTreeMap<&'static str, (toml::Value, Source)>);

impl Values {
    fn defaults() -> Result<Values, String> {
        let mut values = BTreeMap::new();
        for (k, v) in KEYS {
            let parsed: toml::Table =
                toml::from_str(&format!("v = {v}")).map_err(|e| format!("default {k}: {e}"))?;
            values.insert(*k, (parsed["v"].clone(), Source::Default));
        }
        Ok(Values(values))
    }

    fn set(&mut self, key: &'static str, v: toml::Value, src: Source) {
        self.0.insert(key, (v, src));
    }

    /// The TOML file named by `--config` or `PROXYPLANE_CONFIG`, if any.
    fn file(&mut self, o: &Overrides, env: &BTreeMap<String, String>) -> Result<(), String> {
        let file = o
            .config_file
            .clone()
            .or_else(|| env.get("PROXYPLANE_CONFIG").map(PathBuf::from));
        let Some(path) = file else { return Ok(()) };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        let table: toml::Table = toml::from_str(&text)
            .map_err(|e| format!("config file {} is not valid TOML: {e}", path.display()))?;
        for (k, v) in table {
            let key = known_key(&k).ok_or_else(|| {
                format!(
                    "unknown key `{k}` in config file {}; known keys: {}",
                    path.display(),
                    key_list()
                )
            })?;
            self.set(key, v, Source::File(path.clone()));
        }
        Ok(())
    }

    /// `PROXYPLANE_<KEY>` variables; any other `PROXYPLANE_*` is a typo.
    fn env(&mut self, env: &BTreeMap<String, String>) -> Result<(), String> {
        for (name, v) in env {
            if !name.starts_with("PROXYPLANE_") || OTHER_ENV.contains(&name.as_str()) {
                continue;
            }
            let key = KEYS
                .iter()
                .map(|(k, _)| *k)
                .find(|k| env_name(k) == *name)
                .ok_or_else(|| {
                    format!("unknown environment variable {name}; proxyplane reads PROXYPLANE_<KEY> for the keys: {}", key_list())
                })?;
            self.set(key, env_value(key, v), Source::Env(name.clone()));
        }
        Ok(())
    }

    fn get(&self, k: &str) -> Result<&(toml::Value, Source), String> {
        self.0
            .get(k)
            .ok_or_else(|| format!("internal: config key {k} has no default"))
    }

    fn string(&self, k: &str) -> Result<String, String> {
        let (v, src) = self.get(k)?;
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("{k} (from {src}) must be a string, got {v}"))
    }

    fn uint(&self, k: &str, min: u64, max: u64) -> Result<u64, String> {
        let (v, src) = self.get(k)?;
        let n = v.as_integer().filter(|n| *n >= 0).map(|n| n as u64);
        match n {
            Some(n) if n >= min && n <= max => Ok(n),
            _ => Err(format!(
                "{k} (from {src}) must be a whole number from {min} to {max}, got {v}"
            )),
        }
    }

    fn float(&self, k: &str) -> Result<f64, String> {
        let (v, src) = self.get(k)?;
        let n = v.as_float().or_else(|| v.as_integer().map(|i| i as f64));
        match n {
            Some(n) if n >= 0.0 && n.is_finite() => Ok(n),
            _ => Err(format!(
                "{k} (from {src}) must be a number of 0 or more (0 disables), got {v}"
            )),
        }
    }

    fn boolean(&self, k: &str) -> Result<bool, String> {
        let (v, src) = self.get(k)?;
        v.as_bool()
            .ok_or_else(|| format!("{k} (from {src}) must be true or false, got {v}"))
    }

    /// One of a few named values.
    fn choice<T: Copy>(&self, k: &str, options: &[(&str, T)]) -> Result<T, String> {
        let got = self.string(k)?;
        if let Some((_, t)) = options.iter().find(|(name, _)| *name == got) {
            return Ok(*t);
        }
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        let allowed = match names.as_slice() {
            [a, b] => format!("{a:?} or {b:?}"),
            _ => format!("one of {}", names.join(", ")),
        };
        Err(format!(
            "{k} (from {}) must be {allowed}; got {got:?}",
            self.get(k)?.1
        ))
    }

    /// `gateway_listen`: empty (off) or an address with a port.
    fn gateway_listen(&self) -> Result<Option<SocketAddr>, String> {
        let gw = self.string("gateway_listen")?;
        if gw.is_empty() {
            return Ok(None);
        }
        gw.parse::<SocketAddr>().map(Some).map_err(|_| {
            format!(
                "gateway_listen (from {}) must be empty (off) or an address with a port such as 127.0.0.1:3128, got {gw:?}",
                self.0.get("gateway_listen").map_or(&Source::Default, |v| &v.1)
            )
        })
    }

    fn validate(&self) -> Result<Config, String> {
        let listen_s = self.string("listen")?;
        let listen = listen_s.parse::<SocketAddr>().map_err(|_| {
            format!(
                "listen (from {}) must be an address with a port such as 127.0.0.1:8080 or [::1]:8080, got {listen_s:?}",
                self.0.get("listen").map_or(&Source::Default, |v| &v.1)
            )
        })?;
        let data_dir = PathBuf::from(self.string("data_dir")?);
        if data_dir.as_os_str().is_empty() {
            return Err(format!(
                "data_dir (from {}) must not be empty",
                self.get("data_dir")?.1
            ));
        }
        let mk = self.string("master_key_file")?;
        let master_key_file = if mk.is_empty() {
            data_dir.join("master.key")
        } else {
            PathBuf::from(mk)
        };
        let workers = match self.uint("workers", 0, 1024)? as usize {
            0 => 4 * std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let gateway_listen = self.gateway_listen()?;
        use LogLevel::*;
        Ok(Config {
            gateway_listen,
            gateway_max_tunnels: self.uint("gateway_max_tunnels", 1, 1_000_000)? as usize,
            gateway_connect_timeout_seconds: self.uint(
                "gateway_connect_timeout_seconds",
                1,
                600,
            )?,
            gateway_idle_timeout_seconds: self.uint("gateway_idle_timeout_seconds", 1, 86_400)?,
            listen,
            data_dir,
            master_key_file,
            workers,
            rate_limit_per_second: self.float("rate_limit_per_second")?,
            rate_limit_burst: self.float("rate_limit_burst")?.max(1.0),
            auth_failure_rate_per_second: self.float("auth_failure_rate_per_second")?,
            auth_failure_burst: self.float("auth_failure_burst")?.max(1.0),
            max_body_bytes: self.uint("max_body_bytes", 1024, 1 << 30)? as usize,
            max_bulk_items: self.uint("max_bulk_items", 1, 1_000_000)? as usize,
            max_header_bytes: self.uint("max_header_bytes", 8192, 1 << 20)? as usize,
            max_connections: self.uint("max_connections", 0, 1_000_000)? as usize,
            header_read_timeout_seconds: self.uint("header_read_timeout_seconds", 1, 3600)?,
            vendor_timeout_seconds: self.uint("vendor_timeout_seconds", 1, 600)?,
            body_read_timeout_seconds: self.uint("body_read_timeout_seconds", 1, 3600)?,
            idle_timeout_seconds: self.uint("idle_timeout_seconds", 1, 86_400)?,
            shutdown_timeout_seconds: self.uint("shutdown_timeout_seconds", 0, 3600)?,
            metrics_require_key: self.boolean("metrics_require_key")?,
            dashboard: self.boolean("dashboard")?,
            log_level: self.choice(
                "log_level",
                &[
                    ("error", Error),
                    ("warn", Warn),
                    ("info", Info),
                    ("debug", Debug),
                ],
            )?,
            log_format: self.choice(
                "log_format",
                &[("text", LogFormat::Text), ("json", LogFormat::Json)],
            )?,
            synchronous: self.choice(
                "synchronous",
                &[("normal", Synchronous::Normal), ("full", Synchronous::Full)],
            )?,
        })
    }
}

fn known_key(k: &str) -> Option<&'static str> {
    KEYS.iter().map(|(k, _)| *k).find(|x| *x == k)
}

fn key_list() -> String {
    KEYS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
}

/// Environment and flag values are strings; read them as the TOML type the
/// key's default has, so `PROXYPLANE_WORKERS=8` is a number.
fn env_value(key: &str, raw: &str) -> toml::Value {
    let default = KEYS
        .iter()
        .find(|(k, _)| *k == key)
        .map_or("\"\"", |(_, d)| d);
    if default.starts_with('"') {
        return toml::Value::String(raw.to_owned());
    }
    match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(t) => t["v"].clone(),
        Err(_) => toml::Value::String(raw.to_owned()),
    }
}

pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join("proxyplane.db")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_match_the_documented_values() {
        let c = load(&Overrides::default(), &env(&[])).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.master_key_file, PathBuf::from("./data/master.key"));
        assert_eq!(c.rate_limit_per_second, 50.0);
        assert_eq!(c.max_body_bytes, 4_194_304);
        assert_eq!(c.max_bulk_items, 10_000);
        assert_eq!(c.max_connections, 0, "auto: sized from the open-file limit");
    }

    #[test]
    fn env_overrides_default_and_flag_overrides_env() {
        let o = Overrides {
            config_file: None,
            flags: vec![("listen", "127.0.0.1:9999".into())],
        };
        let c = load(
            &o,
            &env(&[
                ("PROXYPLANE_LISTEN", "127.0.0.1:7777"),
                ("PROXYPLANE_WORKERS", "3"),
            ]),
        )
        .unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:9999");
        assert_eq!(c.workers, 3);
    }

    #[test]
    fn bad_values_and_unknown_env_names_are_sentences() {
        let e = load(
            &Overrides::default(),
            &env(&[("PROXYPLANE_WORKERS", "many")]),
        )
        .unwrap_err();
        assert!(
            e.contains("workers") && e.contains("PROXYPLANE_WORKERS"),
            "{e}"
        );
        let e = load(&Overrides::default(), &env(&[("PROXYPLANE_LISTN", "x")])).unwrap_err();
        assert!(e.contains("PROXYPLANE_LISTN"), "{e}");
        let e = load(
            &Overrides::default(),
            &env(&[("PROXYPLANE_LISTEN", "nowhere")]),
        )
        .unwrap_err();
        assert!(e.contains("127.0.0.1:8080"), "{e}");
    }
}

#[cfg(test)]
mod synchronous {
    use super::*;

    #[test]
    fn synchronous_is_normal_by_default_and_full_from_env_or_file() {
        let none = BTreeMap::new();
        let c = load(&Overrides::default(), &none).unwrap();
        assert_eq!(c.synchronous, Synchronous::Normal);
        let env: BTreeMap<String, String> =
            [("PROXYPLANE_SYNCHRONOUS".to_string(), "full".to_string())].into();
        assert_eq!(
            load(&Overrides::default(), &env).unwrap().synchronous,
            Synchronous::Full
        );
        let dir = std::env::temp_dir().join(format!("pp-sync-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "synchronous = \"full\"\n").unwrap();
        let o = Overrides {
            config_file: Some(file.clone()),
            flags: Vec::new(),
        };
        let c = load(&o, &none);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(c.unwrap().synchronous, Synchronous::Full);
    }

    #[test]
    fn a_bad_synchronous_value_names_the_key_and_the_choices() {
        for bad in ["FULL", "off", "extra", ""] {
            let env: BTreeMap<String, String> =
                [("PROXYPLANE_SYNCHRONOUS".to_string(), bad.to_string())].into();
            let e = load(&Overrides::default(), &env).unwrap_err();
            assert!(
                e.contains("synchronous")
                    && e.contains("PROXYPLANE_SYNCHRONOUS")
                    && e.contains("\"normal\" or \"full\""),
                "{e}"
            );
        }
    }
}

#[cfg(test)]
mod example_file {
    use super::*;

    /// config.example.toml documents every key with its default value.
    #[test]
    fn example_config_lists_every_key_with_its_default() {
        let text = include_str!("../config.example.toml");
        let table: toml::Table = toml::from_str(text).unwrap();
        for (k, default) in KEYS {
            let want: toml::Table = toml::from_str(&format!("v = {default}")).unwrap();
            assert_eq!(table.get(*k), Some(&want["v"]), "config.example.toml: {k}");
        }
        assert_eq!(
            table.len(),
            KEYS.len(),
            "config.example.toml has a key the binary does not know"
        );
    }
}
