//! Shared SQL helpers of the record modules: a `WHERE` built with
//! numbered placeholders ([`Where`]), a page of a listing ([`Window`],
//! `Meta::page`), `IN (...)` placeholders, and typed column readers that
//! turn a bad value into [`MetaError::Corrupt`].

use super::{Meta, MetaError, translate};
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

/// A bound value of a dynamically built query.
#[derive(Debug, Clone)]
pub(super) enum Bind {
    Str(String),
    Int(i64),
}

/// Builds `WHERE a = $1 AND b = $2 ...` with numbered placeholders.
#[derive(Debug, Default)]
pub(super) struct Where {
    pub(super) clauses: Vec<String>,
    binds: Vec<Bind>,
}

impl Where {
    pub(super) fn eq(&mut self, column: &str, value: Option<impl Into<BindValue>>) -> &mut Self {
        if let Some(v) = value {
            self.binds.push(v.into().0);
            self.clauses
                .push(format!("{column} = ${}", self.binds.len()));
        }
        self
    }

    /// A clause with one placeholder, written `{}` in `template`, e.g.
    /// `id IN (SELECT task_id FROM job_tasks WHERE job_id = {})`.
    pub(super) fn sub(&mut self, template: &str, value: Option<impl Into<BindValue>>) -> &mut Self {
        if let Some(v) = value {
            self.binds.push(v.into().0);
            self.clauses
                .push(template.replace("{}", &format!("${}", self.binds.len())));
        }
        self
    }

    pub(super) fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }

    pub(super) fn next(&self) -> usize {
        self.binds.len() + 1
    }

    pub(super) fn apply<'q>(
        &self,
        mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        for b in &self.binds {
            q = match b {
                Bind::Str(s) => q.bind(s.clone()),
                Bind::Int(i) => q.bind(*i),
            };
        }
        q
    }
}

pub(super) struct BindValue(Bind);

impl From<String> for BindValue {
    fn from(s: String) -> Self {
        BindValue(Bind::Str(s))
    }
}

impl From<&str> for BindValue {
    fn from(s: &str) -> Self {
        BindValue(Bind::Str(s.to_string()))
    }
}

impl From<Uuid> for BindValue {
    fn from(u: Uuid) -> Self {
        BindValue(Bind::Str(u.to_string()))
    }
}

impl From<i64> for BindValue {
    fn from(i: i64) -> Self {
        BindValue(Bind::Int(i))
    }
}

/// One page of a listing: rows in `+createdAt` or `-createdAt` order.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub offset: usize,
    pub limit: usize,
    pub descending: bool,
}

impl Window {
    fn order(&self) -> &'static str {
        if self.descending {
            " ORDER BY created_at DESC, id DESC"
        } else {
            " ORDER BY created_at ASC, id ASC"
        }
    }
}

impl Meta {
    /// A page of `table` rows matching `filter` (newest or oldest first) and
    /// the count of all matches; every row if `window` is `None`.
    pub(super) async fn page<T>(
        &self,
        table: &str,
        columns: &str,
        filter: &Where,
        window: Option<Window>,
        row: fn(&AnyRow) -> Result<T, MetaError>,
    ) -> Result<(usize, Vec<T>), MetaError> {
        let count_sql = format!("SELECT COUNT(*) AS n FROM {table}{}", filter.sql());
        let n: i64 = filter
            .apply(sqlx::query(&count_sql))
            .fetch_one(&self.pool)
            .await
            .map_err(translate)?
            .try_get("n")
            .map_err(translate)?;
        let rows = match window {
            Some(w) => {
                let sql = format!(
                    "SELECT {columns} FROM {table}{}{} LIMIT ${} OFFSET ${}",
                    filter.sql(),
                    w.order(),
                    filter.next(),
                    filter.next() + 1
                );
                filter
                    .apply(sqlx::query(&sql))
                    .bind(w.limit as i64)
                    .bind(w.offset as i64)
                    .fetch_all(&self.pool)
                    .await
            }
            None => {
                let sql = format!(
                    "SELECT {columns} FROM {table}{} ORDER BY created_at ASC, id ASC",
                    filter.sql()
                );
                filter.apply(sqlx::query(&sql)).fetch_all(&self.pool).await
            }
        }
        .map_err(translate)?;
        Ok((
            usize::try_from(n).unwrap_or(0),
            rows.iter().map(row).collect::<Result<_, _>>()?,
        ))
    }
}

pub(super) fn text(row: &AnyRow, col: &str) -> Result<String, MetaError> {
    row.try_get::<String, _>(col)
        .map_err(|e| MetaError::Corrupt(format!("{col}: {e}")))
}

pub(super) fn opt_text(row: &AnyRow, col: &str) -> Result<Option<String>, MetaError> {
    row.try_get::<Option<String>, _>(col)
        .map_err(|e| MetaError::Corrupt(format!("{col}: {e}")))
}

pub(super) fn int(row: &AnyRow, col: &str) -> Result<i64, MetaError> {
    row.try_get::<i64, _>(col)
        .map_err(|e| MetaError::Corrupt(format!("{col}: {e}")))
}

pub(super) fn uuid(row: &AnyRow, col: &str) -> Result<Uuid, MetaError> {
    let s = text(row, col)?;
    Uuid::parse_str(&s).map_err(|e| MetaError::Corrupt(format!("{col}: {e}")))
}

/// `$first, ..., $(first + n - 1)`: the placeholders of an `IN (...)` list.
pub(super) fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn opt_int(row: &AnyRow, col: &str) -> Result<Option<i64>, MetaError> {
    row.try_get::<Option<i64>, _>(col)
        .map_err(|e| MetaError::Corrupt(format!("{col}: {e}")))
}
