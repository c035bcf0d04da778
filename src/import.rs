//! `proxyplane import`: static proxies from a vendor's list file into a
//! pool, offline on the data dir (like `keys` and `workspaces`).
//!
//! Every line is parsed and checked with the API's own rules first; one bad
//! line and nothing is written. Then the sessions go in through
//! BulkCreateSessions' insert (`api::sessions::insert_batch`), in batches of
//! `max_bulk_items`, one transaction each. A line's token is derived from
//! `scheme://user@host:port` (never the password), so importing the same
//! list again adds nothing and a changed password does not duplicate a
//! proxy.

use std::collections::HashSet;
use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::process::ExitCode;

use crate::api;
use crate::api::sessions::{check_spec, check_target, insert_batch, Spec};
use crate::cli::ImportArgs;
use crate::crypto::Keyring;
use crate::ids::{PoolId, ProviderId, WorkspaceId};
use crate::pb::v1::SessionSpec;
use crate::store;

/// Bad lines printed before the rest are only counted: a wrong file of
/// 100,000 lines should not flood the terminal.
const MAX_REPORTED: usize = 50;

const FORMATS: &str =
    "expected host:port, host:port:user:pass, user:pass@host:port or scheme://[user:pass@]host:port";

/// One proxy of the list, parsed but not yet checked.
#[derive(Debug, PartialEq, Eq)]
struct Parsed {
    scheme: String,
    /// As written, an IPv6 address still in brackets.
    host: String,
    port: i32,
    username: String,
    password: String,
}

/// One checked line: its number, what it would create, and its label
/// (`scheme://user@host:port`, no password) for `--dry-run`.
struct Line {
    number: usize,
    spec: Spec,
    label: String,
}

/// Parses one line; None for a blank line or a `#` comment.
fn parse_line(raw: &str) -> Result<Option<Parsed>, String> {
    let line = raw.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    // Only letters, digits, '+', '-', '.' before "://" make a URL (RFC
    // 3986's scheme characters): "u:pa://ss@host:80" is a login whose
    // password holds "://", and a scheme error must not echo it.
    if let Some((scheme, rest)) = line.split_once("://").filter(|(s, _)| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    }) {
        return parse_url(scheme, rest).map(Some);
    }
    // A password may hold '@' or ':', so the host is after the last '@'.
    if let Some((userinfo, hostport)) = line.rsplit_once('@') {
        let (host, port) = host_port(hostport)?;
        let (user, pass) = userinfo.split_once(':').unwrap_or((userinfo, ""));
        return Ok(Some(parsed("", host, port, user, pass)));
    }
    let (host, rest) = match line.strip_prefix('[') {
        Some(v6) => {
            let (inner, rest) = v6.split_once("]:").ok_or(FORMATS)?;
            (&line[..inner.len() + 2], rest)
        }
        None => line.split_once(':').ok_or(FORMATS)?,
    };
    // host:port, or host:port:user:pass where the password is everything
    // after the third colon (it may hold colons itself).
    let mut parts = rest.splitn(3, ':');
    let port = port_of(parts.next().unwrap_or(""))?;
    match (parts.next(), parts.next()) {
        (None, _) => Ok(Some(parsed("", host, port, "", ""))),
        (Some(user), Some(pass)) => Ok(Some(parsed("", host, port, user, pass))),
        (Some(_), None) => Err(FORMATS.into()),
    }
}

fn parsed(scheme: &str, host: &str, port: i32, user: &str, pass: &str) -> Parsed {
    Parsed {
        scheme: scheme.into(),
        host: host.into(),
        port,
        username: user.into(),
        password: pass.into(),
    }
}

/// `scheme://[user[:pass]@]host:port[/]`, the login percent-decoded.
fn parse_url(scheme: &str, rest: &str) -> Result<Parsed, String> {
    if scheme.is_empty() {
        return Err("scheme must be one of http, https, socks4, socks5, socks5h.".into());
    }
    let (userinfo, hostport) = match rest.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    let hostport = hostport.strip_suffix('/').unwrap_or(hostport);
    if hostport.contains(['/', '?', '#']) {
        return Err("a proxy URL has no path, query or fragment.".into());
    }
    let (host, port) = host_port(hostport)?;
    let (user, pass) = match userinfo {
        Some(u) => {
            let (user, pass) = u.split_once(':').unwrap_or((u, ""));
            (
                percent_decode(user)
                    .ok_or("username in the URL is not valid percent-encoded UTF-8.")?,
                percent_decode(pass)
                    .ok_or("password in the URL is not valid percent-encoded UTF-8.")?,
            )
        }
        None => (String::new(), String::new()),
    };
    Ok(parsed(scheme, host, port, &user, &pass))
}

/// `host:port` or `[v6]:port`; the host is checked later, with the spec.
fn host_port(s: &str) -> Result<(&str, i32), String> {
    let (host, port) = if s.starts_with('[') {
        let end = s.find("]:").ok_or(FORMATS)?;
        (&s[..=end], &s[end + 2..])
    } else {
        s.rsplit_once(':').ok_or(FORMATS)?
    };
    if !s.starts_with('[') && host.contains(':') {
        return Err("an IPv6 address must be in brackets, as in [2001:db8::1]:8080.".into());
    }
    Ok((host, port_of(port)?))
}

fn port_of(s: &str) -> Result<i32, String> {
    match s.parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => Ok(p as i32),
        _ if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) => {
            Err("port must be a number from 1 to 65535.".into())
        }
        _ => Err("port must be from 1 to 65535.".into()),
    }
}

/// `%XX` sequences to bytes, then UTF-8; None for a bad escape or bytes
/// that are not UTF-8. (The gateway decodes logins with it too.)
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The line's session token: `imp-` and 16 hex digits of BLAKE2b-256 over
/// `scheme://user@host:port` (scheme and host lower-cased, IPv6 host in
/// brackets). The password is left out: a new password for the same proxy
/// is the same session, not a second one.
fn token_of(scheme: &str, host: &str, port: i32, username: &str) -> Result<String, String> {
    let key = format!(
        "{}://{username}@{}:{port}",
        scheme,
        host.to_ascii_lowercase()
    );
    let digest = orion::hash::digest(key.as_bytes()).map_err(|e| format!("hashing: {e}"))?;
    let hex: String = digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(format!("imp-{hex}"))
}

/// Checks one parsed line with the API's rules (check_spec: scheme, host,
/// port, username, password) and gives it its token.
fn check_line(number: usize, p: Parsed) -> Result<Line, String> {
    let scheme = api::check_scheme("scheme", &p.scheme).map_err(|e| e.message)?;
    let host = api::check_host("host", &p.host).map_err(|e| e.message)?;
    let url_host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.clone()
    };
    let token = token_of(&scheme, &url_host, p.port, &p.username)?;
    let login = if p.username.is_empty() {
        String::new()
    } else {
        format!("{}@", p.username)
    };
    let label = format!("{scheme}://{login}{url_host}:{}", p.port);
    let spec = check_spec(
        None,
        &SessionSpec {
            token,
            scheme,
            host,
            port: p.port,
            username: p.username,
            password: p.password,
        },
    )
    .map_err(|e| e.message)?;
    Ok(Line {
        number,
        spec,
        label,
    })
}

/// Every proxy line of the input, checked; or the bad lines' reports
/// (`line N: reason`, never a password) and how many there were.
fn check_all(input: &[u8]) -> Result<(Vec<Line>, usize), (Vec<String>, usize)> {
    let (mut lines, mut bad, mut bad_count, mut total) = (Vec::new(), Vec::new(), 0, 0);
    for (i, raw) in input.split(|b| *b == b'\n').enumerate() {
        let number = i + 1;
        let checked = std::str::from_utf8(raw)
            .map_err(|_| "the line is not UTF-8 text.".to_string())
            .map(|s| {
                if number == 1 {
                    s.trim_start_matches('\u{feff}')
                } else {
                    s
                }
            })
            .and_then(parse_line)
            .and_then(|p| p.map(|p| check_line(number, p)).transpose());
        match checked {
            Ok(None) => {}
            Ok(Some(line)) => {
                total += 1;
                lines.push(line);
            }
            Err(reason) => {
                total += 1;
                bad_count += 1;
                if bad.len() < MAX_REPORTED {
                    bad.push(format!("line {number}: {reason}"));
                }
            }
        }
    }
    if bad_count > 0 {
        if bad_count > bad.len() {
            bad.push(format!("… and {} more bad lines", bad_count - bad.len()));
        }
        return Err((bad, bad_count));
    }
    Ok((lines, total))
}

fn read_input(file: Option<&Path>) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    match file {
        None => std::io::stdin().lock().read_to_end(&mut buf).map(|_| ()),
        Some(p) if p == Path::new("-") => std::io::stdin().lock().read_to_end(&mut buf).map(|_| ()),
        Some(p) => std::fs::File::open(p).and_then(|mut f| f.read_to_end(&mut buf).map(|_| ())),
    }
    .map_err(|e| {
        let name = file.map_or("stdin".into(), |p| p.display().to_string());
        format!("cannot read {name}: {e}")
    })?;
    Ok(buf)
}

fn parse_id<T>(flag: &str, s: &str, parse: fn(&str) -> Option<T>) -> Result<T, String> {
    parse(s).ok_or_else(|| format!("--{flag} {s:?} is not an id (base64 of 16 bytes)"))
}

/// The target of an import, its ids parsed from the flags.
struct Target {
    ws: WorkspaceId,
    pool: PoolId,
    provider: ProviderId,
}

/// Runs `proxyplane import`. `open` opens the data dir (refusing a missing
/// database), called only once the input is read and every line is good.
pub fn run(
    args: &ImportArgs,
    max_batch: usize,
    open: impl FnOnce() -> Result<(store::Pool, Keyring), String>,
) -> Result<ExitCode, String> {
    let target = Target {
        ws: parse_id("workspace", &args.workspace, WorkspaceId::from_base64)?,
        pool: parse_id("pool", &args.pool, PoolId::from_base64)?,
        provider: parse_id("provider", &args.provider, ProviderId::from_base64)?,
    };
    let input = read_input(args.file.as_deref())?;
    let (lines, total) = match check_all(&input) {
        Ok(v) => v,
        Err((reports, count)) => {
            let mut err = std::io::stderr().lock();
            for r in reports {
                writeln!(err, "{r}").ok();
            }
            return Err(format!(
                "{count} bad line(s); nothing was imported. Fix them and run the import again."
            ));
        }
    };
    let (pool, keyring) = open()?;
    let mut conn = pool.get().map_err(|e| format!("database: {e}"))?;
    let exists = store::read(&mut conn, |tx| {
        crate::store::workspaces::exists(tx, target.ws)
    })
    .map_err(|e| e.message)?;
    if !exists {
        return Err(format!("no workspace with id {}", args.workspace));
    }
    let (created, existing) = if args.dry_run {
        dry_run(&mut conn, &target, &lines)?
    } else {
        import(&mut conn, &keyring, &target, lines, max_batch)?
    };
    let verb = if args.dry_run {
        "would import"
    } else {
        "imported"
    };
    println!("{verb} {created}, already there {existing}, lines {total}");
    Ok(ExitCode::SUCCESS)
}

/// Writes nothing: prints `token<TAB>scheme://user@host:port<TAB>new` (or
/// `already there`) for each line, and counts.
fn dry_run(
    conn: &mut rusqlite::Connection,
    t: &Target,
    lines: &[Line],
) -> Result<(usize, usize), String> {
    let mut out = std::io::stdout().lock();
    store::read(conn, |tx| {
        check_target(tx, t.ws, t.pool, t.provider)?;
        let mut seen = HashSet::new();
        let (mut created, mut existing) = (0, 0);
        for l in lines {
            let token = l.spec.token.as_deref().unwrap_or_default();
            let there = !seen.insert(token)
                || crate::store::sessions::live_by_token(tx, t.pool, token)?.is_some();
            let state = if there { "already there" } else { "new" };
            if there {
                existing += 1;
            } else {
                created += 1;
            }
            writeln!(out, "{token}\t{}\t{state}", l.label).ok();
        }
        Ok((created, existing))
    })
    .map_err(|e| e.message)
}

/// Inserts the lines in batches of `max_batch`, one transaction each; a
/// failed batch stops the run (the batches before it stay: running the
/// import again skips them).
fn import(
    conn: &mut rusqlite::Connection,
    keys: &Keyring,
    t: &Target,
    lines: Vec<Line>,
    max_batch: usize,
) -> Result<(usize, usize), String> {
    let progress = std::io::stderr().is_terminal();
    let total = lines.len();
    let (mut created, mut existing, mut done) = (0, 0, 0);
    let mut rest = lines.into_iter().peekable();
    while rest.peek().is_some() {
        let batch: Vec<Line> = rest.by_ref().take(max_batch.max(1)).collect();
        let first = batch.first().map_or(0, |l| l.number);
        let n = batch.len();
        let specs = batch.into_iter().map(|l| l.spec).collect();
        let b = store::write(conn, None, |tx| {
            insert_batch(tx, keys, t.ws, t.pool, t.provider, specs)
        })
        .map_err(|e| {
            format!(
                "{} (in the batch from line {first}; {created} sessions were imported before it, \
                 and running the import again continues from there)",
                e.message
            )
        })?;
        created += b.created as usize;
        existing += b.existing as usize;
        done += n;
        if progress {
            write!(std::io::stderr(), "\rimporting: {done}/{total}").ok();
        }
    }
    if progress && total > 0 {
        writeln!(std::io::stderr()).ok();
    }
    Ok((created, existing))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> Parsed {
        parse_line(line).unwrap().unwrap()
    }

    #[test]
    fn every_vendor_format_parses() {
        assert_eq!(p("1.2.3.4:8080"), parsed("", "1.2.3.4", 8080, "", ""));
        assert_eq!(
            p("  gw.example.com:3128:bob:pa:ss:word \r"),
            parsed("", "gw.example.com", 3128, "bob", "pa:ss:word")
        );
        assert_eq!(
            p("bob:p@ss@gw.example.com:3128"),
            parsed("", "gw.example.com", 3128, "bob", "p@ss")
        );
        assert_eq!(
            p("socks5h://bo%40b:p%3As%2Fs@[2001:db8::1]:1080/"),
            parsed("socks5h", "[2001:db8::1]", 1080, "bo@b", "p:s/s")
        );
        assert_eq!(
            p("[2001:db8::1]:8080"),
            parsed("", "[2001:db8::1]", 8080, "", "")
        );
        assert_eq!(
            p("[2001:db8::1]:8080:u:p"),
            parsed("", "[2001:db8::1]", 8080, "u", "p")
        );
        assert_eq!(p("https://h.io:443"), parsed("https", "h.io", 443, "", ""));
        assert_eq!(
            p("u:pa://ss@h.io:80"),
            parsed("", "h.io", 80, "u", "pa://ss")
        );
        assert!(parse_line("   ").unwrap().is_none());
        assert!(parse_line("# a comment").unwrap().is_none());
    }

    #[test]
    fn bad_lines_say_why() {
        for (line, reason) in [
            ("h.io", FORMATS),
            ("h.io:80:user", FORMATS),
            ("h.io:0", "port must be from 1 to 65535."),
            ("h.io:99999", "port must be from 1 to 65535."),
            ("h.io:http", "port must be a number from 1 to 65535."),
            (
                "http://h.io:80/path",
                "a proxy URL has no path, query or fragment.",
            ),
            (
                "http://u:%zz@h.io:80",
                "password in the URL is not valid percent-encoded UTF-8.",
            ),
        ] {
            assert_eq!(parse_line(line).unwrap_err(), reason, "{line}");
        }
    }

    #[test]
    fn the_token_ignores_the_password() {
        let a = check_line(1, p("h.io:80:u:one")).unwrap();
        let b = check_line(2, p("http://u:two@H.io:80")).unwrap();
        let c = check_line(3, p("h.io:80:v:one")).unwrap();
        assert_eq!(a.spec.token, b.spec.token);
        assert_ne!(a.spec.token, c.spec.token);
        assert_eq!(a.label, "http://u@h.io:80");
    }
}
