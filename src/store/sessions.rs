use rusqlite::Connection;
use crate::error::Result;
pub fn count_by_state(_c: &Connection, _now: i64) -> Result<Vec<(&'static str, i64)>> { Ok(vec![]) }
