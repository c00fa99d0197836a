//! The mock warehouse's fixed catalog and the results of the metadata RPCs built from it
//! (GetCatalogs, GetSchemas, GetTables, GetTableTypes, GetColumns, GetPrimaryKeys,
//! GetCrossReference, GetFunctions, GetTypeInfo), plus the answers of GetInfo. Result columns
//! and their types are those of JDBC's `DatabaseMetaData`, as Databricks answers them.
//!
//! The catalog is small and fixed (none of its tables can be queried):
//! - `hive_metastore.default`
//! - `main.default`, `main.information_schema` (views `catalogs`, `schemata`, `tables`, `columns`)
//! - `samples.nyctaxi` (table `trips`), `samples.tpch` (tables `customer`, `lineitem`, `nation`,
//!   `orders`, `part`, `partsupp`, `region`, `supplier`, with the TPC-H columns, primary keys and
//!   foreign keys)
//! - built-in functions (a few common ones, listed with no catalog or schema)
//!
//! Name patterns follow JDBC: `%` matches any run, `_` one character, `\` escapes; matching
//! ignores case; an absent or empty pattern, `%` and `*` match everything.

use std::sync::Arc;

use arrow_array::{
    new_null_array, ArrayRef, BooleanArray, Int16Array, Int32Array, RecordBatch, StringArray,
};
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

/// A table and its columns: `(catalog, schema, table, [(column, type)])`.
type TableColumns = (
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

/// The columns of the tables that have them, `(catalog, schema, table, [(column, type)])`, in
/// table order; types as Databricks names them.
const COLUMNS: &[TableColumns] = &[
    (
        "samples",
        "nyctaxi",
        "trips",
        &[
            ("tpep_pickup_datetime", "TIMESTAMP"),
            ("tpep_dropoff_datetime", "TIMESTAMP"),
            ("trip_distance", "DOUBLE"),
            ("fare_amount", "DOUBLE"),
            ("pickup_zip", "INT"),
            ("dropoff_zip", "INT"),
        ],
    ),
    (
        "samples",
        "tpch",
        "customer",
        &[
            ("c_custkey", "BIGINT"),
            ("c_name", "STRING"),
            ("c_address", "STRING"),
            ("c_nationkey", "BIGINT"),
            ("c_phone", "STRING"),
            ("c_acctbal", "DECIMAL(18,2)"),
            ("c_mktsegment", "STRING"),
            ("c_comment", "STRING"),
        ],
    ),
    (
        "samples",
        "tpch",
        "lineitem",
        &[
            ("l_orderkey", "BIGINT"),
            ("l_partkey", "BIGINT"),
            ("l_suppkey", "BIGINT"),
            ("l_linenumber", "INT"),
            ("l_quantity", "DECIMAL(18,2)"),
            ("l_extendedprice", "DECIMAL(18,2)"),
            ("l_discount", "DECIMAL(18,2)"),
            ("l_tax", "DECIMAL(18,2)"),
            ("l_returnflag", "STRING"),
            ("l_linestatus", "STRING"),
            ("l_shipdate", "DATE"),
            ("l_commitdate", "DATE"),
            ("l_receiptdate", "DATE"),
            ("l_shipinstruct", "STRING"),
            ("l_shipmode", "STRING"),
            ("l_comment", "STRING"),
        ],
    ),
    (
        "samples",
        "tpch",
        "nation",
        &[
            ("n_nationkey", "BIGINT"),
            ("n_name", "STRING"),
            ("n_regionkey", "BIGINT"),
            ("n_comment", "STRING"),
        ],
    ),
    (
        "samples",
        "tpch",
        "orders",
        &[
            ("o_orderkey", "BIGINT"),
            ("o_custkey", "BIGINT"),
            ("o_orderstatus", "STRING"),
            ("o_totalprice", "DECIMAL(18,2)"),
            ("o_orderdate", "DATE"),
            ("o_orderpriority", "STRING"),
            ("o_clerk", "STRING"),
            ("o_shippriority", "INT"),
            ("o_comment", "STRING"),
        ],
    ),
    (
        "samples",
        "tpch",
        "part",
        &[
            ("p_partkey", "BIGINT"),
            ("p_name", "STRING"),
            ("p_mfgr", "STRING"),
            ("p_brand", "STRING"),
            ("p_type", "STRING"),
            ("p_size", "INT"),
            ("p_container", "STRING"),
            ("p_retailprice", "DECIMAL(18,2)"),
            ("p_comment", "STRING"),
        ],
    ),
    (
        "samples",
        "tpch",
        "partsupp",
        &[
            ("ps_partkey", "BIGINT"),
            ("ps_suppkey", "BIGINT"),
            ("ps_availqty", "INT"),
            ("ps_supplycost", "DECIMAL(18,2)"),
            ("ps_comment", "STRING"),
        ],
    ),
    (
        "samples",
        "tpch",
        "region",
        &[
            ("r_regionkey", "BIGINT"),
            ("r_name", "STRING"),
            ("r_comment", "STRING"),
        ],
    ),
    (
        "samples",
        "tpch",
        "supplier",
        &[
            ("s_suppkey", "BIGINT"),
            ("s_name", "STRING"),
            ("s_address", "STRING"),
            ("s_nationkey", "BIGINT"),
            ("s_phone", "STRING"),
            ("s_acctbal", "DECIMAL(18,2)"),
            ("s_comment", "STRING"),
        ],
    ),
];

/// Primary keys, `(catalog, schema, table, key name, [key columns in key order])`.
const PRIMARY_KEYS: &[(&str, &str, &str, &str, &[&str])] = &[
    ("samples", "tpch", "customer", "customer_pk", &["c_custkey"]),
    (
        "samples",
        "tpch",
        "lineitem",
        "lineitem_pk",
        &["l_orderkey", "l_linenumber"],
    ),
    ("samples", "tpch", "nation", "nation_pk", &["n_nationkey"]),
    ("samples", "tpch", "orders", "orders_pk", &["o_orderkey"]),
    ("samples", "tpch", "part", "part_pk", &["p_partkey"]),
    (
        "samples",
        "tpch",
        "partsupp",
        "partsupp_pk",
        &["ps_partkey", "ps_suppkey"],
    ),
    ("samples", "tpch", "region", "region_pk", &["r_regionkey"]),
    ("samples", "tpch", "supplier", "supplier_pk", &["s_suppkey"]),
];

/// A foreign key: `(name, foreign table, parent table, [(foreign column, parent column)])`, all
/// in `samples.tpch`.
type ForeignKey = (
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

/// The TPC-H foreign keys, by foreign table.
const FOREIGN_KEYS: &[ForeignKey] = &[
    (
        "customer_nation_fk",
        "customer",
        "nation",
        &[("c_nationkey", "n_nationkey")],
    ),
    (
        "lineitem_orders_fk",
        "lineitem",
        "orders",
        &[("l_orderkey", "o_orderkey")],
    ),
    (
        "lineitem_partsupp_fk",
        "lineitem",
        "partsupp",
        &[("l_partkey", "ps_partkey"), ("l_suppkey", "ps_suppkey")],
    ),
    (
        "nation_region_fk",
        "nation",
        "region",
        &[("n_regionkey", "r_regionkey")],
    ),
    (
        "orders_customer_fk",
        "orders",
        "customer",
        &[("o_custkey", "c_custkey")],
    ),
    (
        "partsupp_part_fk",
        "partsupp",
        "part",
        &[("ps_partkey", "p_partkey")],
    ),
    (
        "partsupp_supplier_fk",
        "partsupp",
        "supplier",
        &[("ps_suppkey", "s_suppkey")],
    ),
    (
        "supplier_nation_fk",
        "supplier",
        "nation",
        &[("s_nationkey", "n_nationkey")],
    ),
];

/// Built-in functions GetFunctions lists, `(name, description)`, sorted.
const FUNCTIONS: &[(&str, &str)] = &[
    ("abs", "Returns the absolute value of the argument."),
    ("avg", "Returns the mean of the values in a group."),
    ("coalesce", "Returns the first non-null argument."),
    ("concat", "Returns the concatenation of the arguments."),
    ("count", "Returns the number of rows in a group."),
    ("current_date", "Returns the current date."),
    ("current_timestamp", "Returns the current timestamp."),
    (
        "date_add",
        "Returns the date a number of days after a date.",
    ),
    ("lower", "Returns the string in lower case."),
    ("max", "Returns the largest value in a group."),
    ("min", "Returns the smallest value in a group."),
    (
        "round",
        "Returns the argument rounded to a number of decimal places.",
    ),
    ("sum", "Returns the sum of the values in a group."),
    ("upper", "Returns the string in upper case."),
];

/// JDBC's `java.sql.Types` codes of the types the mock knows.
mod jdbc {
    pub const BOOLEAN: i32 = 16;
    pub const TINYINT: i32 = -6;
    pub const SMALLINT: i32 = 5;
    pub const INTEGER: i32 = 4;
    pub const BIGINT: i32 = -5;
    pub const FLOAT: i32 = 6;
    pub const DOUBLE: i32 = 8;
    pub const DECIMAL: i32 = 3;
    pub const VARCHAR: i32 = 12;
    pub const BINARY: i32 = -2;
    pub const DATE: i32 = 91;
    pub const TIMESTAMP: i32 = 93;
    pub const ARRAY: i32 = 2003;
    pub const JAVA_OBJECT: i32 = 2000;
    pub const STRUCT: i32 = 2002;
}

/// What GetColumns says of a type: `java.sql.Types` code, COLUMN_SIZE, DECIMAL_DIGITS and
/// NUM_PREC_RADIX.
struct TypeFacts {
    jdbc: i32,
    size: Option<i32>,
    digits: Option<i32>,
    radix: Option<i32>,
}

fn type_facts(type_name: &str) -> TypeFacts {
    let facts = |jdbc, size, digits, radix| TypeFacts {
        jdbc,
        size,
        digits,
        radix,
    };
    if let Some(args) = type_name
        .strip_prefix("DECIMAL(")
        .and_then(|rest| rest.strip_suffix(')'))
    {
        let mut parts = args.split(',').map(|p| p.trim().parse::<i32>().ok());
        let precision = parts.next().flatten();
        let scale = parts.next().flatten();
        return facts(jdbc::DECIMAL, precision, scale, Some(10));
    }
    match type_name {
        "BOOLEAN" => facts(jdbc::BOOLEAN, Some(1), None, None),
        "TINYINT" => facts(jdbc::TINYINT, Some(3), Some(0), Some(10)),
        "SMALLINT" => facts(jdbc::SMALLINT, Some(5), Some(0), Some(10)),
        "INT" => facts(jdbc::INTEGER, Some(10), Some(0), Some(10)),
        "BIGINT" => facts(jdbc::BIGINT, Some(19), Some(0), Some(10)),
        "FLOAT" => facts(jdbc::FLOAT, Some(7), None, Some(10)),
        "DOUBLE" => facts(jdbc::DOUBLE, Some(15), None, Some(10)),
        "DATE" => facts(jdbc::DATE, Some(10), None, None),
        "TIMESTAMP" => facts(jdbc::TIMESTAMP, Some(29), Some(6), None),
        "BINARY" => facts(jdbc::BINARY, Some(i32::MAX), None, None),
        _ => facts(jdbc::VARCHAR, Some(i32::MAX), None, None),
    }
}

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

/// One value of a metadata result row.
#[derive(Debug, Clone, Copy)]
enum V<'a> {
    Null,
    Str(&'a str),
    Int(i32),
    Short(i16),
    Bool(bool),
}

impl<'a> V<'a> {
    fn str(v: Option<&'a str>) -> Self {
        v.map_or(V::Null, V::Str)
    }

    fn int(v: Option<i32>) -> Self {
        v.map_or(V::Null, V::Int)
    }
}

/// A result with the columns `fields` (all nullable), one row per entry of `rows`. A value of
/// another type than its column's is a null.
fn typed<'a>(fields: &[(&str, DataType)], rows: &[Vec<V<'a>>]) -> Result<BatchesSource> {
    let schema: SchemaRef = Arc::new(Schema::new(
        fields
            .iter()
            .map(|(n, t)| Field::new(*n, t.clone(), true))
            .collect::<Vec<_>>(),
    ));
    /// Column `c` of `rows` as an array of `A`, with `pick`'s values (nulls where it gives none).
    fn column<'a, T, A>(rows: &[Vec<V<'a>>], c: usize, pick: fn(V<'a>) -> Option<T>) -> ArrayRef
    where
        A: FromIterator<Option<T>> + arrow_array::Array + 'static,
    {
        let cell = |r: &Vec<V<'a>>| r.get(c).copied().unwrap_or(V::Null);
        Arc::new(rows.iter().map(|r| pick(cell(r))).collect::<A>())
    }
    let columns: Vec<ArrayRef> = fields
        .iter()
        .enumerate()
        .map(|(c, (_, t))| match t {
            DataType::Int32 => column::<_, Int32Array>(rows, c, |v| match v {
                V::Int(x) => Some(x),
                _ => None,
            }),
            DataType::Int16 => column::<_, Int16Array>(rows, c, |v| match v {
                V::Short(x) => Some(x),
                _ => None,
            }),
            DataType::Boolean => column::<_, BooleanArray>(rows, c, |v| match v {
                V::Bool(x) => Some(x),
                _ => None,
            }),
            DataType::Utf8 => column::<_, StringArray>(rows, c, |v| match v {
                V::Str(x) => Some(x),
                _ => None,
            }),
            other => new_null_array(other, rows.len()),
        })
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    BatchesSource::new(schema, vec![batch])
}

/// A result of string columns named `names`, one row per entry of `rows`.
fn strings(names: &[&str], rows: Vec<Vec<Option<&str>>>) -> Result<BatchesSource> {
    let fields: Vec<(&str, DataType)> = names.iter().map(|n| (*n, DataType::Utf8)).collect();
    let rows: Vec<Vec<V<'_>>> = rows
        .into_iter()
        .map(|r| r.into_iter().map(V::str).collect())
        .collect();
    typed(&fields, &rows)
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

/// GetColumns: the 23 columns of JDBC's `getColumns`, one row per matching column, in table
/// order then column order; `ORDINAL_POSITION` starts at 1.
pub(crate) fn columns(
    catalog: Option<&str>,
    schema: Option<&str>,
    table: Option<&str>,
    column: Option<&str>,
) -> Result<BatchesSource> {
    use DataType::{Int16, Int32, Int8, Utf8};
    let fields = [
        ("TABLE_CAT", Utf8),
        ("TABLE_SCHEM", Utf8),
        ("TABLE_NAME", Utf8),
        ("COLUMN_NAME", Utf8),
        ("DATA_TYPE", Int32),
        ("TYPE_NAME", Utf8),
        ("COLUMN_SIZE", Int32),
        ("BUFFER_LENGTH", Int8),
        ("DECIMAL_DIGITS", Int32),
        ("NUM_PREC_RADIX", Int32),
        ("NULLABLE", Int32),
        ("REMARKS", Utf8),
        ("COLUMN_DEF", Utf8),
        ("SQL_DATA_TYPE", Int32),
        ("SQL_DATETIME_SUB", Int32),
        ("CHAR_OCTET_LENGTH", Int32),
        ("ORDINAL_POSITION", Int32),
        ("IS_NULLABLE", Utf8),
        ("SCOPE_CATALOG", Utf8),
        ("SCOPE_SCHEMA", Utf8),
        ("SCOPE_TABLE", Utf8),
        ("SOURCE_DATA_TYPE", Int16),
        ("IS_AUTO_INCREMENT", Utf8),
    ];
    let mut rows = Vec::new();
    for (c, s, t, cols) in COLUMNS {
        if !(like(catalog, c) && like(schema, s) && like(table, t)) {
            continue;
        }
        for (position, (name, type_name)) in (1i32..).zip(cols.iter()) {
            if !like(column, name) {
                continue;
            }
            let key = primary_key(c, s, t).is_some_and(|k| k.contains(name));
            let facts = type_facts(type_name);
            let octets = (facts.jdbc == jdbc::VARCHAR).then_some(i32::MAX);
            rows.push(vec![
                V::Str(c),
                V::Str(s),
                V::Str(t),
                V::Str(name),
                V::Int(facts.jdbc),
                V::Str(type_name),
                V::int(facts.size),
                V::Null,
                V::int(facts.digits),
                V::int(facts.radix),
                V::Int(if key { 0 } else { 1 }),
                V::Str(""),
                V::Null,
                V::Null,
                V::Null,
                V::int(octets),
                V::Int(position),
                V::Str(if key { "NO" } else { "YES" }),
                V::Null,
                V::Null,
                V::Null,
                V::Null,
                V::Str("NO"),
            ]);
        }
    }
    typed(&fields, &rows)
}

/// Whether `name` is `want` (ignoring case); `None` wants any name.
fn same_name(want: Option<&str>, name: &str) -> bool {
    want.is_none_or(|w| w.eq_ignore_ascii_case(name))
}

fn primary_key(catalog: &str, schema: &str, table: &str) -> Option<&'static [&'static str]> {
    PRIMARY_KEYS
        .iter()
        .find(|(c, s, t, _, _)| *c == catalog && *s == schema && *t == table)
        .map(|(_, _, _, _, key)| *key)
}

/// GetPrimaryKeys: `TABLE_CAT`, `TABLE_SCHEM`, `TABLE_NAME`, `COLUMN_NAME`, `KEY_SEQ` (from
/// 1), `PK_NAME`. Names are exact (case-insensitive), not patterns; an absent catalog or schema
/// matches any.
pub(crate) fn primary_keys(
    catalog: Option<&str>,
    schema: Option<&str>,
    table: Option<&str>,
) -> Result<BatchesSource> {
    let rows: Vec<Vec<V<'_>>> = PRIMARY_KEYS
        .iter()
        .filter(|(c, s, t, _, _)| {
            same_name(catalog, c) && same_name(schema, s) && same_name(table, t)
        })
        .flat_map(|(c, s, t, pk, key)| {
            (1i32..).zip(key.iter()).map(move |(seq, column)| {
                vec![
                    V::Str(c),
                    V::Str(s),
                    V::Str(t),
                    V::Str(column),
                    V::Int(seq),
                    V::Str(pk),
                ]
            })
        })
        .collect();
    use DataType::{Int32, Utf8};
    typed(
        &[
            ("TABLE_CAT", Utf8),
            ("TABLE_SCHEM", Utf8),
            ("TABLE_NAME", Utf8),
            ("COLUMN_NAME", Utf8),
            ("KEY_SEQ", Int32),
            ("PK_NAME", Utf8),
        ],
        &rows,
    )
}

/// One side of a foreign key to match: catalog, schema and table names (exact, ignoring case;
/// `None` matches any).
pub(crate) type TableFilter<'a> = (Option<&'a str>, Option<&'a str>, Option<&'a str>);

/// GetCrossReference: the 14 columns of JDBC's `getCrossReference`, one row per column of each
/// foreign key whose parent table matches `parent` and whose foreign table matches `foreign`,
/// ordered by foreign table, key and `KEY_SEQ` (from 1). Rules are "no action" (3) and keys
/// are not deferrable (7), as JDBC numbers them.
pub(crate) fn cross_reference(
    parent: TableFilter<'_>,
    foreign: TableFilter<'_>,
) -> Result<BatchesSource> {
    const CATALOG: &str = "samples";
    const SCHEMA: &str = "tpch";
    let matches = |(c, s, t): TableFilter<'_>, table: &str| {
        same_name(c, CATALOG) && same_name(s, SCHEMA) && same_name(t, table)
    };
    let rows: Vec<Vec<V<'_>>> = FOREIGN_KEYS
        .iter()
        .filter(|(_, fk_table, pk_table, _)| {
            matches(parent, pk_table) && matches(foreign, fk_table)
        })
        .flat_map(|(fk_name, fk_table, pk_table, columns)| {
            let pk_name = PRIMARY_KEYS
                .iter()
                .find(|(_, _, t, _, _)| t == pk_table)
                .map(|(_, _, _, name, _)| *name);
            (1i32..)
                .zip(columns.iter())
                .map(move |(seq, (fk_col, pk_col))| {
                    vec![
                        V::Str(CATALOG),
                        V::Str(SCHEMA),
                        V::Str(pk_table),
                        V::Str(pk_col),
                        V::Str(CATALOG),
                        V::Str(SCHEMA),
                        V::Str(fk_table),
                        V::Str(fk_col),
                        V::Int(seq),
                        V::Int(3),
                        V::Int(3),
                        V::Str(fk_name),
                        V::str(pk_name),
                        V::Int(7),
                    ]
                })
        })
        .collect();
    use DataType::{Int32, Utf8};
    typed(
        &[
            ("PKTABLE_CAT", Utf8),
            ("PKTABLE_SCHEM", Utf8),
            ("PKTABLE_NAME", Utf8),
            ("PKCOLUMN_NAME", Utf8),
            ("FKTABLE_CAT", Utf8),
            ("FKTABLE_SCHEM", Utf8),
            ("FKTABLE_NAME", Utf8),
            ("FKCOLUMN_NAME", Utf8),
            ("KEY_SEQ", Int32),
            ("UPDATE_RULE", Int32),
            ("DELETE_RULE", Int32),
            ("FK_NAME", Utf8),
            ("PK_NAME", Utf8),
            ("DEFERRABILITY", Int32),
        ],
        &rows,
    )
}

/// GetFunctions: `FUNCTION_CAT`, `FUNCTION_SCHEM`, `FUNCTION_NAME`, `REMARKS`,
/// `FUNCTION_TYPE` (1: returns no table), `SPECIFIC_NAME`, for the built-in functions whose name
/// matches `function` (they belong to no catalog or schema, so those patterns do not filter).
pub(crate) fn functions(function: Option<&str>) -> Result<BatchesSource> {
    let rows: Vec<Vec<V<'_>>> = FUNCTIONS
        .iter()
        .filter(|(name, _)| like(function, name))
        .map(|(name, remarks)| {
            vec![
                V::Null,
                V::Null,
                V::Str(name),
                V::Str(remarks),
                V::Int(1),
                V::Str(name),
            ]
        })
        .collect();
    use DataType::{Int32, Utf8};
    typed(
        &[
            ("FUNCTION_CAT", Utf8),
            ("FUNCTION_SCHEM", Utf8),
            ("FUNCTION_NAME", Utf8),
            ("REMARKS", Utf8),
            ("FUNCTION_TYPE", Int32),
            ("SPECIFIC_NAME", Utf8),
        ],
        &rows,
    )
}

/// GetTypeInfo: the 18 columns of JDBC's `getTypeInfo`, one row per type the mock knows,
/// ordered by `DATA_TYPE`.
pub(crate) fn type_info() -> Result<BatchesSource> {
    // (name, java.sql.Types, precision, literal prefix/suffix, create params, case sensitive,
    // searchable, unsigned, fixed precision and scale, minimum and maximum scale, radix)
    type Row = (
        &'static str,
        i32,
        Option<i32>,
        Option<&'static str>,
        Option<&'static str>,
        bool,
        i16,
        bool,
        bool,
        i16,
        i16,
        Option<i32>,
    );
    const QUOTE: Option<&str> = Some("'");
    #[rustfmt::skip]
    let mut types: Vec<Row> = vec![
        ("BOOLEAN", jdbc::BOOLEAN, Some(1), None, None, false, 2, true, false, 0, 0, None),
        ("TINYINT", jdbc::TINYINT, Some(3), None, None, false, 2, false, false, 0, 0, Some(10)),
        ("SMALLINT", jdbc::SMALLINT, Some(5), None, None, false, 2, false, false, 0, 0, Some(10)),
        ("INT", jdbc::INTEGER, Some(10), None, None, false, 2, false, false, 0, 0, Some(10)),
        ("BIGINT", jdbc::BIGINT, Some(19), None, None, false, 2, false, false, 0, 0, Some(10)),
        ("FLOAT", jdbc::FLOAT, Some(7), None, None, false, 2, false, false, 0, 0, Some(10)),
        ("DOUBLE", jdbc::DOUBLE, Some(15), None, None, false, 2, false, false, 0, 0, Some(10)),
        ("DECIMAL", jdbc::DECIMAL, Some(38), None, Some("PRECISION,SCALE"), false, 2, false, false, 0, 38, Some(10)),
        ("STRING", jdbc::VARCHAR, None, QUOTE, None, true, 3, true, false, 0, 0, None),
        ("BINARY", jdbc::BINARY, None, None, None, false, 0, true, false, 0, 0, None),
        ("DATE", jdbc::DATE, None, QUOTE, None, false, 2, true, false, 0, 0, None),
        ("TIMESTAMP", jdbc::TIMESTAMP, None, QUOTE, None, false, 2, true, false, 0, 6, None),
        ("ARRAY", jdbc::ARRAY, None, None, None, false, 0, true, false, 0, 0, None),
        ("MAP", jdbc::JAVA_OBJECT, None, None, None, false, 0, true, false, 0, 0, None),
        ("STRUCT", jdbc::STRUCT, None, None, None, false, 0, true, false, 0, 0, None),
    ];
    types.sort_by_key(|t| t.1);
    let rows: Vec<Vec<V<'_>>> = types
        .iter()
        .map(
            |&(
                name,
                code,
                precision,
                quote,
                params,
                case,
                search,
                unsigned,
                fixed,
                min,
                max,
                radix,
            )| {
                vec![
                    V::Str(name),
                    V::Int(code),
                    V::int(precision),
                    V::str(quote),
                    V::str(quote),
                    V::str(params),
                    V::Short(1), // typeNullable
                    V::Bool(case),
                    V::Short(search),
                    V::Bool(unsigned),
                    V::Bool(fixed),
                    V::Bool(false),
                    V::Str(name),
                    V::Short(min),
                    V::Short(max),
                    V::Null,
                    V::Null,
                    V::int(radix),
                ]
            },
        )
        .collect();
    use DataType::{Boolean, Int16, Int32, Utf8};
    typed(
        &[
            ("TYPE_NAME", Utf8),
            ("DATA_TYPE", Int32),
            ("PRECISION", Int32),
            ("LITERAL_PREFIX", Utf8),
            ("LITERAL_SUFFIX", Utf8),
            ("CREATE_PARAMS", Utf8),
            ("NULLABLE", Int16),
            ("CASE_SENSITIVE", Boolean),
            ("SEARCHABLE", Int16),
            ("UNSIGNED_ATTRIBUTE", Boolean),
            ("FIXED_PREC_SCALE", Boolean),
            ("AUTO_INCREMENT", Boolean),
            ("LOCAL_TYPE_NAME", Utf8),
            ("MINIMUM_SCALE", Int16),
            ("MAXIMUM_SCALE", Int16),
            ("SQL_DATA_TYPE", Int32),
            ("SQL_DATETIME_SUB", Int32),
            ("NUM_PREC_RADIX", Int32),
        ],
        &rows,
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
    fn type_facts_follow_jdbc() {
        let d = type_facts("DECIMAL(18,2)");
        assert_eq!(
            (d.jdbc, d.size, d.digits, d.radix),
            (3, Some(18), Some(2), Some(10))
        );
        let s = type_facts("STRING");
        assert_eq!((s.jdbc, s.size), (12, Some(i32::MAX)));
        assert_eq!(type_facts("BIGINT").jdbc, -5);
        assert_eq!(type_facts("TIMESTAMP").jdbc, 93);
    }

    #[test]
    fn every_foreign_key_joins_columns_of_its_two_tables() {
        let has = |table: &str, column: &str| {
            COLUMNS
                .iter()
                .any(|(_, _, t, cols)| *t == table && cols.iter().any(|(n, _)| *n == column))
        };
        for (name, fk_table, pk_table, columns) in FOREIGN_KEYS {
            for (fk, pk) in *columns {
                assert!(has(fk_table, fk), "{name}: {fk_table}.{fk}");
                assert!(has(pk_table, pk), "{name}: {pk_table}.{pk}");
            }
        }
    }

    #[test]
    fn every_key_column_is_a_column_of_its_table() {
        for (c, s, t, _, key) in PRIMARY_KEYS {
            let table = COLUMNS
                .iter()
                .find(|(cc, ss, tt, _)| cc == c && ss == s && tt == t)
                .unwrap_or_else(|| panic!("{c}.{s}.{t} has columns"));
            for k in *key {
                assert!(table.3.iter().any(|(n, _)| n == k), "{t}.{k}");
            }
        }
        let keys = primary_keys(Some("SAMPLES"), None, Some("PartSupp")).unwrap();
        assert_eq!(column(&keys, 3), vec!["ps_partkey", "ps_suppkey"]);
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
