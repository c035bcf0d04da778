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

/// `a, b, c` from literals, at compile time.
macro_rules! join {
    ($sep:literal; $first:expr $(, $rest:expr)* $(,)?) => {
        concat!($first $(, $sep, $rest)*)
    };
}

/// One `?` per column.
macro_rules! placeholder {
    ($col:literal) => {
        "?"
    };
}

/// A row struct and its mapping, from one list of `field: Type = "column"`.
///
/// - The plain entries are read and inserted in the order listed.
/// - `group` entries: a field kept in several columns, read and bound by its
///   `Group` impl (after the plain ones).
/// - `read_only` entries: read, never inserted; an expression (`deleted_at IS
///   NOT NULL`) or a column the database fills in.
///
/// Generates `COLUMNS` (every column read, in order), `COLS` (the same as a
/// SELECT list), `INSERT` (the plain and group columns with one `?` each),
/// `read` (from a `Reader`), `from_row` (a whole result row) and `values`
/// (the INSERT parameters, in order).
macro_rules! table {
    (
        $(#[$meta:meta])*
        pub struct $name:ident in $table:literal {
            $( $(#[$fmeta:meta])* pub $f:ident : $ty:ty = $col:literal ),* $(,)?
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
            pub const COLUMNS: &'static [&'static str] =
                &[$($col,)* $($($($gcol,)*)*)? $($($rcol,)*)?];
            /// `COLUMNS` as a SELECT list.
            pub const COLS: &'static str =
                $crate::store::columns::join!(", "; $($col,)* $($($($gcol,)*)*)? $($($rcol,)*)?);
            pub const INSERT: &'static str = concat!(
                "INSERT INTO ", $table, "(",
                $crate::store::columns::join!(", "; $($col,)* $($($($gcol,)*)*)?),
                ") VALUES (",
                $crate::store::columns::join!(", ";
                    $($crate::store::columns::placeholder!($col),)*
                    $($($($crate::store::columns::placeholder!($gcol),)*)*)?),
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
        }
    };
}

pub(crate) use {join, placeholder, table};
