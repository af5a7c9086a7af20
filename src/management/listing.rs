//! The query parameters every list endpoint takes (docs/management-api.md, "Lists"): filter by
//! `name` (substring, or a regex with `use_regex=true`), `sort` by a field or dotted subfield
//! (`sort_reverse=true`), `page`/`page_size` (at most `PAGE_SIZE_MAX`) with `pagination=true`
//! answering the paged object, `columns` keeping only the named (dotted) fields, and
//! `disable_stats` / `enable_queue_totals`, which the endpoints read themselves.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

/// Largest `page_size` RabbitMQ accepts.
pub const PAGE_SIZE_MAX: usize = 500;
pub const PAGE_SIZE_DEFAULT: usize = 100;

/// The query string, decoded.
#[derive(Debug, Clone, Default)]
pub struct Query {
    params: BTreeMap<String, String>,
}

impl Query {
    /// Parses `a=b&c=d` (form encoding: `+` is a space, `%XX` an octet). Undecodable values
    /// are kept as they were.
    pub fn parse(query: Option<&str>) -> Query {
        let mut params = BTreeMap::new();
        for pair in query
            .unwrap_or("")
            .split('&')
            .filter(|pair| !pair.is_empty())
        {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            params.insert(form_decode(key), form_decode(value));
        }
        Query { params }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }

    pub fn flag(&self, key: &str) -> bool {
        self.get(key) == Some("true")
    }

    /// `disable_stats=true`: leave statistics out.
    pub fn disable_stats(&self) -> bool {
        self.flag("disable_stats")
    }
}

fn form_decode(text: &str) -> String {
    let spaced = text.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map_or(spaced.clone(), |decoded| decoded.into_owned())
}

/// A list parameter that cannot be honoured (400 with the reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListError(pub String);

/// Applies filter, sort, pagination and columns to `items`: a bare array, or the paged object
/// when `page` or `pagination=true` is given.
pub fn apply(mut items: Vec<Value>, query: &Query) -> Result<Value, ListError> {
    let total_count = items.len();
    if let Some(name) = query.get("name").filter(|name| !name.is_empty()) {
        items = filter_by_name(items, name, query.flag("use_regex"))?;
    }
    if let Some(field) = query.get("sort").filter(|field| !field.is_empty()) {
        let path: Vec<&str> = field.split('.').collect();
        items.sort_by(|a, b| compare(lookup(a, &path), lookup(b, &path)));
    }
    if query.flag("sort_reverse") {
        items.reverse();
    }
    let columns = query.get("columns").filter(|columns| !columns.is_empty());
    let project = |items: Vec<Value>| -> Vec<Value> {
        match columns {
            Some(columns) => items
                .iter()
                .map(|item| only_columns(item, columns))
                .collect(),
            None => items,
        }
    };
    if query.get("page").is_none() && !query.flag("pagination") {
        return Ok(Value::Array(project(items)));
    }
    let filtered_count = items.len();
    let (page, page_size, page_count) = page_bounds(filtered_count, query)?;
    let on_page: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * page_size)
        .take(page_size)
        .collect();
    let item_count = on_page.len();
    Ok(json!({
        "filtered_count": filtered_count,
        "item_count": item_count,
        "items": project(on_page),
        "page": page,
        "page_count": page_count,
        "page_size": page_size,
        "total_count": total_count,
    }))
}

fn parse_number(text: Option<&str>, default: usize, name: &str) -> Result<usize, ListError> {
    match text {
        None | Some("") => Ok(default),
        Some(text) => text
            .parse()
            .map_err(|_| ListError(format!("{name} must be a positive integer"))),
    }
}

fn filter_by_name(items: Vec<Value>, name: &str, use_regex: bool) -> Result<Vec<Value>, ListError> {
    let matches = name_matcher(name, use_regex)?;
    Ok(items
        .into_iter()
        .filter(|item| {
            item.get("name")
                .and_then(Value::as_str)
                .is_some_and(&matches)
        })
        .collect())
}

type NameMatcher = Box<dyn Fn(&str) -> bool>;

/// The `name` filter: a case-insensitive substring, or a regex with `use_regex=true`.
fn name_matcher(name: &str, use_regex: bool) -> Result<NameMatcher, ListError> {
    if use_regex {
        let regex = regex::RegexBuilder::new(name)
            .size_limit(1 << 20)
            .build()
            .map_err(|error| ListError(format!("invalid regex: {error}")))?;
        Ok(Box::new(move |text| regex.is_match(text)))
    } else {
        let needle = name.to_lowercase();
        Ok(Box::new(move |text| text.to_lowercase().contains(&needle)))
    }
}

/// An object of a costly list, known by the names it can be sorted by before it is built.
pub struct Keyed<T> {
    pub vhost: String,
    pub name: String,
    pub object: T,
}

/// A page chosen before its items are built, and the counts its answer reports.
pub struct EarlyPage<T> {
    pub objects: Vec<T>,
    total_count: usize,
    filtered_count: usize,
    page: usize,
    page_count: usize,
    page_size: usize,
}

/// For lists whose items are costly to build (a queue's JSON resolves its policy and reads its
/// statistics): when the query asks for one page, sorted by nothing, `name` or `vhost`, the
/// page is chosen among the keys, the same one `apply` would pick from the built items, and
/// only its objects are built (`EarlyPage::answer`). Only for queries that need not have every item
/// built (`pages_early` is false: no pagination, or a sort by another field).
pub fn early_page<T>(mut keyed: Vec<Keyed<T>>, query: &Query) -> Result<EarlyPage<T>, ListError> {
    let sort = query.get("sort").filter(|field| !field.is_empty());
    {
        let total_count = keyed.len();
        if let Some(name) = query.get("name").filter(|name| !name.is_empty()) {
            let matches = name_matcher(name, query.flag("use_regex"))?;
            keyed.retain(|item| matches(&item.name));
        }
        match sort {
            Some("name") => keyed.sort_by(|a, b| a.name.cmp(&b.name)),
            Some(_) => keyed.sort_by(|a, b| a.vhost.cmp(&b.vhost)),
            None => {}
        }
        if query.flag("sort_reverse") {
            keyed.reverse();
        }
        let (page, page_size, page_count) = page_bounds(keyed.len(), query)?;
        let filtered_count = keyed.len();
        let objects = keyed
            .into_iter()
            .skip((page - 1) * page_size)
            .take(page_size)
            .map(|item| item.object)
            .collect();
        Ok(EarlyPage {
            objects,
            total_count,
            filtered_count,
            page,
            page_count,
            page_size,
        })
    }
}

/// Whether `early_page` can choose the query's page before the items are built.
pub fn pages_early(query: &Query) -> bool {
    let paged = query.get("page").is_some() || query.flag("pagination");
    let sort = query.get("sort").filter(|field| !field.is_empty());
    paged && matches!(sort, None | Some("name" | "vhost"))
}

impl<T> EarlyPage<T> {
    /// The paged answer for the page's built `items` (in the page's order), with the query's
    /// columns.
    pub fn answer(&self, items: Vec<Value>, query: &Query) -> Value {
        let items: Vec<Value> = match query.get("columns").filter(|c| !c.is_empty()) {
            Some(columns) => items
                .iter()
                .map(|item| only_columns(item, columns))
                .collect(),
            None => items,
        };
        json!({
            "filtered_count": self.filtered_count,
            "item_count": items.len(),
            "items": items,
            "page": self.page,
            "page_count": self.page_count,
            "page_size": self.page_size,
            "total_count": self.total_count,
        })
    }
}

/// The page, page size and page count a query asks for among `filtered_count` items, or
/// RabbitMQ's refusal.
fn page_bounds(filtered_count: usize, query: &Query) -> Result<(usize, usize, usize), ListError> {
    let page = parse_number(query.get("page"), 1, "page")?;
    let page_size = parse_number(query.get("page_size"), PAGE_SIZE_DEFAULT, "page_size")?;
    if page == 0 {
        return Err(ListError("Page out of range".into()));
    }
    if page_size == 0 || page_size > PAGE_SIZE_MAX {
        return Err(ListError(format!(
            "Invalid page size {page_size}: must be between 1 and {PAGE_SIZE_MAX}"
        )));
    }
    let page_count = filtered_count.div_ceil(page_size).max(1);
    if page > page_count {
        return Err(ListError("Page out of range".into()));
    }
    Ok((page, page_size, page_count))
}

/// The value at a dotted path, if every step exists.
fn lookup<'a>(item: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(item, |value, key| value.get(key))
}

/// Missing and null first, then booleans, numbers, strings; others as equal.
fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    fn rank(value: Option<&Value>) -> u8 {
        match value {
            None | Some(Value::Null) => 0,
            Some(Value::Bool(_)) => 1,
            Some(Value::Number(_)) => 2,
            Some(Value::String(_)) => 3,
            Some(_) => 4,
        }
    }
    match (a, b) {
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (Some(Value::Number(x)), Some(Value::Number(y))) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x.partial_cmp(&y).unwrap_or(Ordering::Equal)
        }
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// `item` with only the fields named in `columns` (comma-separated, dotted for nested ones).
fn only_columns(item: &Value, columns: &str) -> Value {
    let mut out = Map::new();
    for column in columns.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        let path: Vec<&str> = column.split('.').collect();
        if let Some(value) = lookup(item, &path) {
            insert_path(&mut out, &path, value.clone());
        }
    }
    Value::Object(out)
}

fn insert_path(out: &mut Map<String, Value>, path: &[&str], value: Value) {
    match path {
        [] => {}
        [last] => {
            out.insert((*last).to_owned(), value);
        }
        [first, rest @ ..] => {
            let child = out
                .entry((*first).to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(child) = child {
                insert_path(child, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The early page is the page `apply` picks from the built items, for every query it
    /// takes, and refuses what `apply` refuses.
    #[test]
    fn an_early_page_is_the_page_apply_would_choose() {
        let objects: Vec<(String, String)> = (0..23)
            .map(|i| (format!("v{}", i % 3), format!("q-{:02}", (i * 7) % 23)))
            .collect();
        let built = |objects: &[(String, String)]| -> Vec<Value> {
            objects
                .iter()
                .map(|(vhost, name)| json!({"vhost": vhost, "name": name, "messages": 1}))
                .collect()
        };
        for query in [
            "pagination=true",
            "page=2&page_size=5&sort=name",
            "page=3&page_size=4&sort=name&sort_reverse=true",
            "page=1&page_size=3&sort=vhost",
            "page=2&page_size=2&name=Q-1",
            "page=1&page_size=4&name=%5Eq-0%5B2-5%5D&use_regex=true&columns=name",
            "page=9&page_size=5",
            "page=1&page_size=501",
            "page=1&name=(&use_regex=true",
        ] {
            let query = Query::parse(Some(query));
            assert!(pages_early(&query));
            let keyed = objects
                .iter()
                .map(|(vhost, name)| Keyed {
                    vhost: vhost.clone(),
                    name: name.clone(),
                    object: (vhost.clone(), name.clone()),
                })
                .collect();
            let early =
                early_page(keyed, &query).map(|page| page.answer(built(&page.objects), &query));
            assert_eq!(early, apply(built(&objects), &query), "{query:?}");
        }
        assert!(!pages_early(&Query::parse(Some("page=1&sort=messages"))));
        assert!(!pages_early(&Query::parse(Some("sort=name"))));
    }

    fn items() -> Vec<Value> {
        vec![
            json!({"name": "b", "n": 2, "x": {"y": 1}}),
            json!({"name": "a", "n": 3, "x": {"y": 3}}),
            json!({"name": "c", "n": 1, "x": {"y": 2}}),
        ]
    }

    #[test]
    fn sort_by_a_dotted_field_and_reverse() {
        let query = Query::parse(Some("sort=x.y&sort_reverse=true&columns=name"));
        let listed = apply(items(), &query).expect("valid");
        assert_eq!(listed, json!([{"name": "a"}, {"name": "c"}, {"name": "b"}]));
    }

    #[test]
    fn pages_report_their_counts() {
        let query = Query::parse(Some("page=2&page_size=2&sort=name"));
        let listed = apply(items(), &query).expect("valid");
        assert_eq!(listed["items"], json!([items()[2]]));
        assert_eq!(listed["page_count"], 2);
        assert_eq!(listed["filtered_count"], 3);
        assert_eq!(listed["total_count"], 3);
        assert_eq!(listed["item_count"], 1);
    }

    #[test]
    fn page_size_over_the_maximum_is_refused() {
        let query = Query::parse(Some("page=1&page_size=501"));
        assert!(apply(items(), &query).is_err());
    }

    #[test]
    fn name_filters_by_substring_or_regex() {
        let query = Query::parse(Some("name=%5B ab%5D&use_regex=true&pagination=true"));
        let listed = apply(items(), &query).expect("valid");
        assert_eq!(listed["filtered_count"], 2);
        let query = Query::parse(Some("name=C"));
        assert_eq!(apply(items(), &query).expect("valid"), json!([items()[2]]));
    }

    #[test]
    fn nested_columns_keep_their_nesting() {
        let query = Query::parse(Some("columns=x.y,missing&sort=n"));
        let listed = apply(items(), &query).expect("valid");
        assert_eq!(listed[0], json!({"x": {"y": 2}}));
    }
}
