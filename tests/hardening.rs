//! Weaknesses of issue #10 that are visible over HTTP, each reproduced through
//! the demo app's real routing and guards.

mod common;

use std::time::Duration;

use common::{Backend, TestApp};
use uuid::Uuid;

backend_tests!(a_flood_of_denials_makes_a_bounded_number_of_writes);

/// Issue #10.10: every 403 spawned a task and wrote a row. Ten thousand
/// denials of one caller now write one row (and, when the window closes, one
/// summary with the count).
async fn a_flood_of_denials_makes_a_bounded_number_of_writes(backend: Backend) {
    let app = TestApp::demo(backend).await;
    let (user, tokens) = app.signed_in("flooder").await;
    let user_id: Uuid = user.id.parse().expect("a user id");
    for _ in 0..10_000 {
        app.get("/api/staff", Some(&tokens.access)).await.expect(403);
    }
    let denials = async || {
        let trail = app.auth().operators().audit_trail(Some(user_id), 20_000).await.expect("the audit trail");
        trail.into_iter().filter(|event| event.event == "access_denied").collect::<Vec<_>>()
    };
    // Writes are queued: wait until the first has landed, then for stragglers.
    for _ in 0..500 {
        if !denials().await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let written = denials().await;
    assert_eq!(written.len(), 1, "10 000 denials of one caller within a minute are one row: {}", written.len());
    assert_eq!(written[0].detail["path"], "/api/staff", "{:?}", written[0]);
}
