//! A full disk is an answer a client can act on, not `internal`, and what
//! was stored before stays whole. Needs root to mount a small tmpfs (CI runs
//! as root); elsewhere the test says it was skipped.

use std::path::PathBuf;
use std::process::Command;

use serde_json::json;

use crate::common::*;
use crate::inventory::Ws;

/// A tmpfs of `size` mounted on a fresh dir, unmounted on drop.
struct SmallDisk {
    path: PathBuf,
    _dir: TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = TempDir::new("disk");
        let path = dir.join("mnt");
        std::fs::create_dir_all(&path).expect("mkdir");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallDisk { path, _dir: dir })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

#[test]
fn a_full_disk_is_resource_exhausted_and_loses_nothing_stored() {
    let Some(disk) = SmallDisk::mount("3m") else {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let data = disk.path.join("data");
    let mut srv = Launch::default().data_dir(&data).start();
    let ws = Ws::new(&srv, "OWNER");
    let prov = ws.generic();
    let pool = ws.pool(json!({}));
    let first = ws.static_session(&pool, &prov, 1);
    let mut stored = 1;
    let mut full = None;
    for batch in 0..200 {
        let sessions: Vec<_> = (0..500)
            .map(|i| json!({ "host": "203.0.113.9", "port": 1000 + i, "password": "x".repeat(200), "token": format!("b{batch}-{i}") }))
            .collect();
        let r = ws.call(
            "BulkCreateSessions",
            json!({ "poolId": pool, "providerId": prov, "sessions": sessions }),
        );
        if r.status == 200 {
            stored += 500;
            continue;
        }
        full = Some(r);
        break;
    }
    let r = full.expect("3 MiB fills up");
    r.assert_error(429, "resource_exhausted");
    assert!(r.text().contains("disk is full"), "{}", r.text());
    // What was stored is all there, and reads go on.
    let mut n = 0;
    let mut cursor = String::new();
    loop {
        let page = ws.ok(
            "ListSessions",
            json!({ "poolId": pool, "pageSize": 1000, "cursor": cursor }),
        );
        n += page["sessionIds"].as_array().map_or(0, Vec::len);
        cursor = page["nextCursor"].as_str().unwrap_or("").to_owned();
        if cursor.is_empty() {
            break;
        }
    }
    assert_eq!(n, stored);
    assert_eq!(ws.get_session(&first)["host"], "203.0.113.1");
    srv.sigterm();
    let _ = srv.wait_exit(IO_TIMEOUT);
}
