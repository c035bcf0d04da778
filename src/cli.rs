//! The command line: global flags and subcommands, as clap sees them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "proxyplane",
    version,
    about = "Self-hosted control plane for proxy pools: which proxy does this account use now?"
)]
pub struct Cli {
    /// TOML config file (also PROXYPLANE_CONFIG).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where proxyplane.db and master.key live (default ./data).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server.
    Serve {
        /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free one).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Manage API keys offline (works with the server running or not).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage workspaces offline.
    #[command(subcommand)]
    Workspaces(WorkspacesCommand),
    /// Write a consistent copy of the database while the server runs (the
    /// master key is not in it: keep master.key beside the backup).
    Backup {
        /// Destination file (must not exist).
        file: PathBuf,
    },
    /// Put a backup in place as the data dir's database, after checking its
    /// integrity and that the master key opens it. Stop the server first.
    Restore {
        /// A file written by `proxyplane backup`.
        file: PathBuf,
        /// Replace a database that is there already.
        #[arg(long)]
        force: bool,
    },
    /// Validate the config, the database's integrity and the master key.
    Check,
    /// Import static proxies from a list file into a pool, offline on the
    /// data dir (like `keys`; the server may be running; a missing database
    /// is refused).
    ///
    /// One proxy per line, in the formats vendors export:
    ///   host:port
    ///   host:port:user:pass        (the password is everything after the third ':')
    ///   user:pass@host:port
    ///   scheme://[user:pass@]host:port   (http, https, socks4, socks5, socks5h;
    ///                                     user and password percent-decoded)
    /// An IPv6 host goes in brackets: [2001:db8::1]:8080. Blank lines and lines
    /// starting with # are skipped; surrounding whitespace and CRLF are fine.
    ///
    /// Every line is checked first, with the API's rules; if any is bad, each
    /// is reported as `line N: reason` on stderr (never a password), nothing is
    /// imported and the exit status is non-zero. Then the sessions are created
    /// as BulkCreateSessions does, max_bulk_items per transaction. Each line's
    /// token is `imp-` + 16 hex digits of a BLAKE2b hash of
    /// scheme://user@host:port (not the password), so running the same import
    /// again creates nothing new, and a line whose password changed counts as
    /// already there (change a password with UpdateSession). Prints one line on
    /// stdout: `imported N, already there M, lines L` (L = proxy lines read;
    /// a line repeated in the file counts as already there).
    #[command(verbatim_doc_comment)]
    Import(ImportArgs),
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Create a key and print only its secret.
    Create(CreateKey),
    /// List keys, tab-separated: id, workspace, role, prefix, state, name.
    List,
    /// Revoke a key by id.
    Revoke {
        /// The key's id (base64, as `keys list` prints it).
        id: String,
    },
}

#[derive(Args, Debug)]
pub struct CreateKey {
    /// An instance-wide ADMIN key.
    #[arg(long, conflicts_with_all = ["workspace", "role"])]
    pub admin: bool,
    /// The workspace id (base64) for a workspace key.
    #[arg(long, requires = "role", value_name = "ID")]
    pub workspace: Option<String>,
    /// OWNER, EDITOR, RESOLVER or VIEWER.
    #[arg(long, requires = "workspace", value_name = "ROLE")]
    pub role: Option<String>,
    /// A label for the key.
    #[arg(long, value_name = "N")]
    pub name: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum WorkspacesCommand {
    /// Create a workspace and print its id.
    Create {
        /// The workspace's name.
        name: String,
    },
    /// List workspaces: id and name.
    List,
}

/// The flags of `proxyplane import` (its help is on `Command::Import`).
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The workspace id (base64).
    #[arg(long, value_name = "ID")]
    pub workspace: String,
    /// The pool id (base64) the sessions go into.
    #[arg(long, value_name = "ID")]
    pub pool: String,
    /// The provider id (base64) the sessions belong to; it must be enabled.
    #[arg(long, value_name = "ID")]
    pub provider: String,
    /// Check every line and print, per line, `token<TAB>scheme://user@host:port<TAB>new`
    /// (or `already there`), then `would import N, already there M, lines L`;
    /// writes nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The list file; `-` or nothing reads stdin.
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
}
