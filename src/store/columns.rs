//! One column list per table: `table!` turns it into the row struct, the
//! SELECT list, the row reader and the INSERT, so adding a column is a
//! migration, one line here, the proto field and its conversion in `api/`.

use rusqlite::types::{FromSql, ToSql, ToSqlOutput};
use rusqlite::{Connection, Row};

/// Reads a row's columns in the order its column list names them, from
/// wherever that list starts in the statement (a join reads two rows from
/// one result row, one after the other).
pub struct Reader<'r, 's> {
    row: &'r Row<'s>,
    at: usize,
}

impl<'r, 's> Reader<'r, 's> {
    pub fn new(row: &'r Row<'s>) -> Self {
        Reader { row, at: 0 }
    }

    /// The next column.
    pub fn col<T: FromSql>(&mut self) -> rusqlite::Result<T> {
        let v = self.row.get(self.at);
        self.at += 1;
        v
    }
}

/// A field stored in several columns (a provider's gateway): how it reads
/// from them and what it binds to them, in the order its `group` entry of
/// `table!` lists them.
pub trait Group: Sized {
    fn read(r: &mut Reader) -> rusqlite::Result<Self>;
    fn bind<'a>(&'a self, out: &mut Vec<ToSqlOutput<'a>>) -> rusqlite::Result<()>;
}

/// `UPDATE table SET column = ?, … WHERE id = ?`, written from (column,
/// value) pairs so each column stands beside its value. The statement is
/// the same text every time for a call site, so it is prepared once.
pub fn update_by_id(
    c: &Connection,
    table: &str,
    id: &dyn ToSql,
    set: &[(&str, &dyn ToSql)],
) -> rusqlite::Result<usize> {
    let assignments = set
        .iter()
        .map(|(col, _)| format!("{col} = ?"))
        .collect::<Vec<_>>()
        .join(", ");
    c.prepare_cached(&format!("UPDATE {table} SET {assignments} WHERE id = ?"))?
        .execute(rusqlite::params_from_iter(
            set.iter().map(|(_, v)| v).chain(std::iter::once(&id)),
        ))
}

/// Statements built from a table's SELECT list and a literal tail, one per
/// call site, kept for the life of the process (a handful per table).
pub struct Statements(parking_lot::Mutex<Vec<(&'static str, &'static str)>>);

impl Statements {
    pub const fn new() -> Self {
        Statements(parking_lot::const_mutex(Vec::new()))
    }

    /// `"{select} {rest}"`, built on the first call for this `rest`.
    pub fn sql_for(&self, select: &str, rest: &'static str) -> &'static str {
        let mut built = self.0.lock();
        // By address: each call site passes its own literal.
        if let Some((_, sql)) = built.iter().find(|(r, _)| std::ptr::eq(*r, rest)) {
            return sql;
        }
        let sql: &'static str = Box::leak(format!("{select} {rest}").into_boxed_str());
        built.push((rest, sql));
        sql
    }
}

/// `update_by_id` for fields stored under their own names:
/// `update_fields!(c, "pools", p; name, version)`.
macro_rules! update_fields {
    ($c:expr, $table:literal, $row:expr; $($f:ident),* $(,)?) => {
        $crate::store::columns::update_by_id(
            $c,
            $table,
            &$row.id,
            &[$((stringify!($f), &$row.$f as &dyn rusqlite::types::ToSql)),*],
        )
    };
}

/// `a, b, c` from literals, at compile time.
macro_rules! join {
    ($sep:literal; $first:expr $(, $rest:expr)* $(,)?) => {
        concat!($first $(, $sep, $rest)*)
    };
}

/// A field's column: its own name unless the list gives another.
macro_rules! column {
    ($f:ident) => {
        stringify!($f)
    };
    ($f:ident, $col:literal) => {
        $col
    };
}

/// One `?` per column.
macro_rules! placeholder {
    ($col:expr) => {
        "?"
    };
}

/// What a SELECT reads from: the table unless the list names a join.
macro_rules! source {
    ($table:literal) => {
        $table
    };
    ($table:literal, $from:literal) => {
        $from
    };
}

/// A row struct and its mapping, from one list of fields, each stored in
/// the column of its name or the one given (`pub ptype: i32 = "type"`).
///
/// - The plain entries are read and inserted in the order listed.
/// - `group` entries: a field kept in several columns, read and bound by its
///   `Group` impl (after the plain ones).
/// - `read_only` entries: read, never inserted; an expression (`deleted_at IS
///   NOT NULL`) or a column of a table joined in by `from`.
///
/// Generates `COLUMNS` (every column read, in order), `COLS` (the same as a
/// SELECT list), `SELECT` (`SELECT COLS FROM` the table or the `from`
/// join), `INSERT` (the plain and group columns with one `?` each), `read`
/// (from a `Reader`), `from_row` (a whole result row), `values` (the INSERT
/// parameters, in order), and the statements `one`, `all` (a SELECT
/// completed by a WHERE clause) and `insert`, all prepared once.
macro_rules! table {
    (
        $(#[$meta:meta])*
        pub struct $name:ident in $table:literal $(from $from:literal)? {
            $( $(#[$fmeta:meta])* pub $f:ident : $ty:ty $(= $col:literal)? ),* $(,)?
        }
        $( group {
            $( $(#[$gmeta:meta])* pub $g:ident : $gty:ty = [ $($gcol:literal),* $(,)? ] ),* $(,)?
        } )?
        $( read_only {
            $( $(#[$rmeta:meta])* pub $r:ident : $rty:ty = $rcol:literal ),* $(,)?
        } )?
    ) => {
        $(#[$meta])*
        pub struct $name {
            $( $(#[$fmeta])* pub $f: $ty, )*
            $($( $(#[$gmeta])* pub $g: $gty, )*)?
            $($( $(#[$rmeta])* pub $r: $rty, )*)?
        }

        #[allow(dead_code)]
        impl $name {
            /// Every column read, in order.
            pub const COLUMNS: &'static [&'static str] = &[
                $($crate::store::columns::column!($f $(, $col)?),)*
                $($($($gcol,)*)*)?
                $($($rcol,)*)?
            ];
            /// `COLUMNS` as a SELECT list.
            pub const COLS: &'static str = $crate::store::columns::join!(", ";
                $($crate::store::columns::column!($f $(, $col)?),)*
                $($($($gcol,)*)*)?
                $($($rcol,)*)?
            );
            pub const SELECT: &'static str = concat!(
                "SELECT ",
                $crate::store::columns::join!(", ";
                    $($crate::store::columns::column!($f $(, $col)?),)*
                    $($($($gcol,)*)*)?
                    $($($rcol,)*)?
                ),
                " FROM ",
                $crate::store::columns::source!($table $(, $from)?)
            );
            pub const INSERT: &'static str = concat!(
                "INSERT INTO ", $table, "(",
                $crate::store::columns::join!(", ";
                    $($crate::store::columns::column!($f $(, $col)?),)*
                    $($($($gcol,)*)*)?
                ),
                ") VALUES (",
                $crate::store::columns::join!(", ";
                    $($crate::store::columns::placeholder!($f),)*
                    $($($($crate::store::columns::placeholder!($gcol),)*)*)?
                ),
                ")"
            );

            /// Reads `COLUMNS` from where the reader stands.
            pub fn read(r: &mut $crate::store::columns::Reader) -> rusqlite::Result<Self> {
                // Fields are evaluated in the order written: the list's order.
                Ok($name {
                    $( $f: r.col()?, )*
                    $($( $g: <$gty as $crate::store::columns::Group>::read(r)?, )*)?
                    $($( $r: r.col()?, )*)?
                })
            }

            /// A result row that starts with `COLUMNS`.
            pub fn from_row(row: &rusqlite::Row) -> rusqlite::Result<Self> {
                Self::read(&mut $crate::store::columns::Reader::new(row))
            }

            /// The parameters of `INSERT`, in order.
            pub fn values(&self) -> rusqlite::Result<Vec<rusqlite::types::ToSqlOutput<'_>>> {
                let mut out = Vec::with_capacity(Self::COLUMNS.len());
                $( out.push(rusqlite::types::ToSql::to_sql(&self.$f)?); )*
                $($( $crate::store::columns::Group::bind(&self.$g, &mut out)?; )*)?
                Ok(out)
            }

            pub fn insert(&self, c: &rusqlite::Connection) -> rusqlite::Result<usize> {
                c.prepare_cached(Self::INSERT)?
                    .execute(rusqlite::params_from_iter(self.values()?))
            }

            /// The row `SELECT … <rest>` finds, if any. `rest` is a literal
            /// at every call site: the whole statement is built once per
            /// call site (`sql_for`), not formatted on every call (~3k
            /// instructions of each point read).
            pub fn one(
                c: &rusqlite::Connection,
                rest: &'static str,
                p: impl rusqlite::Params,
            ) -> rusqlite::Result<Option<Self>> {
                use rusqlite::OptionalExtension;
                static BUILT: $crate::store::columns::Statements =
                    $crate::store::columns::Statements::new();
                c.prepare_cached(BUILT.sql_for(Self::SELECT, rest))?
                    .query_row(p, Self::from_row)
                    .optional()
            }

            /// One keyset page of the rows `SELECT … WHERE <filter>` finds
            /// (its one parameter is `?1`): ids after the cursor, in id
            /// order, one more than `size` read to learn if a page follows.
            #[allow(dead_code)]
            pub fn keyset(
                c: &rusqlite::Connection,
                filter: &str,
                key: impl rusqlite::ToSql,
                cursor: Option<[u8; 16]>,
                size: usize,
            ) -> crate::error::Result<crate::store::Page<Self>> {
                let rows = Self::all(
                    c,
                    &format!("WHERE {filter} AND id > ?2 ORDER BY id LIMIT ?3"),
                    rusqlite::params![key, crate::store::after(cursor), size as i64 + 1],
                )?;
                Ok(crate::store::page(rows, size, |r| r.id.0))
            }

            /// Every row `SELECT … <rest>` finds.
            pub fn all(
                c: &rusqlite::Connection,
                rest: &str,
                p: impl rusqlite::Params,
            ) -> rusqlite::Result<Vec<Self>> {
                c.prepare_cached(&format!("{} {rest}", Self::SELECT))?
                    .query_map(p, Self::from_row)?
                    .collect()
            }
        }
    };
}

pub(crate) use {column, join, placeholder, source, table, update_fields};
