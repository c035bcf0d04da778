#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::let_underscore_must_use,
    clippy::too_many_lines
)]
//! Integration tests: the real `proxyplane` binary on 127.0.0.1:0, driven
//! over raw HTTP/1.1 and its command line. One test binary (`cargo test
//! --test it`); `common` is the harness every module shares.

#[allow(dead_code)]
mod common;

/// The generated API types, for the binary protobuf codec.
#[allow(dead_code, unused_imports)]
#[path = "../../src/pb.rs"]
mod pb;

mod assignments;
mod cli_and_revocation;
mod codecs;
mod config;
mod dashboard;
mod disk;
mod edge;
mod errors;
mod group_commit;
mod import;
mod inventory;
mod limits;
mod locks;
mod metrics;
mod pagination;
mod proxyline;
mod ratelimit;
mod resolve_cache;
mod roles;
mod rotation;
mod seeds;
mod shutdown;
mod startup;
mod sync;
mod tenancy;
mod upgrade;
mod validation;
