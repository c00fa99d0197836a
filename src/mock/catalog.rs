//! The mock warehouse's fixed catalog and the results of the metadata RPCs built from it
//! (GetCatalogs, GetSchemas, GetTables, GetTableTypes), plus the answers of GetInfo.
//!
//! The catalog is small and fixed (none of its tables can be queried):
//! - `hive_metastore.default`
//! - `main.default`, `main.information_schema` (views `catalogs`, `schemata`, `tables`, `columns`)
//! - `samples.nyctaxi` (table `trips`), `samples.tpch` (tables `customer`, `lineitem`, `nation`,
//!   `orders`, `part`, `partsupp`, `region`, `supplier`)
//!
//! Name patterns follow JDBC: `%` matches any run, `_` one character, `\` escapes; matching
//! ignores case; an absent or empty pattern, `%` and `*` match everything.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use super::source::BatchesSource;
use crate::error::Result;

/// `(catalog, schema)` pairs, sorted.
const SCHEMAS: &[(&str, &str)] = &[
    ("hive_metastore", "default"),
    ("main", "default"),
    ("main", "information_schema"),
    ("samples", "nyctaxi"),
    ("samples", "tpch"),
];

/// `(catalog, schema, table, type)`, sorted.
const TABLES: &[(&str, &str, &str, &str)] = &[
    ("main", "information_schema", "catalogs", "VIEW"),
    ("main", "information_schema", "columns", "VIEW"),
    ("main", "information_schema", "schemata", "VIEW"),
    ("main", "information_schema", "tables", "VIEW"),
    ("samples", "nyctaxi", "trips", "TABLE"),
    ("samples", "tpch", "customer", "TABLE"),
    ("samples", "tpch", "lineitem", "TABLE"),
    ("samples", "tpch", "nation", "TABLE"),
    ("samples", "tpch", "orders", "TABLE"),
    ("samples", "tpch", "part", "TABLE"),
    ("samples", "tpch", "partsupp", "TABLE"),
    ("samples", "tpch", "region", "TABLE"),
    ("samples", "tpch", "supplier", "TABLE"),
];

/// The table types GetTableTypes lists.
const TABLE_TYPES: &[&str] = &["TABLE", "VIEW"];

/// What GetInfo answers for CLI_SERVER_NAME and CLI_DBMS_NAME.
pub(crate) const DBMS_NAME: &str = "Spark SQL";
/// What GetInfo answers for CLI_DBMS_VER.
pub(crate) const DBMS_VERSION: &str = "3.5.0";

/// Whether `name` matches the JDBC pattern `pattern` (see the module docs).
pub(crate) fn like(pattern: Option<&str>, name: &str) -> bool {
    let Some(p) = pattern.filter(|p| !p.is_empty() && *p != "%" && *p != "*") else {
        return true;
    };
    let p: Vec<char> = p.to_lowercase().chars().collect();
    let n: Vec<char> = name.to_lowercase().chars().collect();
    like_at(&p, &n)
}

fn like_at(p: &[char], n: &[char]) -> bool {
    match p.split_first() {
        None => n.is_empty(),
        Some(('%', rest)) => (0..=n.len()).any(|i| like_at(rest, &n[i..])),
        Some(('_', rest)) => !n.is_empty() && like_at(rest, &n[1..]),
        Some(('\\', rest)) if !rest.is_empty() => {
            n.first() == rest.first() && like_at(&rest[1..], &n[1..])
        }
        Some((c, rest)) => n.first() == Some(c) && like_at(rest, &n[1..]),
    }
}

/// A result of string columns named `names`, one row per entry of `rows`.
fn strings(names: &[&str], rows: Vec<Vec<Option<&str>>>) -> Result<BatchesSource> {
    let schema: SchemaRef = Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    let columns: Vec<ArrayRef> = (0..names.len())
        .map(|c| {
            let values: StringArray = rows.iter().map(|r| r.get(c).copied().flatten()).collect();
            Arc::new(values) as ArrayRef
        })
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    BatchesSource::new(schema, vec![batch])
}

/// GetCatalogs: `TABLE_CAT`.
pub(crate) fn catalogs() -> Result<BatchesSource> {
    let mut names: Vec<&str> = SCHEMAS.iter().map(|(c, _)| *c).collect();
    names.dedup();
    strings(
        &["TABLE_CAT"],
        names.into_iter().map(|c| vec![Some(c)]).collect(),
    )
}

/// GetSchemas: `TABLE_SCHEM`, `TABLE_CATALOG`.
pub(crate) fn schemas(catalog: Option<&str>, schema: Option<&str>) -> Result<BatchesSource> {
    let rows = SCHEMAS
        .iter()
        .filter(|(c, s)| like(catalog, c) && like(schema, s))
        .map(|(c, s)| vec![Some(*s), Some(*c)])
        .collect();
    strings(&["TABLE_SCHEM", "TABLE_CATALOG"], rows)
}

/// GetTables: `TABLE_CAT`, `TABLE_SCHEM`, `TABLE_NAME`, `TABLE_TYPE`, `REMARKS`.
pub(crate) fn tables(
    catalog: Option<&str>,
    schema: Option<&str>,
    table: Option<&str>,
    types: Option<&[String]>,
) -> Result<BatchesSource> {
    let type_ok = |t: &str| match types {
        Some(ts) if !ts.is_empty() => ts.iter().any(|x| x.eq_ignore_ascii_case(t)),
        _ => true,
    };
    let rows = TABLES
        .iter()
        .filter(|(c, s, t, ty)| {
            like(catalog, c) && like(schema, s) && like(table, t) && type_ok(ty)
        })
        .map(|(c, s, t, ty)| vec![Some(*c), Some(*s), Some(*t), Some(*ty), Some("")])
        .collect();
    strings(
        &[
            "TABLE_CAT",
            "TABLE_SCHEM",
            "TABLE_NAME",
            "TABLE_TYPE",
            "REMARKS",
        ],
        rows,
    )
}

/// GetTableTypes: `TABLE_TYPE`.
pub(crate) fn table_types() -> Result<BatchesSource> {
    strings(
        &["TABLE_TYPE"],
        TABLE_TYPES.iter().map(|t| vec![Some(*t)]).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::source::RowSource;
    use arrow_array::cast::AsArray;

    fn column(src: &BatchesSource, i: usize) -> Vec<String> {
        let b = src.rows(0, usize::MAX).unwrap();
        b.column(i)
            .as_string::<i32>()
            .iter()
            .map(|v| v.unwrap_or_default().to_string())
            .collect()
    }

    #[test]
    fn like_follows_jdbc_patterns_ignoring_case() {
        assert!(like(None, "x"));
        assert!(like(Some(""), "x"));
        assert!(like(Some("*"), "x"));
        assert!(like(Some("%"), ""));
        assert!(like(Some("MA%"), "main"));
        assert!(like(Some("m_in"), "main"));
        assert!(!like(Some("m_n"), "main"));
        assert!(like(Some("%_schema"), "information_schema"));
        assert!(like(Some("a\\_b"), "a_b"));
        assert!(!like(Some("a\\_b"), "axb"));
        assert!(!like(Some("main"), "mainx"));
    }

    #[test]
    fn catalogs_are_listed_once_each_in_order() {
        assert_eq!(
            column(&catalogs().unwrap(), 0),
            vec!["hive_metastore", "main", "samples"]
        );
    }

    #[test]
    fn schemas_and_tables_are_filtered_by_pattern_and_type() {
        let s = schemas(Some("main"), None).unwrap();
        assert_eq!(column(&s, 0), vec!["default", "information_schema"]);
        assert_eq!(column(&s, 1), vec!["main", "main"]);
        let t = tables(Some("samples"), Some("tpch"), Some("p%"), None).unwrap();
        assert_eq!(column(&t, 2), vec!["part", "partsupp"]);
        let views = tables(None, None, None, Some(&["VIEW".to_string()])).unwrap();
        assert_eq!(views.num_rows(), 4);
        assert_eq!(column(&table_types().unwrap(), 0), vec!["TABLE", "VIEW"]);
    }
}
