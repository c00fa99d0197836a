//! Metadata calls (catalogs, schemas, tables, table types, columns, primary and foreign keys,
//! functions, type info) through the public API against the mock warehouse's small fixed catalog.

mod common;

use common::client;
use databricks_sql::arrow::array::{Array, BooleanArray, Int32Array, RecordBatch, StringArray};
use databricks_sql::{ErrorKind, Operation};

/// The values of the string column `name` across `batches`.
fn strings(batches: &[RecordBatch], name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for b in batches {
        let idx = b
            .schema()
            .index_of(name)
            .unwrap_or_else(|_| panic!("column {name} in {:?}", b.schema()));
        let col = b
            .column(idx)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("string column");
        out.extend((0..col.len()).map(|i| col.value(i).to_string()));
    }
    out
}

/// Every batch of a metadata call's result.
async fn all(op: databricks_sql::Result<Operation>) -> Vec<RecordBatch> {
    op.expect("the call starts")
        .fetch_all()
        .await
        .expect("the result reads")
}

/// The values of the INT column `name` across `batches` (`None` for nulls).
fn ints(batches: &[RecordBatch], name: &str) -> Vec<Option<i32>> {
    let mut out = Vec::new();
    for b in batches {
        let col = b
            .column_by_name(name)
            .unwrap_or_else(|| panic!("column {name} in {:?}", b.schema()));
        let col = col
            .as_any()
            .downcast_ref::<Int32Array>()
            .expect("INT column");
        out.extend((0..col.len()).map(|i| col.is_valid(i).then(|| col.value(i))));
    }
    out
}

#[tokio::test]
async fn columns_lists_names_types_and_positions_in_table_order() {
    let (_mock, client) = client().await;
    let session = client.open_session().await.unwrap();
    let batches = all(session
        .columns(Some("samples"), Some("tpch"), Some("region"), None)
        .await)
    .await;
    assert_eq!(batches[0].num_columns(), 23, "{:?}", batches[0].schema());
    assert_eq!(
        strings(&batches, "COLUMN_NAME"),
        ["r_regionkey", "r_name", "r_comment"]
    );
    assert_eq!(
        strings(&batches, "TYPE_NAME"),
        ["BIGINT", "STRING", "STRING"]
    );
    // java.sql.Types: BIGINT -5, VARCHAR 12.
    assert_eq!(ints(&batches, "DATA_TYPE"), [Some(-5), Some(12), Some(12)]);
    assert_eq!(
        ints(&batches, "ORDINAL_POSITION"),
        [Some(1), Some(2), Some(3)]
    );
    // The key column is not nullable.
    assert_eq!(ints(&batches, "NULLABLE"), [Some(0), Some(1), Some(1)]);
    assert_eq!(strings(&batches, "IS_NULLABLE"), ["NO", "YES", "YES"]);

    // Patterns on every level; decimals carry precision and scale.
    let batches = all(session
        .columns(None, Some("tp%"), Some("%"), Some("%_acctbal"))
        .await)
    .await;
    assert_eq!(strings(&batches, "TABLE_NAME"), ["customer", "supplier"]);
    assert_eq!(
        strings(&batches, "TYPE_NAME"),
        ["DECIMAL(18,2)", "DECIMAL(18,2)"]
    );
    assert_eq!(ints(&batches, "COLUMN_SIZE"), [Some(18), Some(18)]);
    assert_eq!(ints(&batches, "DECIMAL_DIGITS"), [Some(2), Some(2)]);
}

#[tokio::test]
async fn primary_keys_list_key_columns_in_key_order() {
    let (_mock, client) = client().await;
    let session = client.open_session().await.unwrap();
    let batches = all(session
        .primary_keys(Some("samples"), Some("tpch"), "lineitem")
        .await)
    .await;
    assert_eq!(
        strings(&batches, "COLUMN_NAME"),
        ["l_orderkey", "l_linenumber"]
    );
    assert_eq!(ints(&batches, "KEY_SEQ"), [Some(1), Some(2)]);
    assert_eq!(strings(&batches, "PK_NAME"), ["lineitem_pk", "lineitem_pk"]);
    // A table without a key (or unknown) has no rows.
    let none = all(session
        .primary_keys(Some("samples"), Some("nyctaxi"), "trips")
        .await)
    .await;
    assert_eq!(none.iter().map(|b| b.num_rows()).sum::<usize>(), 0);
}

#[tokio::test]
async fn foreign_keys_are_listed_imported_exported_and_between_two_tables() {
    let (_mock, client) = client().await;
    let session = client.open_session().await.unwrap();

    // lineitem references orders (one column) and partsupp (two, in key order).
    let imported = all(session
        .imported_keys(Some("samples"), Some("tpch"), "lineitem")
        .await)
    .await;
    assert_eq!(imported[0].num_columns(), 14, "{:?}", imported[0].schema());
    assert_eq!(
        strings(&imported, "PKTABLE_NAME"),
        ["orders", "partsupp", "partsupp"]
    );
    assert_eq!(
        strings(&imported, "FKCOLUMN_NAME"),
        ["l_orderkey", "l_partkey", "l_suppkey"]
    );
    assert_eq!(
        strings(&imported, "PKCOLUMN_NAME"),
        ["o_orderkey", "ps_partkey", "ps_suppkey"]
    );
    assert_eq!(ints(&imported, "KEY_SEQ"), [Some(1), Some(1), Some(2)]);
    assert_eq!(
        strings(&imported, "PK_NAME"),
        ["orders_pk", "partsupp_pk", "partsupp_pk"]
    );

    // nation is referenced by customer and supplier.
    let exported = all(session.exported_keys(None, None, "NATION").await).await;
    assert_eq!(strings(&exported, "FKTABLE_NAME"), ["customer", "supplier"]);
    assert_eq!(
        strings(&exported, "FK_NAME"),
        ["customer_nation_fk", "supplier_nation_fk"]
    );

    // Between two given tables, and none where there is no key.
    let between = all(session
        .cross_reference(None, None, Some("customer"), None, None, Some("orders"))
        .await)
    .await;
    assert_eq!(strings(&between, "FKCOLUMN_NAME"), ["o_custkey"]);
    let none = all(session
        .cross_reference(None, None, Some("orders"), None, None, Some("customer"))
        .await)
    .await;
    assert_eq!(none.iter().map(|b| b.num_rows()).sum::<usize>(), 0);
}

#[tokio::test]
async fn functions_and_type_info_are_listed() {
    let (_mock, client) = client().await;
    let session = client.open_session().await.unwrap();
    let batches = all(session.functions(None, None, "c%").await).await;
    assert_eq!(
        strings(&batches, "FUNCTION_NAME"),
        [
            "coalesce",
            "concat",
            "count",
            "current_date",
            "current_timestamp"
        ]
    );
    assert!(ints(&batches, "FUNCTION_TYPE")
        .iter()
        .all(|t| *t == Some(1)));

    let batches = all(session.type_info().await).await;
    assert_eq!(batches[0].num_columns(), 18, "{:?}", batches[0].schema());
    let names = strings(&batches, "TYPE_NAME");
    for t in ["BIGINT", "STRING", "DECIMAL", "TIMESTAMP", "BOOLEAN"] {
        assert!(names.iter().any(|n| n == t), "{t} in {names:?}");
    }
    let codes = ints(&batches, "DATA_TYPE");
    assert!(
        codes.windows(2).all(|w| w[0] <= w[1]),
        "ordered by DATA_TYPE: {codes:?}"
    );
    let string = names.iter().position(|n| n == "STRING").unwrap();
    let case_sensitive = batches[0]
        .column_by_name("CASE_SENSITIVE")
        .unwrap()
        .as_any()
        .downcast_ref::<BooleanArray>()
        .expect("BOOLEAN column")
        .value(string);
    assert!(case_sensitive, "strings compare case-sensitively");
}

#[tokio::test]
async fn lists_catalogs_schemas_tables_and_table_types() {
    let (mock, client) = client().await;
    let session = client.open_session().await.unwrap();

    let catalogs = all(session.catalogs().await).await;
    let catalogs = strings(&catalogs, "TABLE_CAT");
    assert!(catalogs.iter().any(|c| c == "samples"), "{catalogs:?}");

    let mut op = session.schemas(Some("samples"), None).await.unwrap();
    let schemas = strings(&op.fetch_all().await.unwrap(), "TABLE_SCHEM");
    assert_eq!(schemas, ["nyctaxi", "tpch"]);
    op.close().await.unwrap();

    let tables = all(session
        .tables(Some("samples"), Some("tp%"), Some("%item"), &[])
        .await)
    .await;
    assert_eq!(strings(&tables, "TABLE_NAME"), ["lineitem"]);
    assert_eq!(strings(&tables, "TABLE_TYPE"), ["TABLE"]);

    let table_types = all(session.table_types().await).await;
    assert!(strings(&table_types, "TABLE_TYPE")
        .iter()
        .any(|t| t == "TABLE"));

    assert_eq!(mock.call_count("GetCatalogs"), 1);
    assert_eq!(mock.call_count("GetSchemas"), 1);
    assert_eq!(mock.call_count("GetTables"), 1);
    assert_eq!(mock.call_count("GetTableTypes"), 1);
}

#[tokio::test]
async fn table_type_filter_narrows_the_listing() {
    let (_mock, client) = client().await;
    let session = client.open_session().await.unwrap();
    let every = all(session.tables(None, None, None, &[]).await).await;
    let views = all(session.tables(None, None, None, &["VIEW"]).await).await;
    let view_types = strings(&views, "TABLE_TYPE");
    assert!(view_types.iter().all(|t| t == "VIEW"), "{view_types:?}");
    assert!(view_types.len() < strings(&every, "TABLE_TYPE").len());
}

#[tokio::test]
async fn server_info_names_the_server_and_its_version() {
    let (mock, client) = client().await;
    let session = client.open_session().await.unwrap();
    let info = session.server_info().await.unwrap();
    assert_eq!(info.server_name, "Spark SQL");
    assert_eq!(info.dbms_name, "Spark SQL");
    assert_eq!(info.dbms_version, "3.5.0");
    assert_eq!(mock.call_count("GetInfo"), 3);
    session.close().await.unwrap();
    let err = session.server_info().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed);
    assert_eq!(mock.call_count("GetInfo"), 3, "no request once closed");
}

#[tokio::test]
async fn metadata_calls_on_a_closed_session_fail_without_a_request() {
    let (mock, client) = client().await;
    let session = client.open_session().await.unwrap();
    session.close().await.unwrap();
    let err = session.catalogs().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed);
    assert_eq!(mock.call_count("GetCatalogs"), 0);
}
