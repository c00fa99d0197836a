//! `ClientBuilder::from_env()` and `from_profile()` against the mock warehouse, with a temporary
//! HOME holding a `~/.databrickscfg`: the documented precedence (builder over environment over
//! profile), shown by which credential the mock receives. Its own test binary: it sets the
//! process's environment, one case after another.

use std::path::{Path, PathBuf};

use databricks_sql::mock::MockWarehouse;
use databricks_sql::{ClientBuilder, ErrorKind};

const VARIABLES: [&str; 10] = [
    "DATABRICKS_HOST",
    "DATABRICKS_PORT",
    "DATABRICKS_HTTP_PATH",
    "DATABRICKS_TOKEN",
    "DATABRICKS_CLIENT_ID",
    "DATABRICKS_CLIENT_SECRET",
    "DATABRICKS_AUTH_TYPE",
    "DATABRICKS_CONFIG_FILE",
    "DATABRICKS_CONFIG_PROFILE",
    "DATABRICKS_TELEMETRY_DISABLED",
];

fn temp_home() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let home = std::env::temp_dir().join(format!("dbsql-home-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&home).expect("home");
    home
}

fn write_profiles(file: &Path, mock: &MockWarehouse, wrong_token: &str) {
    let text = format!(
        "[DEFAULT]\nhost = {base}\nhttp_path = {path}\ntoken = {wrong_token}\n\n\
         [m2m]\nhost = {base}\nhttp_path = {path}\nclient_id = mock-client\nclient_secret = mock-secret\n",
        base = mock.base_url(),
        path = mock.http_path(),
    );
    std::fs::write(file, text).expect("config file");
}

/// Set exactly `vars` (and HOME) among the variables this test uses.
fn environment(home: &Path, vars: &[(&str, String)]) {
    for name in VARIABLES {
        std::env::remove_var(name);
    }
    std::env::set_var("DATABRICKS_TELEMETRY_DISABLED", "1");
    std::env::set_var("HOME", home);
    for (name, value) in vars {
        std::env::set_var(name, value);
    }
}

/// What opening a session with `builder` gives: `Ok` with the client-credentials token
/// requests it made, or the error kind.
async fn outcome(mock: &MockWarehouse, builder: ClientBuilder) -> Result<usize, ErrorKind> {
    let before = mock.oauth_requests().client_credentials;
    let client = builder.build().map_err(|e| e.kind())?;
    let session = client.open_session().await.map_err(|e| e.kind())?;
    session.close().await.map_err(|e| e.kind())?;
    Ok(mock.oauth_requests().client_credentials - before)
}

#[tokio::test]
async fn environment_and_profiles_resolve_in_the_documented_order() {
    let mock = MockWarehouse::start().await.expect("mock");
    let home = temp_home();
    write_profiles(
        &home.join(".databrickscfg"),
        &mock,
        "dapi-wrong-profile-token",
    );
    write_profiles(&home.join("other.cfg"), &mock, mock.token());
    let good = mock.token().to_string();
    let env = |vars: &[(&str, String)]| environment(&home, vars);

    // The DEFAULT profile alone: its (wrong) token is used.
    env(&[]);
    assert_eq!(
        outcome(&mock, ClientBuilder::from_env()).await,
        Err(ErrorKind::Auth)
    );

    // The environment wins over the profile, setting by setting.
    env(&[("DATABRICKS_TOKEN", good.clone())]);
    assert_eq!(outcome(&mock, ClientBuilder::from_env()).await, Ok(0));

    // A builder setter wins over both.
    env(&[]);
    let builder = ClientBuilder::from_env().token(&good);
    assert_eq!(outcome(&mock, builder).await, Ok(0));

    // DATABRICKS_CONFIG_PROFILE picks another profile: OAuth client credentials.
    env(&[("DATABRICKS_CONFIG_PROFILE", "m2m".to_string())]);
    assert_eq!(outcome(&mock, ClientBuilder::from_env()).await, Ok(1));

    // from_profile names it directly.
    env(&[]);
    assert_eq!(
        outcome(&mock, ClientBuilder::from_profile("m2m")).await,
        Ok(1)
    );

    // DATABRICKS_CONFIG_FILE (with ~) picks another file, whose DEFAULT token is right.
    env(&[("DATABRICKS_CONFIG_FILE", "~/other.cfg".to_string())]);
    assert_eq!(outcome(&mock, ClientBuilder::from_env()).await, Ok(0));
    assert_eq!(
        outcome(&mock, ClientBuilder::from_profile("DEFAULT")).await,
        Ok(0)
    );

    // A token and client credentials at once, with no auth type: an error, not a guess.
    env(&[
        ("DATABRICKS_CONFIG_PROFILE", "m2m".to_string()),
        ("DATABRICKS_TOKEN", good.clone()),
    ]);
    assert_eq!(
        outcome(&mock, ClientBuilder::from_env()).await,
        Err(ErrorKind::Config)
    );
    // ... unless the auth type says which.
    env(&[
        ("DATABRICKS_CONFIG_PROFILE", "m2m".to_string()),
        ("DATABRICKS_TOKEN", good.clone()),
        ("DATABRICKS_AUTH_TYPE", "pat".to_string()),
    ]);
    assert_eq!(outcome(&mock, ClientBuilder::from_env()).await, Ok(0));

    // A profile that does not exist is a configuration error naming it.
    env(&[("DATABRICKS_CONFIG_PROFILE", "nope".to_string())]);
    let err = ClientBuilder::from_env()
        .build()
        .expect_err("no such profile");
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.to_string().contains("nope"), "{err}");
    let err = ClientBuilder::from_profile("nope")
        .build()
        .expect_err("no such profile");
    assert!(err.to_string().contains("nope"), "{err}");

    let _ = std::fs::remove_dir_all(&home);
}
