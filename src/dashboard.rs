//! The web dashboard's static files, embedded at build time from `web/`
//! (plain ES modules: no build step, no Node for `cargo build`), and the
//! security headers every one of them is served with. The dashboard is a
//! Connect JSON client of the API on the same origin, so it needs no CORS.

/// One embedded file.
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

macro_rules! assets {
    ($($path:literal => $file:literal, $ty:expr;)*) => {
        /// Every file the dashboard serves, by URL path.
        pub static ASSETS: &[Asset] = &[$(
            Asset {
                path: $path,
                content_type: $ty,
                body: include_bytes!(concat!("../web/", $file)),
            },
        )*];
    };
}

const JS: &str = "text/javascript; charset=utf-8";

assets! {
    "/" => "index.html", "text/html; charset=utf-8";
    "/assets/style.css" => "style.css", "text/css; charset=utf-8";
    "/assets/app.js" => "app.js", JS;
    "/assets/api.js" => "api.js", JS;
    "/assets/views.js" => "views.js", JS;
    "/assets/sessions.js" => "sessions.js", JS;
    "/assets/charts.js" => "charts.js", JS;
    "/assets/dom.js" => "dom.js", JS;
    "/assets/icon.svg" => "icon.svg", "image/svg+xml";
}

/// No inline script or style, nothing from another origin, no framing;
/// the API is the only place the page may talk to.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// Headers sent with every dashboard response, including its 404s.
pub const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("content-security-policy", CSP),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    // The files change with the binary: revalidate rather than go stale
    // after an upgrade. They are small; a reload costs little.
    ("cache-control", "no-cache"),
];

/// The file a path names, if it is one of the dashboard's.
pub fn find(path: &str) -> Option<&'static Asset> {
    let path = if path == "/index.html" { "/" } else { path };
    ASSETS.iter().find(|a| a.path == path)
}

/// The file gzipped (best compression, once per process), or None when
/// that would not make it smaller.
pub fn gzipped(asset: &Asset) -> Option<&'static [u8]> {
    static GZ: std::sync::OnceLock<Vec<Option<Vec<u8>>>> = std::sync::OnceLock::new();
    let all = GZ.get_or_init(|| ASSETS.iter().map(|a| compress(a.body)).collect());
    let i = ASSETS.iter().position(|a| std::ptr::eq(a, asset))?;
    all.get(i)?.as_deref()
}

fn compress(body: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(body).ok()?;
    let out = e.finish().ok()?;
    (out.len() + 64 < body.len()).then_some(out)
}

/// Whether a path belongs to the dashboard (served or not).
pub fn owns(path: &str) -> bool {
    path == "/" || path == "/index.html" || path.starts_with("/assets/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_page_imports_is_embedded() {
        // A module named in an import but missing from ASSETS would be a
        // 404 in the browser; keep the table and the sources in step.
        for a in ASSETS.iter().filter(|a| a.content_type == JS) {
            let text = std::str::from_utf8(a.body).unwrap();
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let name = line
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .trim_end_matches(['\'', ';', '"']);
                let want = format!("/assets/{name}");
                assert!(find(&want).is_some(), "{}: imports {want}", a.path);
            }
        }
    }

    #[test]
    fn the_policy_allows_no_inline_code_and_no_framing() {
        assert!(!CSP.contains("unsafe-inline") && !CSP.contains("unsafe-eval"));
        assert!(CSP.contains("frame-ancestors 'none'"));
        assert!(find("/assets/../index.html").is_none());
    }
}
