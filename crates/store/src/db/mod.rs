//! How the store runs a statement, whichever database and driver are behind it.
//!
//! The entity modules (`users.rs`, `jobs.rs`, …) write each statement once, as SQL text with
//! `$N` placeholders (SQLite and PostgreSQL both accept them), and run it through this module:
//!
//! - [`Query`] is the text and its arguments ([`Arg`]: the four kinds of value the schema
//!   holds, with typed NULLs so PostgreSQL knows each parameter's type). Dynamic statements
//!   (filters, `IN` lists, multi-row inserts) are built with [`Query::push`], which only takes
//!   `&'static str`, and [`Query::push_bind`], so no caller text ever becomes SQL.
//! - [`Db`] is the pool (SQLite or PostgreSQL, through sqlx), [`Tx`] a write transaction on it,
//!   and `sqlite::Rusqlite` a rusqlite connection: the SQLite store's job writer thread and its
//!   inline reads (see `sqlite.rs`). All of them run the same [`Query`].
//! - Decoders read rows through [`Row`], which every driver's row implements, by column
//!   position (found at compile time with [`column`]): one decoder per entity for all drivers.
//!
//! So entity code is compiled once, not once per backend; only this thin layer knows sqlx's and
//! rusqlite's types. Dialect-only SQL lives in `sqlite.rs` and `postgres.rs` below it.

pub(crate) mod postgres;
pub(crate) mod sqlite;

use std::borrow::Cow;
use std::fmt::Write as _;
use std::future::Future;

use pipewright_core::{Status, Timestamp};

use crate::{Backend, Result, StoreError};

/// One argument of a statement. Each kind carries its own NULL, so an absent value still has a
/// type (PostgreSQL infers parameter types from what is bound).
#[derive(Debug, Clone)]
pub(crate) enum Arg<'a> {
    Int(Option<i64>),
    Text(Option<Cow<'a, str>>),
    Bool(Option<bool>),
    Bytes(Option<Cow<'a, [u8]>>),
}

macro_rules! arg_from {
    ($($t:ty => |$v:ident| $e:expr),* $(,)?) => {
        $(impl<'a> From<$t> for Arg<'a> {
            fn from($v: $t) -> Self {
                $e
            }
        })*
    };
}

arg_from! {
    i64 => |v| Arg::Int(Some(v)),
    Option<i64> => |v| Arg::Int(v),
    bool => |v| Arg::Bool(Some(v)),
    Option<bool> => |v| Arg::Bool(v),
    &'a str => |v| Arg::Text(Some(Cow::Borrowed(v))),
    &'a String => |v| Arg::Text(Some(Cow::Borrowed(v.as_str()))),
    String => |v| Arg::Text(Some(Cow::Owned(v))),
    Option<&'a str> => |v| Arg::Text(v.map(Cow::Borrowed)),
    &'a Option<String> => |v| Arg::Text(v.as_deref().map(Cow::Borrowed)),
    Option<String> => |v| Arg::Text(v.map(Cow::Owned)),
    &'a [u8] => |v| Arg::Bytes(Some(Cow::Borrowed(v))),
    Vec<u8> => |v| Arg::Bytes(Some(Cow::Owned(v))),
    Timestamp => |v| Arg::Int(Some(v.millis())),
    Option<Timestamp> => |v| Arg::Int(v.map(Timestamp::millis)),
}

/// A statement and its arguments, ready to run on any [`Exec`].
#[derive(Debug, Clone)]
pub(crate) struct Query<'a> {
    sql: Cow<'static, str>,
    args: Vec<Arg<'a>>,
    /// Whether drivers may keep the prepared statement (false for statements whose text
    /// varies with their data, such as multi-row inserts, which would only churn the cache).
    persistent: bool,
}

/// A statement whose text is fixed; bind its `$1`, `$2`, … in order with [`Query::bind`].
pub(crate) fn query<'a>(sql: &'static str) -> Query<'a> {
    Query {
        sql: Cow::Borrowed(sql),
        args: Vec::new(),
        persistent: true,
    }
}

impl<'a> Query<'a> {
    /// The next `$N`'s value.
    pub(crate) fn bind(mut self, value: impl Into<Arg<'a>>) -> Self {
        self.args.push(value.into());
        self
    }

    /// Appends SQL text. Only `'static` text: values go through [`Query::push_bind`].
    pub(crate) fn push(&mut self, sql: &'static str) -> &mut Self {
        self.sql.to_mut().push_str(sql);
        self
    }

    /// Appends a placeholder for `value`.
    pub(crate) fn push_bind(&mut self, value: impl Into<Arg<'a>>) -> &mut Self {
        self.args.push(value.into());
        let n = self.args.len();
        let _ = write!(self.sql.to_mut(), "${n}");
        self
    }

    /// Appends `$a, $b, …` for `values`.
    pub(crate) fn push_list<T: Into<Arg<'a>>>(
        &mut self,
        values: impl IntoIterator<Item = T>,
    ) -> &mut Self {
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.push_bind(value);
        }
        self
    }

    /// Appends `($a, $b, …)`: one row of a multi-row `VALUES`.
    pub(crate) fn push_tuple(&mut self, values: impl IntoIterator<Item = Arg<'a>>) -> &mut Self {
        self.push("(");
        self.push_list(values);
        self.push(")")
    }

    /// Not kept in the drivers' prepared-statement caches (see the field).
    pub(crate) fn not_cached(mut self) -> Self {
        self.persistent = false;
        self
    }

    pub(crate) fn sql(&self) -> &str {
        &self.sql
    }

    /// The text to send to `backend`. SQLite keeps the names of `$N` (and `?N`) parameters in
    /// a list it searches on every lookup, both while parsing and while binding, which is
    /// quadratic in the thousands of parameters of a multi-row insert. So on SQLite a built
    /// statement (the only kind with that many, and not cached) whose placeholders appear once
    /// each and in order gets anonymous `?`s, which SQLite numbers by position, as sqlx's own
    /// query builder does. No statement has a `$` in a string literal.
    pub(crate) fn text(&self, backend: Backend) -> Cow<'static, str> {
        match (&self.sql, backend) {
            (Cow::Owned(sql), Backend::Sqlite) => Cow::Owned(anonymous(sql)),
            (sql, _) => sql.clone(),
        }
    }

    pub(crate) fn args(&self) -> &[Arg<'a>] {
        &self.args
    }
}

/// `sql` with its `$1`, `$2`, … written `?` when they appear once each and in order, else
/// `?1`, `?2`, … (which SQLite also binds by number).
fn anonymous(sql: &str) -> String {
    let in_order = placeholders(sql)
        .zip(1..)
        .all(|((start, end), n)| sql[start + 1..end].parse() == Ok(n));
    let mut out = String::with_capacity(sql.len());
    let mut copied = 0;
    for (start, end) in placeholders(sql) {
        out.push_str(&sql[copied..start]);
        out.push('?');
        if !in_order {
            out.push_str(&sql[start + 1..end]);
        }
        copied = end;
    }
    out.push_str(&sql[copied..]);
    out
}

/// Where each `$N` in `sql` stands, as byte ranges.
fn placeholders(sql: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let bytes = sql.as_bytes();
    let digit = move |i: usize| bytes.get(i).is_some_and(u8::is_ascii_digit);
    (0..bytes.len())
        .filter(move |&i| bytes[i] == b'$' && digit(i + 1))
        .map(move |i| {
            (
                i,
                (i + 1..=bytes.len()).find(|&j| !digit(j)).unwrap_or(i + 1),
            )
        })
}

/// A result row of any driver, read by column position. Each method reads one column as that
/// kind of value (NULL as `None`); [`RowExt::get`] gives the typed view decoders use.
pub(crate) trait Row {
    fn int(&self, index: usize) -> Result<Option<i64>>;
    fn text(&self, index: usize) -> Result<Option<String>>;
    fn boolean(&self, index: usize) -> Result<Option<bool>>;
    fn bytes(&self, index: usize) -> Result<Option<Vec<u8>>>;
}

/// Reads one row into a value; every decoder has this type, whatever the driver.
pub(crate) type Decode<T> = fn(&dyn Row) -> Result<T>;

/// A value decoders can read from a column.
pub(crate) trait FromColumn: Sized {
    fn read(row: &dyn Row, index: usize) -> Result<Self>;
}

fn not_null<T>(value: Option<T>, index: usize) -> Result<T> {
    value.ok_or_else(|| StoreError::Corrupt(format!("column {index} is NULL")))
}

macro_rules! from_column {
    ($($t:ty => $method:ident),* $(,)?) => {
        $(impl FromColumn for Option<$t> {
            fn read(row: &dyn Row, index: usize) -> Result<Self> {
                row.$method(index)
            }
        }
        impl FromColumn for $t {
            fn read(row: &dyn Row, index: usize) -> Result<Self> {
                not_null(row.$method(index)?, index)
            }
        })*
    };
}

from_column! {
    i64 => int,
    String => text,
    bool => boolean,
    Vec<u8> => bytes,
}

impl FromColumn for Option<Timestamp> {
    fn read(row: &dyn Row, index: usize) -> Result<Self> {
        Ok(row.int(index)?.map(Timestamp))
    }
}

impl FromColumn for Timestamp {
    fn read(row: &dyn Row, index: usize) -> Result<Self> {
        Ok(Timestamp(not_null(row.int(index)?, index)?))
    }
}

impl FromColumn for Status {
    fn read(row: &dyn Row, index: usize) -> Result<Self> {
        let text: String = FromColumn::read(row, index)?;
        Status::parse(&text).ok_or_else(|| StoreError::Corrupt(format!("unknown status {text}")))
    }
}

/// The typed view of a [`Row`]: `row.get(index)?` reads any [`FromColumn`].
pub(crate) trait RowExt {
    fn get<T: FromColumn>(&self, index: usize) -> Result<T>;
}

impl RowExt for dyn Row + '_ {
    fn get<T: FromColumn>(&self, index: usize) -> Result<T> {
        T::read(self, index)
    }
}

/// Where `name` stands in a comma-separated column list. Decoders call it in `const` blocks,
/// so reading by position costs nothing per row and a name missing from the list fails the
/// build.
pub(crate) const fn column(list: &str, name: &str) -> usize {
    let (list, name) = (list.as_bytes(), name.as_bytes());
    let (mut index, mut start, mut i) = (0, 0, 0);
    while i <= list.len() {
        if i == list.len() || list[i] == b',' {
            let (mut a, mut b) = (start, i);
            while a < b && list[a].is_ascii_whitespace() {
                a += 1;
            }
            while b > a && list[b - 1].is_ascii_whitespace() {
                b -= 1;
            }
            if b - a == name.len() {
                let mut k = 0;
                while k < name.len() && list[a + k] == name[k] {
                    k += 1;
                }
                if k == name.len() {
                    return index;
                }
            }
            index += 1;
            start = i + 1;
        }
        i += 1;
    }
    panic!("no such column in the list");
}

/// Where a column stands in the list `COLUMNS` that a decoder declares (`const COLUMNS: &str =
/// …;`), found at compile time; `col!(at, "name")` when that list starts at column `at`.
macro_rules! col {
    ($name:literal) => {
        const { $crate::db::column(COLUMNS, $name) }
    };
    ($at:expr, $name:literal) => {
        $at + const { $crate::db::column(COLUMNS, $name) }
    };
}
pub(crate) use col;

/// `SELECT <columns> FROM <from> <rest>` as one literal, where `<columns>` is an entity's
/// column list macro (the list its decoder reads): `select!(job_columns, "jobs", "WHERE id = $1")`.
macro_rules! select {
    ($columns:ident, $from:expr, $rest:literal) => {
        concat!("SELECT ", $columns!(), " FROM ", $from, " ", $rest)
    };
}
pub(crate) use select;

/// How many columns a comma-separated list has (where the next table's columns start in a
/// join).
pub(crate) const fn width(list: &str) -> usize {
    let list = list.as_bytes();
    let (mut n, mut i) = (1, 0);
    while i < list.len() {
        if list[i] == b',' {
            n += 1;
        }
        i += 1;
    }
    n
}

/// Something statements run on: a transaction, or a rusqlite connection. Written against
/// this, the job queue's steps (see `queue.rs`) run unchanged on sqlx and on rusqlite.
pub(crate) trait Exec {
    /// Runs a statement that returns no rows; how many rows it changed.
    async fn execute(&mut self, q: &Query<'_>) -> Result<u64>;
    async fn fetch_all<T>(&mut self, q: &Query<'_>, decode: Decode<T>) -> Result<Vec<T>>;
    async fn fetch_optional<T>(&mut self, q: &Query<'_>, decode: Decode<T>) -> Result<Option<T>>;
}

/// A write transaction that can be committed (dropping it rolls back).
pub(crate) trait Commit: Exec {
    async fn commit(self) -> Result<()>;
}

/// A connection that starts write transactions: the pool, or the SQLite job writer's own
/// connection.
pub(crate) trait Transactional {
    type Tx<'a>: Commit
    where
        Self: 'a;
    async fn begin_write(&mut self) -> Result<Self::Tx<'_>>;
}

/// Runs to completion a future that never waits: one whose statements all run on a rusqlite
/// connection, which blocks instead of yielding. This is how the async job-queue code runs on
/// the SQLite writer thread and in inline reads.
pub(crate) fn run_ready<T>(work: impl Future<Output = Result<T>>) -> Result<T> {
    let mut work = std::pin::pin!(work);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match work.as_mut().poll(&mut context) {
        std::task::Poll::Ready(result) => result,
        std::task::Poll::Pending => Err(StoreError::Corrupt(
            "a rusqlite statement waited, which it cannot".into(),
        )),
    }
}

/// The database behind the store: a pool of sqlx connections to one of the two backends.
#[derive(Clone)]
pub(crate) enum Db {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// A write transaction on the pool.
pub(crate) enum Tx {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

/// `q` as a sqlx query for `backend` (see [`Query::text`]), to run on an executor of that
/// backend. (A macro, not a function: each expansion is checked against one concrete backend,
/// so no `Encode`/`Type` bounds need spelling out.)
macro_rules! sqlx_query {
    ($q:expr, $backend:expr) => {{
        let q: &Query<'_> = $q;
        // Safe: `Query` text is built only from `&'static str` and placeholders.
        let sql = sqlx::AssertSqlSafe(q.text($backend));
        let mut query = sqlx::query(sql).persistent(q.persistent);
        for arg in &q.args {
            query = match arg {
                Arg::Int(v) => query.bind(*v),
                Arg::Text(v) => query.bind(v.as_deref()),
                Arg::Bool(v) => query.bind(*v),
                Arg::Bytes(v) => query.bind(v.as_deref()),
            };
        }
        query
    }};
}

/// Runs `$body` with `$conn` bound to the pool or transaction of whichever backend `$on` is
/// (and `$backend` to that [`Backend`], when named).
macro_rules! on_backend {
    ($on:expr, $enum:ident, $conn:ident => $body:expr) => {
        match $on {
            $enum::Sqlite($conn) => $body,
            $enum::Postgres($conn) => $body,
        }
    };
    ($on:expr, $enum:ident, $conn:ident, $backend:ident => $body:expr) => {
        match $on {
            $enum::Sqlite($conn) => {
                let $backend = Backend::Sqlite;
                $body
            }
            $enum::Postgres($conn) => {
                let $backend = Backend::Postgres;
                $body
            }
        }
    };
}

fn decode_all<R: Row, T>(rows: &[R], decode: Decode<T>) -> Result<Vec<T>> {
    rows.iter().map(|row| decode(row)).collect()
}

impl Db {
    /// Opens a pool for the database `url` names.
    pub(crate) async fn connect(url: &str) -> Result<Db> {
        match Backend::from_url(url) {
            Some(Backend::Sqlite) => Ok(Db::Sqlite(sqlite::pool(url).await?)),
            Some(Backend::Postgres) => Ok(Db::Postgres(postgres::pool(url).await?)),
            None => Err(StoreError::InvalidUrl),
        }
    }

    pub(crate) fn backend(&self) -> Backend {
        match self {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// Starts a write transaction (on SQLite with the write lock taken up front).
    pub(crate) async fn begin_write(&self) -> Result<Tx> {
        Ok(match self {
            Db::Sqlite(pool) => Tx::Sqlite(sqlite::begin_write(pool).await?),
            Db::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    pub(crate) async fn execute(&self, q: &Query<'_>) -> Result<u64> {
        on_backend!(self, Db, pool, backend => {
            let done = sqlx_query!(q, backend).execute(pool).await?;
            Ok(done.rows_affected())
        })
    }

    pub(crate) async fn fetch_all<T>(&self, q: &Query<'_>, decode: Decode<T>) -> Result<Vec<T>> {
        on_backend!(self, Db, pool, backend => {
            let rows = sqlx_query!(q, backend).fetch_all(pool).await?;
            decode_all(&rows, decode)
        })
    }

    pub(crate) async fn fetch_optional<T>(
        &self,
        q: &Query<'_>,
        decode: Decode<T>,
    ) -> Result<Option<T>> {
        on_backend!(self, Db, pool, backend => {
            let row = sqlx_query!(q, backend).fetch_optional(pool).await?;
            row.as_ref().map(|row| decode(row)).transpose()
        })
    }

    /// The one row `q` returns; [`StoreError::NotFound`] when there is none.
    pub(crate) async fn fetch_one<T>(&self, q: &Query<'_>, decode: Decode<T>) -> Result<T> {
        self.fetch_optional(q, decode)
            .await?
            .ok_or(StoreError::NotFound)
    }

    pub(crate) async fn close(&self) {
        on_backend!(self, Db, pool => pool.close().await)
    }
}

impl Tx {
    /// Runs a script of several statements (a migration).
    pub(crate) async fn execute_script(&mut self, sql: &'static str) -> sqlx::Result<()> {
        on_backend!(self, Tx, tx => sqlx::raw_sql(sql).execute(&mut **tx).await.map(|_| ()))
    }

    pub(crate) async fn fetch_one<T>(&mut self, q: &Query<'_>, decode: Decode<T>) -> Result<T> {
        self.fetch_optional(q, decode)
            .await?
            .ok_or(StoreError::NotFound)
    }
}

impl Exec for Tx {
    async fn execute(&mut self, q: &Query<'_>) -> Result<u64> {
        on_backend!(self, Tx, tx, backend => {
            let done = sqlx_query!(q, backend).execute(&mut **tx).await?;
            Ok(done.rows_affected())
        })
    }

    async fn fetch_all<T>(&mut self, q: &Query<'_>, decode: Decode<T>) -> Result<Vec<T>> {
        on_backend!(self, Tx, tx, backend => {
            let rows = sqlx_query!(q, backend).fetch_all(&mut **tx).await?;
            decode_all(&rows, decode)
        })
    }

    async fn fetch_optional<T>(&mut self, q: &Query<'_>, decode: Decode<T>) -> Result<Option<T>> {
        on_backend!(self, Tx, tx, backend => {
            let row = sqlx_query!(q, backend).fetch_optional(&mut **tx).await?;
            row.as_ref().map(|row| decode(row)).transpose()
        })
    }
}

impl Commit for Tx {
    async fn commit(self) -> Result<()> {
        on_backend!(self, Tx, tx => Ok(tx.commit().await?))
    }
}

impl Transactional for Db {
    type Tx<'a> = Tx;

    async fn begin_write(&mut self) -> Result<Tx> {
        Db::begin_write(self).await
    }
}

/// sqlx's rows of both backends, read by position.
macro_rules! sqlx_row {
    ($($row:ty),*) => {
        $(impl Row for $row {
            fn int(&self, index: usize) -> Result<Option<i64>> {
                Ok(sqlx::Row::try_get(self, index)?)
            }
            fn text(&self, index: usize) -> Result<Option<String>> {
                Ok(sqlx::Row::try_get(self, index)?)
            }
            fn boolean(&self, index: usize) -> Result<Option<bool>> {
                Ok(sqlx::Row::try_get(self, index)?)
            }
            fn bytes(&self, index: usize) -> Result<Option<Vec<u8>>> {
                Ok(sqlx::Row::try_get(self, index)?)
            }
        })*
    };
}

sqlx_row!(sqlx::sqlite::SqliteRow, sqlx::postgres::PgRow);

/// A single value in the first column (`COUNT(*)`, `RETURNING id`, …).
pub(crate) fn first<T: FromColumn>(row: &dyn Row) -> Result<T> {
    row.get(0)
}

impl Db {
    /// One page of a filtered listing: a `COUNT(*)` for the total, then the page's rows.
    /// `filter` appends the `WHERE …` clause to both statements; `order` is the `ORDER BY`
    /// list, in pieces.
    pub(crate) async fn paged<T>(
        &self,
        listing: Listing<'_>,
        page: crate::Page,
        decode: Decode<T>,
    ) -> Result<crate::Paged<T>> {
        let mut count = query("SELECT COUNT(*) FROM ");
        count.push(listing.from);
        (listing.filter)(&mut count);
        let total = self.fetch_one(&count, first).await?;
        let mut q = query("SELECT ");
        q.push(listing.columns).push(" FROM ").push(listing.from);
        (listing.filter)(&mut q);
        q.push(" ORDER BY ");
        for part in listing.order {
            q.push(part);
        }
        q.push(" LIMIT ").push_bind(page.limit());
        q.push(" OFFSET ").push_bind(page.offset());
        let items = self.fetch_all(&q, decode).await?;
        Ok(crate::Paged { items, total })
    }
}

/// What [`Db::paged`] lists: `SELECT columns FROM from` + `filter` + `ORDER BY order`.
pub(crate) struct Listing<'f> {
    pub(crate) columns: &'static str,
    pub(crate) from: &'static str,
    /// Binds owned or `'static` values only (it runs for both statements).
    pub(crate) filter: &'f (dyn Fn(&mut Query<'_>) + Sync),
    pub(crate) order: &'f [&'static str],
}

/// A `LIKE … ESCAPE '\'` pattern that matches `search` literally anywhere (lowercased).
pub(crate) fn like_pattern(search: &str) -> String {
    let mut out = String::with_capacity(search.len() + 2);
    out.push('%');
    for c in search.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// A list stored as one text column, `separator`-joined (tags, scopes, push options).
pub(crate) fn split_list(s: &str, separator: char) -> Vec<String> {
    s.split(separator)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_found_by_name_and_counted() {
        const LIST: &str = "a.id, a.name,\n b.id";
        assert_eq!(column(LIST, "a.id"), 0);
        assert_eq!(column(LIST, "a.name"), 1);
        assert_eq!(column(LIST, "b.id"), 2);
        assert_eq!(width(LIST), 3);
    }

    #[test]
    fn built_statements_number_their_placeholders() {
        let mut q = query("SELECT 1 WHERE a = $1").bind(7);
        q.push(" AND b IN (").push_list(["x", "y"]).push(")");
        q.push(" VALUES ")
            .push_tuple([Arg::from(1), Arg::from(true)]);
        assert_eq!(
            q.sql(),
            "SELECT 1 WHERE a = $1 AND b IN ($2, $3) VALUES ($4, $5)"
        );
        assert_eq!(q.args().len(), 5);
        assert_eq!(
            q.text(Backend::Sqlite),
            "SELECT 1 WHERE a = ? AND b IN (?, ?) VALUES (?, ?)"
        );
        let mut repeated = query("UPDATE t SET a = $2, b = $2 WHERE id = $1 AND c IN (").bind(1);
        repeated.push_list([10]).push(")");
        assert_eq!(
            repeated.text(Backend::Sqlite),
            "UPDATE t SET a = ?2, b = ?2 WHERE id = ?1 AND c IN (?2)"
        );
        assert_eq!(q.text(Backend::Postgres), q.sql());
        assert_eq!(query("SELECT $1").text(Backend::Sqlite), "SELECT $1");
    }
}
