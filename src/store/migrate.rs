//! Schema migrations: the files `migrations/000N_name.sql`, embedded in the
//! binary in order, each run once. `PRAGMA user_version` is the number of the
//! last step a database has run; a new (empty) database runs them all, from
//! the first. `schema.sql` at the repository root is the same schema written
//! out whole for reading; the tests below check that the two agree.

use rusqlite::{Connection, TransactionBehavior};

/// One migration: its number (the `user_version` it leaves), its file name
/// without `.sql` (for messages), and its SQL.
pub struct Step {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

macro_rules! step {
    ($version:literal, $name:literal) => {
        Step {
            version: $version,
            name: $name,
            sql: include_str!(concat!("../../migrations/", $name, ".sql")),
        }
    };
}

/// Every step, in order. A step that has shipped is never edited (databases
/// that ran it keep what it made); a change is a new step at the end.
pub const STEPS: &[Step] = &[
    step!(1, "0001_init"),
    step!(2, "0002_session_counts"),
    step!(3, "0003_auth_epoch"),
    step!(4, "0004_session_counts_by_call"),
    step!(5, "0005_provider_sync"),
    step!(6, "0006_data_epoch"),
];

/// The schema version of a database that has run every step.
pub const LATEST: i64 = STEPS[STEPS.len() - 1].version;

// Steps are numbered 1, 2, 3, … with no gap, so "the next step" of a database
// at version v is always the one numbered v + 1. Checked when compiling.
const _: () = {
    let mut i = 0;
    while i < STEPS.len() {
        assert!(
            STEPS[i].version == i as i64 + 1,
            "migration steps must be numbered 1, 2, 3, …"
        );
        i += 1;
    }
};

/// Brings the database up to `LATEST`, or refuses one written by a newer
/// binary without writing to it.
pub fn run(c: &mut Connection) -> Result<(), String> {
    run_steps(c, STEPS)
}

/// Runs the pending steps of `steps`, each in its own IMMEDIATE transaction
/// that also sets `user_version` to the step's number: a step that fails
/// leaves the database as the previous one left it, and the next start
/// carries on from there. The version is read inside each transaction, under
/// the write lock, so two processes opening the same file never run a step
/// twice.
fn run_steps(c: &mut Connection, steps: &[Step]) -> Result<(), String> {
    let latest = steps.last().map_or(0, |s| s.version);
    loop {
        let tx = c
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| e.to_string())?;
        let v: i64 = tx
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| e.to_string())?;
        if v > latest {
            // Dropping `tx` rolls back a transaction that wrote nothing.
            return Err(super::newer_schema(v));
        }
        if v < 0 {
            return Err(format!(
                "its schema version is {v}, which no proxyplane writes; restore a backup"
            ));
        }
        let Some(step) = steps.iter().find(|s| s.version > v) else {
            return Ok(());
        };
        let failed = |e: rusqlite::Error| {
            format!(
                "upgrading to schema version {} (migrations/{}.sql): {e}",
                step.version, step.name
            )
        };
        tx.execute_batch(step.sql).map_err(failed)?;
        tx.pragma_update(None, "user_version", step.version)
            .map_err(failed)?;
        tx.commit().map_err(failed)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::types::Value;

    const SCHEMA_SQL: &str = include_str!("../../schema.sql");

    /// What SQLite keeps outside the proxyplane schema: its own internals
    /// (`sqlite_*`, autoindexes included) and Litestream's bookkeeping
    /// tables, which it adds to any database it replicates.
    const NOT_OURS: &str = "name GLOB 'sqlite_*' OR tbl_name GLOB 'sqlite_*' \
         OR name GLOB '_litestream_*' OR tbl_name GLOB '_litestream_*'";

    /// Whitespace only: runs of it become one space, and none is kept next
    /// to `(`, `)` or `,`. `ALTER TABLE … ADD COLUMN` stores the table's
    /// CREATE text with `, <column>` spliced in right after the last column,
    /// so the migrated text and schema.sql's (the column written last, on a
    /// line of its own) then agree.
    fn normalise(sql: &str) -> String {
        let spaced: Vec<char> = sql
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .collect();
        let tight = |c: Option<&char>| c.is_some_and(|c| "(),".contains(*c));
        spaced
            .iter()
            .enumerate()
            .filter(|&(i, &c)| {
                !(c == ' ' && (tight(spaced.get(i.wrapping_sub(1))) || tight(spaced.get(i + 1))))
            })
            .map(|(_, &c)| c)
            .collect()
    }

    #[test]
    fn a_column_added_by_alter_table_compares_equal_to_it_written_last_in_create_table() {
        let migrated = Connection::open_in_memory().unwrap();
        migrated
            .execute_batch(
                "CREATE TABLE t (\n    a INTEGER,\n    b TEXT,\n    PRIMARY KEY (a)\n) WITHOUT ROWID;
                 CREATE TABLE u (\n    a INTEGER\n);
                 ALTER TABLE t ADD COLUMN c INTEGER NOT NULL DEFAULT 0;
                 ALTER TABLE u ADD COLUMN c BLOB;",
            )
            .unwrap();
        let whole = Connection::open_in_memory().unwrap();
        whole
            .execute_batch(
                "CREATE TABLE t (\n    a INTEGER,\n    b TEXT,\n    c INTEGER NOT NULL DEFAULT 0,\n    PRIMARY KEY (a)\n) WITHOUT ROWID;
                 CREATE TABLE u (\n    a INTEGER,\n    c BLOB\n);",
            )
            .unwrap();
        assert_same_schema(&migrated, &whole);
        // Only whitespace is forgiven: a different column is still a difference.
        let other = Connection::open_in_memory().unwrap();
        other
            .execute_batch(
                "CREATE TABLE t (a INTEGER, b TEXT, c INTEGER NOT NULL DEFAULT 1, PRIMARY KEY (a)) WITHOUT ROWID;
                 CREATE TABLE u (a INTEGER, c BLOB);",
            )
            .unwrap();
        assert_ne!(schema_of(&migrated), schema_of(&other));
    }

    /// The schema as sorted (type, name, tbl_name, sql) rows, whitespace in
    /// the SQL normalised (and nothing else: `ALTER TABLE … ADD COLUMN`
    /// edits the stored CREATE text, and schema.sql must say the same).
    fn schema_of(c: &Connection) -> Vec<(String, String, String, String)> {
        let mut stmt = c
            .prepare(&format!(
                "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_schema WHERE NOT ({NOT_OURS})"
            ))
            .unwrap();
        let mut rows: Vec<_> = stmt
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    normalise(&r.get::<_, String>(3)?),
                ))
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        rows.sort();
        rows
    }

    /// Every row of every proxyplane table (a step's seed rows, such as the
    /// session counter, must match schema.sql's too).
    fn contents_of(c: &Connection) -> Vec<(String, Vec<String>)> {
        let tables: Vec<String> = c
            .prepare(&format!(
                "SELECT name FROM sqlite_schema WHERE type = 'table' AND NOT ({NOT_OURS}) ORDER BY name"
            ))
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        tables
            .into_iter()
            .map(|t| {
                let mut stmt = c.prepare(&format!("SELECT * FROM \"{t}\"")).unwrap();
                let n = stmt.column_count();
                let mut rows: Vec<String> = stmt
                    .query_map([], |r| {
                        (0..n)
                            .map(|i| r.get::<_, Value>(i))
                            .collect::<rusqlite::Result<Vec<_>>>()
                            .map(|v| format!("{v:?}"))
                    })
                    .unwrap()
                    .collect::<rusqlite::Result<_>>()
                    .unwrap();
                rows.sort();
                (t, rows)
            })
            .collect()
    }

    fn version(c: &Connection) -> i64 {
        c.pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap()
    }

    fn from_schema_sql() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(SCHEMA_SQL).unwrap();
        c
    }

    fn assert_same_schema(migrated: &Connection, whole: &Connection) {
        let (m, w) = (schema_of(migrated), schema_of(whole));
        let only_m: Vec<_> = m.iter().filter(|r| !w.contains(r)).collect();
        let only_w: Vec<_> = w.iter().filter(|r| !m.contains(r)).collect();
        assert!(
            only_m.is_empty() && only_w.is_empty(),
            "migrations/ and schema.sql disagree.\nonly in the migrated database: {only_m:#?}\nonly in schema.sql: {only_w:#?}"
        );
    }

    #[test]
    fn a_new_database_migrated_step_by_step_equals_schema_sql() {
        let mut c = Connection::open_in_memory().unwrap();
        run(&mut c).unwrap();
        assert_eq!(version(&c), LATEST);
        let whole = from_schema_sql();
        assert_same_schema(&c, &whole);
        assert_eq!(contents_of(&c), contents_of(&whole));
        assert!(
            contents_of(&c).contains(&(
                "session_counts".into(),
                vec!["[Integer(1), Integer(0), Integer(0)]".into()]
            )),
            "a new database starts its session counters at zero"
        );

        // An up-to-date database is left as it is.
        run(&mut c).unwrap();
        assert_eq!(version(&c), LATEST);
        assert_same_schema(&c, &whole);
        assert_eq!(contents_of(&c), contents_of(&whole));
    }

    #[test]
    fn a_database_carrying_litestream_tables_migrates_and_equals_schema_sql() {
        let mut c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE _litestream_seq (id INTEGER PRIMARY KEY, seq INTEGER);
             CREATE TABLE _litestream_lock (id INTEGER);
             INSERT INTO _litestream_seq VALUES (1, 42);",
        )
        .unwrap();
        run(&mut c).unwrap();
        assert_eq!(version(&c), LATEST);
        let whole = from_schema_sql();
        assert_same_schema(&c, &whole);
        assert_eq!(contents_of(&c), contents_of(&whole));
        let seq: i64 = c
            .query_row("SELECT seq FROM _litestream_seq WHERE id = 1", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(seq, 42, "Litestream's rows are left alone");
    }

    #[test]
    fn the_version_1_fixture_migrates_to_schema_sql_with_its_counters_backfilled() {
        let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/v1/proxyplane.db");
        let mut c = Connection::open_in_memory().unwrap();
        c.restore(
            rusqlite::MAIN_DB,
            &fixture,
            None::<fn(rusqlite::backup::Progress)>,
        )
        .unwrap();
        assert_eq!(version(&c), 1);
        run(&mut c).unwrap();
        assert_eq!(version(&c), LATEST);
        assert_same_schema(&c, &from_schema_sql());
        // Three live enabled sessions and one disabled (tests/fixtures/v1/README.md).
        let counts: (i64, i64) = c
            .query_row(
                "SELECT live_enabled, live_disabled FROM session_counts WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(counts, (3, 1));
    }

    #[test]
    fn a_step_that_fails_halfway_leaves_the_database_as_the_previous_step_did() {
        let first = Step {
            version: 1,
            name: "0001_a",
            sql: "CREATE TABLE a (x); INSERT INTO a VALUES (1);",
        };
        // Its first statements run before the syntax error at the end stops it.
        let broken = Step {
            version: 2,
            name: "0002_b",
            sql: "CREATE TABLE b (x); INSERT INTO a VALUES (2); CREATE TABL oops (x);",
        };
        let mut c = Connection::open_in_memory().unwrap();
        let err = run_steps(&mut c, &[first, broken]).unwrap_err();
        assert!(
            err.contains("schema version 2") && err.contains("migrations/0002_b.sql"),
            "the message names the step: {err}"
        );
        assert_eq!(version(&c), 1);
        let names: Vec<String> = schema_of(&c).into_iter().map(|r| r.1).collect();
        assert_eq!(names, ["a"]);
        assert_eq!(
            contents_of(&c),
            [("a".to_string(), vec!["[Integer(1)]".to_string()])]
        );

        // Fixed, the next run carries on from step 2 without redoing step 1.
        let first = Step {
            version: 1,
            name: "0001_a",
            sql: "CREATE TABLE a (x); INSERT INTO a VALUES (1);",
        };
        let fixed = Step {
            version: 2,
            name: "0002_b",
            sql: "CREATE TABLE b (x); INSERT INTO a VALUES (2);",
        };
        run_steps(&mut c, &[first, fixed]).unwrap();
        assert_eq!(version(&c), 2);
        let rows = contents_of(&c);
        assert_eq!(
            rows[0],
            (
                "a".to_string(),
                vec!["[Integer(1)]".into(), "[Integer(2)]".into()]
            )
        );
    }

    #[test]
    fn a_database_from_a_newer_binary_is_refused_before_anything_is_written() {
        let mut c = Connection::open_in_memory().unwrap();
        c.execute_batch(&format!(
            "CREATE TABLE future (x); PRAGMA user_version = {};",
            LATEST + 1
        ))
        .unwrap();
        let err = run(&mut c).unwrap_err();
        assert!(err.contains("newer proxyplane"), "{err}");
        assert_eq!(version(&c), LATEST + 1);
        let names: Vec<String> = schema_of(&c).into_iter().map(|r| r.1).collect();
        assert_eq!(names, ["future"]);
    }

    #[test]
    fn every_file_in_migrations_is_a_step_in_order() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let listed: Vec<String> = STEPS.iter().map(|s| format!("{}.sql", s.name)).collect();
        assert_eq!(
            files, listed,
            "a file in migrations/ that STEPS does not run, or the reverse"
        );
        for s in STEPS {
            assert!(
                s.name.starts_with(&format!("{:04}_", s.version)),
                "{} is step {}",
                s.name,
                s.version
            );
        }
    }
}
