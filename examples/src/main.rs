//! `cargo run -p auth-demo` serves the demo on SQLite with a file outbox;
//! `cargo run -p auth-demo -- --help` lists the operators' commands.

#[rocket::main]
async fn main() -> std::process::ExitCode {
    auth_rocket::cli::run(auth_demo::rocket(rocket::Config::figment())).await
}
