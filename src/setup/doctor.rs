//! `orderline doctor`: not built yet in this commit.

use std::process::ExitCode;

use crate::config::Settings;

pub async fn run(_settings: &Settings, _external: bool, _number: Option<&str>) -> ExitCode {
    eprintln!("orderline doctor is not built yet");
    ExitCode::FAILURE
}
