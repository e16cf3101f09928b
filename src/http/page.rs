//! Pagination as the contract has it: `page` (from 1), `perPage` (default
//! 30, capped at 100) and `sort` (`+field` or `-field`), answered as
//! `{count, page, perPage, sort, <resource>: [...]}`.

use crate::app::params::Params;
use crate::error::Error;

pub const DEFAULT_PER_PAGE: usize = 30;
/// The contract's cap; larger requests are served 100 items, not refused.
pub const MAX_PER_PAGE: usize = 100;

#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub page: usize,
    pub per_page: usize,
    /// Field name, without its sign.
    pub field: String,
    pub descending: bool,
}

impl Page {
    /// Reads `page`, `perPage` and `sort`; `fields` lists the sortable fields.
    ///
    /// # Errors
    /// 400 for non-numbers, 422 for page 0 or an unknown sort field.
    pub fn parse(p: &Params, fields: &[&str]) -> Result<Page, Error> {
        let page = p.u32("page")?.unwrap_or(1) as usize;
        if page == 0 {
            return Err(Error::invalid("page", "pages count from 1"));
        }
        let per_page = match p.u32("perPage")? {
            Some(0) => return Err(Error::invalid("perPage", "must be at least 1")),
            Some(n) => (n as usize).min(MAX_PER_PAGE),
            None => DEFAULT_PER_PAGE,
        };
        let sort = p.raw("sort").unwrap_or("+createdAt");
        // An unescaped `+` in a query string decodes as a space.
        let (descending, field) = match sort.as_bytes().first() {
            Some(b'-') => (true, &sort[1..]),
            Some(b'+' | b' ') => (false, &sort[1..]),
            _ => (false, sort),
        };
        if !fields.contains(&field) {
            return Err(Error::invalid(
                "sort",
                format!("\"{sort}\": sortable fields are {}", fields.join(", ")),
            ));
        }
        Ok(Page {
            page,
            per_page,
            field: field.to_string(),
            descending,
        })
    }

    pub fn offset(&self) -> usize {
        (self.page - 1) * self.per_page
    }

    pub fn sort(&self) -> String {
        format!("{}{}", if self.descending { '-' } else { '+' }, self.field)
    }

    /// The page as a window of a `createdAt`-ordered listing.
    pub fn window(&self) -> crate::service::Window {
        crate::service::Window {
            offset: self.offset(),
            limit: self.per_page,
            descending: self.descending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(q: &str) -> Result<Page, Error> {
        Page::parse(
            &Params::parse(Some(q), 1000).unwrap(),
            &["createdAt", "name"],
        )
    }

    #[test]
    fn defaults_caps_and_errors() {
        let p = page("").unwrap();
        assert_eq!(
            (p.page, p.per_page, p.sort()),
            (1, 30, "+createdAt".to_string())
        );
        assert_eq!(page("perPage=500").unwrap().per_page, 100);
        assert_eq!(page("page=3&perPage=10").unwrap().offset(), 20);
        assert!(page("sort=-name").unwrap().descending);
        assert!(matches!(page("page=0"), Err(Error::Invalid { .. })));
        assert!(matches!(page("page=x"), Err(Error::Malformed { .. })));
        assert!(matches!(page("sort=size"), Err(Error::Invalid { .. })));
        assert!(matches!(page("sort=-size"), Err(Error::Invalid { .. })));
        // `+createdAt` unescaped (a space once decoded) and escaped.
        assert_eq!(page("sort=+name").unwrap().sort(), "+name");
        assert_eq!(page("sort=%2Bname").unwrap().sort(), "+name");
    }
}
