//! The mock through the driver's public API: `client_builder()` gives a working client.

use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;

use super::*;

#[tokio::test]
async fn client_builder_points_a_working_client_at_the_mock() {
    let mock = MockWarehouse::start().await.unwrap();
    let client = mock.client_builder().build().unwrap();
    let session = client.open_session().await.unwrap();
    assert_eq!(mock.open_sessions(), 1);
    let mut op = session.execute_statement("SELECT 1").await.unwrap();
    let batches = op.fetch_all().await.unwrap();
    assert_eq!(batches[0].column(0).as_primitive::<Int32Type>().value(0), 1);
    op.close().await.unwrap();
    session.close().await.unwrap();
    client.close().await.unwrap();
    assert_eq!(mock.open_sessions(), 0);
    assert_eq!(mock.open_operations(), 0);
}
