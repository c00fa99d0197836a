//! Metadata calls (catalogs, schemas, tables, table types) through the public API against the
//! mock warehouse's small fixed catalog.

mod common;

use common::client;
use databricks_sql::arrow::array::{Array, RecordBatch, StringArray};
use databricks_sql::ErrorKind;

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

#[tokio::test]
async fn lists_catalogs_schemas_tables_and_table_types() {
    let (mock, client) = client().await;
    let session = client.open_session().await.unwrap();

    let catalogs = session.catalogs().await.unwrap().fetch_all().await.unwrap();
    let catalogs = strings(&catalogs, "TABLE_CAT");
    assert!(catalogs.iter().any(|c| c == "samples"), "{catalogs:?}");

    let mut op = session.schemas(Some("samples"), None).await.unwrap();
    let schemas = strings(&op.fetch_all().await.unwrap(), "TABLE_SCHEM");
    assert_eq!(schemas, ["nyctaxi", "tpch"]);
    op.close().await.unwrap();

    let tables = session
        .tables(Some("samples"), Some("tp%"), Some("%item"), &[])
        .await
        .unwrap()
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(strings(&tables, "TABLE_NAME"), ["lineitem"]);
    assert_eq!(strings(&tables, "TABLE_TYPE"), ["TABLE"]);

    let table_types = session
        .table_types()
        .await
        .unwrap()
        .fetch_all()
        .await
        .unwrap();
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
    let all = session
        .tables(None, None, None, &[])
        .await
        .unwrap()
        .fetch_all()
        .await
        .unwrap();
    let views = session
        .tables(None, None, None, &["VIEW"])
        .await
        .unwrap()
        .fetch_all()
        .await
        .unwrap();
    let view_types = strings(&views, "TABLE_TYPE");
    assert!(view_types.iter().all(|t| t == "VIEW"), "{view_types:?}");
    assert!(view_types.len() < strings(&all, "TABLE_TYPE").len());
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
