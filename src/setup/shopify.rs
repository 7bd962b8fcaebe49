//! `orderline setup shopify`: not built yet in this commit.

use std::process::ExitCode;

use crate::config::Settings;

pub async fn run(_settings: &Settings, _dry_run: bool) -> Result<ExitCode, String> {
    Err("setup shopify is not built yet".into())
}
