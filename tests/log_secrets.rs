//! Issue #10.9: no password, token or one-time code reaches any log, at any
//! level. Every `log` record (Rocket's request lines among them) and every
//! `tracing` event is captured at trace level through a full flow of the demo
//! app, and the capture is searched for every secret the flow used.
//!
//! One test in its own binary: the global logger and subscriber are set once,
//! before Rocket would set its own.

mod common;

use std::sync::{Arc, Mutex, PoisonError};

use common::{Backend, NEW_PASSWORD, TestApp};
use serde_json::json;

/// Everything logged, one record per line.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<String>>);

impl Capture {
    fn push(&self, line: &str) {
        let mut text = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        text.push_str(line);
        text.push('\n');
    }

    fn text(&self) -> String {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        self.push(&format!("{} {} {}", record.level(), record.target(), record.args()));
    }
    fn flush(&self) {}
}

impl std::io::Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push_str(&String::from_utf8_lossy(bytes));
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_everything() -> Capture {
    let capture = Capture::default();
    log::set_boxed_logger(Box::new(capture.clone())).expect("the first logger of this binary");
    log::set_max_level(log::LevelFilter::Trace);
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        // Every span as it opens too, with its fields: the operations' spans are checked.
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::NEW)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the first subscriber of this binary");
    capture
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_of_a_full_flow_reaches_any_log() {
    let capture = capture_everything();
    let app = TestApp::demo(Backend::Sqlite).await;
    let kit = &app.kit;
    let mut secrets: Vec<(&str, String)> = Vec::new();

    let user = kit.register("logged").await;
    secrets.push(("the registration password", user.password.clone()));
    let verification = kit.wait_for_mail(&user.email, 0).await.token();
    // The emailed link, exactly as a browser opens it: the token in the query.
    app.get(&format!("/api/auth/verify-email?token={verification}"), None).await.expect(200);
    secrets.push(("the verification token", verification));

    let tokens = kit.sign_in(&user).await;
    let rotated = kit.refreshed(&tokens.refresh).await;
    kit.get("/me", Some(&rotated.access)).await.expect(200);
    let change = json!({ "current_password": user.password, "new_password": NEW_PASSWORD });
    kit.post("/password/change", Some(&rotated.access), &change).await.expect(204);
    secrets.push(("the new password", NEW_PASSWORD.to_owned()));

    let mails = kit.mail_to(&user.email).len();
    kit.post("/password/reset", None, &json!({ "email": user.email })).await.expect(202);
    let reset = kit.wait_for_mail(&user.email, mails).await.token();
    let reset_password = "Reset-Passphrase-Of-Logs-77";
    let confirm = json!({ "token": reset, "new_password": reset_password });
    kit.post("/password/reset/confirm", None, &confirm).await.expect(204);
    secrets.push(("the reset token", reset));
    secrets.push(("the reset password", reset_password.to_owned()));

    let login = json!({ "email": user.email, "password": reset_password });
    let answer = kit.post("/login", None, &login).await;
    answer.expect(200);
    let (access, refresh) = (answer.str("/access").to_owned(), answer.str("/refresh").to_owned());
    kit.post("/logout", Some(&access), &json!({ "refresh": refresh })).await.expect(204);
    // A wrong password is a secret too (it is often the right one, mistyped).
    kit.post("/login", None, &json!({ "email": user.email, "password": "Almost-Right-Passw0rd" })).await.expect(401);
    secrets.push(("a wrong password", "Almost-Right-Passw0rd".to_owned()));

    // An OpenID Connect callback and sign-in start carry a code, a state and an
    // email address in the query (an unknown provider: the URI is logged all the same).
    let oauth = "/api/auth/oauth/nowhere/callback?code=c0de-of-logs-123&state=st4te-of-logs-456";
    app.get(oauth, None).await.expect(404);
    app.get("/api/auth/oauth/nowhere/authorize?login_hint=hint-of-logs%40example.com", None).await.expect(404);
    secrets.push(("an authorization code", "c0de-of-logs-123".to_owned()));
    secrets.push(("a state", "st4te-of-logs-456".to_owned()));
    secrets.push(("a login hint", "hint-of-logs".to_owned()));
    // The operators' searches name people.
    app.get("/api/auth/admin/users?email=searched-in-logs%40example.com", None).await.expect(401);
    app.get("/api/auth/admin/audit?user_id=0190a5c4-1d2e-7f00-8000-00000000beef", None).await.expect(401);
    secrets.push(("an operator's search", "searched-in-logs".to_owned()));
    secrets.push(("an operator's audit filter", "00000000beef".to_owned()));

    for (label, token) in [("access", &tokens.access), ("refresh", &tokens.refresh)] {
        secrets.push((label, token.clone()));
    }
    secrets.push(("a rotated access token", rotated.access.clone()));
    secrets.push(("a rotated refresh token", rotated.refresh.clone()));
    secrets.push(("the last access token", access));
    secrets.push(("the last refresh token", refresh));

    let logged = capture.text();
    assert!(logged.contains("/api/auth/verify-email?token=***"), "the request line is logged, redacted");
    assert!(logged.contains("POST /api/auth/login"), "Rocket's request lines were captured");
    for span in ["auth.accounts.register", "auth.accounts.verify_email", "auth.sessions.login", "auth.sessions.refresh"]
    {
        assert!(logged.contains(span), "one span per operation: {span} in\n{logged}");
    }
    for (label, secret) in &secrets {
        // JWTs: each part on its own too (a log could cut a token at its dots).
        let parts: Vec<&str> = secret.split('.').filter(|part| part.len() >= 16).collect();
        for needle in std::iter::once(secret.as_str()).chain(parts) {
            assert!(!logged.contains(needle), "{label} reached the log:\n{}", context(&logged, needle));
        }
    }
}

/// The logged lines that contain `needle`.
fn context(logged: &str, needle: &str) -> String {
    logged.lines().filter(|line| line.contains(needle)).collect::<Vec<_>>().join("\n")
}
