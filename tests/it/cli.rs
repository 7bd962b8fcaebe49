//! The `orderline` command: configuration errors are named, migrations run, settings layer.

use std::process::Command;

fn orderline(envs: &[(&str, &str)], args: &[&str]) -> (Option<i32>, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_orderline"));
    command.args(args).env_remove("TWILIO_AUTH_TOKEN").env_remove("DATABASE_URL").env_remove("ORDERLINE_CONFIG");
    for (k, v) in envs {
        command.env(k, v);
    }
    let output = command.output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn serve_refuses_to_start_without_the_twilio_token() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("o.db").display());
    let (code, _, stderr) = orderline(&[("DATABASE_URL", &db), ("ORDERLINE_LISTEN", "127.0.0.1:0")], &["serve"]);
    assert_ne!(code, Some(0));
    assert!(stderr.contains("TWILIO_AUTH_TOKEN is not set"), "{stderr}");
}

#[test]
fn a_malformed_setting_is_named() {
    let (code, _, stderr) = orderline(&[("ORDERLINE_FRESHNESS", "fortnight"), ("TWILIO_AUTH_TOKEN", "t")], &["serve"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("ORDERLINE_FRESHNESS") && stderr.contains("fortnight"), "{stderr}");
    let (code, _, stderr) = orderline(&[("DATABASE_URL", "mysql://db"), ("TWILIO_AUTH_TOKEN", "t")], &["serve"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("DATABASE_URL"), "{stderr}");
}

#[test]
fn migrate_creates_the_embedded_database_named_in_orderline_toml() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("from-toml.db");
    let toml = dir.path().join("orderline.toml");
    std::fs::write(&toml, format!("database_url = \"sqlite://{}\"\n", db_path.display())).unwrap();
    let (code, stdout, stderr) = orderline(&[("ORDERLINE_CONFIG", toml.to_str().unwrap())], &["migrate"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("migrations applied"));
    assert!(db_path.exists());
    // The environment wins over the file.
    let other = dir.path().join("from-env.db");
    let (code, _, stderr) = orderline(
        &[("ORDERLINE_CONFIG", toml.to_str().unwrap()), ("DATABASE_URL", &format!("sqlite://{}", other.display()))],
        &["migrate"],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(other.exists());
}

#[test]
fn a_missing_config_file_named_explicitly_is_an_error() {
    let (code, _, stderr) = orderline(&[("ORDERLINE_CONFIG", "/nonexistent/orderline.toml")], &["migrate"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("/nonexistent/orderline.toml"), "{stderr}");
}
