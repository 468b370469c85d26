//! The operators' CLI (`auth_rocket::cli`) as the demo's binary runs it, on
//! the database of a running demo: the verbs of the staff's API go through
//! the same operations (the same answers over HTTP afterwards, every change
//! audited with `"cli"` as its actor), and the sessions it ends stop working
//! on the running server within its revocation poll.

mod common;

use std::time::Duration;

use common::{Backend, TestApp};
use serde_json::{Value, json};

backend_tests!(
    the_cli_manages_accounts_through_the_operators_operations,
    the_cli_refuses_what_it_cannot_do,
    the_cli_invites_and_the_invitee_accepts,
);

/// The running demo polls revocations every second.
async fn demo(backend: Backend) -> TestApp {
    TestApp::demo_with(backend, |config| config.tokens.revocation_poll_secs = 1).await
}

/// Runs `auth-demo <args>` against the demo's database and outbox: its
/// output, or its error.
async fn cli(app: &TestApp, args: &[&str]) -> Result<String, String> {
    let mut config = common::test_config(&app.db.url);
    config.mail.transport = auth_core::config::MailTransport::Outbox { dir: app.db.dir().join("outbox") };
    let rocket = auth_demo::rocket(common::figment(&config));
    auth_rocket::cli::execute(std::iter::once("auth-demo").chain(args.iter().copied()), rocket).await
}

/// The output's lines, each a JSON object.
fn json_lines(output: &str) -> Vec<Value> {
    output.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("a JSON line: {line}"))).collect()
}

/// Waits until `check` holds: the running server learns of the CLI's
/// revocations from the database, within its poll interval.
async fn eventually(what: &str, check: impl AsyncFn() -> bool) {
    for _ in 0..50 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within 5 s");
}

async fn the_cli_manages_accounts_through_the_operators_operations(backend: Backend) {
    let app = demo(backend).await;
    let (alice, tokens) = app.signed_in("cli-alice").await;
    let kit = &app.kit;

    let found = cli(&app, &["find-user", "--email", &alice.email.to_uppercase()]).await.expect("find-user");
    let found = json_lines(&found);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((&found[0]["id"], &found[0]["is_active"]), (&json!(alice.id), &json!(true)), "{found:?}");

    let said = cli(&app, &["deactivate", "--email", &alice.email]).await.expect("deactivate");
    assert!(said.contains("deactivated"), "{said}");
    assert!(!kit.refresh_works(&tokens.refresh).await, "the refresh token is refused at once");
    eventually("refusing the access token", async || !kit.access_works(&tokens.access).await).await;
    let login = json!({ "email": alice.email, "password": alice.password });
    kit.post("/login", None, &login).await.expect_error(403, "account_disabled");

    cli(&app, &["activate", "--email", &alice.email]).await.expect("activate");
    let tokens = kit.sign_in(&alice).await;
    cli(&app, &["logout-all", "--email", &alice.email]).await.expect("logout-all");
    assert!(!kit.refresh_works(&tokens.refresh).await, "logout-all ends the refresh token at once");
    eventually("ending the session", async || !kit.access_works(&tokens.access).await).await;

    cli(&app, &["grant-staff", "--email", &alice.email]).await.expect("grant-staff");
    let staff = kit.sign_in(&alice).await;
    kit.get("/admin/users", Some(&staff.access)).await.expect(200);
    cli(&app, &["revoke-staff", "--email", &alice.email]).await.expect("revoke-staff");
    eventually("ending the staff session", async || !kit.access_works(&staff.access).await).await;
    let tokens = kit.sign_in(&alice).await;
    kit.get("/admin/users", Some(&tokens.access)).await.expect_error(403, "forbidden");

    // Every change is in the audit trail with the CLI as its actor.
    let audit = async |args: &[&str]| {
        let args = [&["audit", "--email", alice.email.as_str()], args].concat();
        json_lines(&cli(&app, &args).await.expect("audit"))
    };
    for event in ["user_deactivated", "user_activated", "logged_out_everywhere", "staff_granted", "staff_revoked"] {
        let events = audit(&["--event", event]).await;
        assert_eq!(events.len(), 1, "one {event}: {events:?}");
        assert_eq!((&events[0]["user_id"], &events[0]["detail"]["actor"]), (&json!(alice.id), &json!("cli")));
    }
    let activated = audit(&["--event", "user_activated"]).await[0]["at"].as_str().expect("at").to_owned();
    let recent = audit(&["--since", &activated]).await;
    let names: Vec<&str> = recent.iter().filter_map(|e| e["event"].as_str()).collect();
    assert!(names.contains(&"user_activated") && !names.contains(&"user_deactivated"), "{names:?}");
    assert_eq!(audit(&["--limit", "2"]).await.len(), 2);

    // The account's owner sees what the operator did, over HTTP.
    let activity = kit.get("/me/activity", Some(&tokens.access)).await;
    activity.expect(200);
    let deactivated = activity.json.as_array().into_iter().flatten().find(|e| e["event"] == "user_deactivated");
    assert_eq!(deactivated.map(|e| &e["by_operator"]), Some(&json!(true)), "{activity}");
}

async fn the_cli_refuses_what_it_cannot_do(backend: Backend) {
    let app = demo(backend).await;
    let nobody = app.kit.unique_email("nobody");
    for verb in ["deactivate", "activate", "logout-all", "grant-staff", "revoke-staff"] {
        let refused = cli(&app, &[verb, "--email", &nobody]).await.expect_err(verb);
        assert!(refused.contains("no user with email"), "{verb}: {refused}");
    }
    for (args, field) in [
        (&["find-user", "--page", "0"][..], "page"),
        (&["audit", "--since", "yesterday"][..], "since"),
        (&["audit", "--event", "Login-Failed"][..], "event"),
        (&["audit", "--limit", "501"][..], "limit"),
    ] {
        let refused = cli(&app, args).await.expect_err("an invalid filter");
        assert!(refused.contains("invalid input") && refused.contains(field), "{args:?}: {refused}");
    }
    let none = cli(&app, &["find-user", "--email", &nobody]).await.expect("find-user");
    assert_eq!(none, "", "nobody found: no line");
}

/// `invite` is an invitation like any other: mailed, accepted by the
/// invitee's verified address, under the membership rules, audited as the CLI's.
async fn the_cli_invites_and_the_invitee_accepts(backend: Backend) {
    let app = demo(backend).await;
    let kit = &app.kit;
    let (owner, owner_tokens) = app.signed_in("cli-owner").await;
    let tenant = kit.create_tenant(&owner_tokens.access).await;
    let (invitee, invitee_tokens) = app.signed_in("cli-invitee").await;

    let said = cli(&app, &["invite", "--tenant", &tenant, "--email", &invitee.email, "--role", "admin"]).await;
    assert!(said.expect("invite").contains("invited"));
    let token = kit.wait_for_mail(&invitee.email, 1).await.token();
    let joined = kit.post("/invitations/accept", Some(&invitee_tokens.access), &json!({ "token": token })).await;
    joined.expect(201);
    assert_eq!(joined.str("/role"), "admin", "{joined}");

    let again = cli(&app, &["invite", "--tenant", &tenant, "--email", &invitee.email, "--role", "member"]).await;
    assert!(again.expect_err("already a member").contains("already a member"));
    let emperor = cli(&app, &["invite", "--tenant", &tenant, "--email", &owner.email, "--role", "emperor"]).await;
    assert!(emperor.expect_err("unknown role").contains("role"));
    let audit = cli(&app, &["audit", "--event", "invitation_sent"]).await.expect("audit");
    let sent = json_lines(&audit);
    assert_eq!((sent.len(), &sent[0]["detail"]["actor"]), (1, &json!("cli")), "{sent:?}");
}
