//! The operators' API (`/admin/...`) and a user's own activity (`/me/activity`).

use chrono::{DateTime, FixedOffset};
use rocket::http::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::testing::{Answer, Conformance, FULL_NAME, PASSWORD, TestUser, Tokens};

impl Conformance {
    /// The operators' API: staff only (403 for everyone else on every route,
    /// the staff flag for superusers only); finding users by a part of their
    /// address in stable pages; an account as staff see it; deactivation ends
    /// every session at once (access token refused on the next request,
    /// refresh refused) and its login is `403 account_disabled` until it is
    /// activated again; ending a user's sessions; nobody deactivates or takes
    /// the staff flag of their own account (`403 own_account`); the audit
    /// trail's filters each narrow the answer, and every admin action is in it
    /// with its actor; bad parameters are `422`, unknown users `404`.
    pub async fn operators(&self) {
        let (root, root_tokens) = self.superuser("ops-root").await;
        let root_access = root_tokens.access.as_str();
        let alice = self.verified_user("ops-alice").await;
        let alice_tokens = self.sign_in(&alice).await;
        let alice_other = self.sign_in(&alice).await;
        let tenant = self.create_tenant(&alice_tokens.access).await;
        let bob = self.verified_user("ops-bob").await;
        let bob_tokens = self.sign_in(&bob).await;

        // Everyone but staff: 403 on every route (and 401 without a token).
        for (method, path, body) in admin_requests(&bob.id) {
            let body = body.map(|b| b.to_string());
            let uri = self.at(&path);
            let refused = self.send(method, &uri, Some(&alice_tokens.access), body.clone(), &[]).await;
            refused.expect_error(403, "forbidden");
            self.send(method, &uri, None, body, &[]).await.expect_error(401, "missing_token");
        }
        assert!(self.refresh_works(&bob_tokens.refresh).await, "the refused requests changed nothing");
        let bob_tokens = self.sign_in(&bob).await;

        // Finding users: part of the address, any case; bad parameters are 422.
        let local = alice.email.split('@').next().unwrap_or_default();
        let found = self.get(&format!("/admin/users?email={}", local.to_uppercase()), Some(root_access)).await;
        found.expect(200);
        assert_eq!(found.get("/users").as_array().map(Vec::len), Some(1), "{found}");
        assert_eq!(found.str("/users/0/id"), alice.id, "{found}");
        assert_eq!(found.get("/users/0/is_active"), &json!(true), "{found}");
        assert_eq!((found.get("/page"), found.get("/has_more")), (&json!(1), &json!(false)), "{found}");
        // `_` and `%` are no wildcards: `example_com` is not `example.com`.
        let wildcard = self.get(&format!("/admin/users?email={local}@example_com"), Some(root_access)).await;
        assert_eq!(wildcard.get("/users"), &json!([]), "{wildcard}");
        for page in ["0", "-1", "one", "1.5", "100001", ""] {
            self.get(&format!("/admin/users?page={page}"), Some(root_access)).await.expect_invalid("page");
        }
        let long = "a".repeat(255);
        self.get(&format!("/admin/users?email={long}"), Some(root_access)).await.expect_invalid("email");
        self.pages_of_users(root_access).await;

        // One account as staff see it; an unknown or malformed id is 404.
        let seen = self.get(&format!("/admin/users/{}", alice.id), Some(root_access)).await;
        seen.expect(200);
        assert_eq!((seen.str("/id"), seen.str("/email")), (alice.id.as_str(), alice.email.as_str()), "{seen}");
        for flag in ["/email_verified", "/is_active"] {
            assert_eq!(seen.get(flag), &json!(true), "{seen}");
        }
        for flag in ["/is_staff", "/is_superuser"] {
            assert_eq!(seen.get(flag), &json!(false), "{seen}");
        }
        assert!(seen.get("/date_joined").is_string() && seen.get("/last_login").is_string(), "{seen}");
        assert_eq!(seen.str("/memberships/0/tenant_id"), tenant, "{seen}");
        assert!(!seen.text.contains(PASSWORD) && !seen.text.contains("$argon2"), "no password material: {seen}");
        for id in [Uuid::new_v4().to_string(), "not-a-uuid".to_owned()] {
            self.get(&format!("/admin/users/{id}"), Some(root_access)).await.expect_error(404, "not_found");
            let missing = self.post_empty(&format!("/admin/users/{id}/deactivate"), Some(root_access)).await;
            missing.expect_error(404, "not_found");
        }

        // Deactivation ends every session at once; the login is refused after the password.
        let deactivated = self.post_empty(&format!("/admin/users/{}/deactivate", alice.id), Some(root_access)).await;
        deactivated.expect(200);
        assert_eq!(deactivated.get("/is_active"), &json!(false), "{deactivated}");
        assert!(!self.access_works(&alice_tokens.access).await, "the access token is refused at once");
        assert!(!self.access_works(&alice_other.access).await, "every session's");
        assert!(!self.refresh_works(&alice_tokens.refresh).await, "and its refresh token");
        let login = json!({ "email": alice.email, "password": alice.password });
        self.post("/login", None, &login).await.expect_error(403, "account_disabled");
        let wrong = json!({ "email": alice.email, "password": "Not-The-Password-4821" });
        self.post("/login", None, &wrong).await.expect_error(401, "invalid_credentials");
        let activated = self.post_empty(&format!("/admin/users/{}/activate", alice.id), Some(root_access)).await;
        activated.expect(200);
        assert_eq!(activated.get("/is_active"), &json!(true), "{activated}");
        let alice_tokens = self.sign_in(&alice).await;

        // Ending all sessions of a user.
        let bob_other = self.sign_in(&bob).await;
        self.post_empty(&format!("/admin/users/{}/logout-all", bob.id), Some(root_access)).await.expect(204);
        for tokens in [&bob_tokens, &bob_other] {
            assert!(!self.access_works(&tokens.access).await, "logout-all refuses the access tokens at once");
            assert!(!self.refresh_works(&tokens.refresh).await, "and the refresh tokens");
        }
        self.sign_in(&bob).await;

        // The staff flag: superusers only; staff act, but not on superusers.
        let carol = self.verified_user("ops-carol").await;
        let staff_path = format!("/admin/users/{}", carol.id);
        self.patch(&staff_path, Some(root_access), &json!({ "is_staff": "yes" })).await.expect_invalid("is_staff");
        let granted = self.patch(&staff_path, Some(root_access), &json!({ "is_staff": true })).await;
        granted.expect(200);
        assert_eq!((granted.get("/is_staff"), granted.get("/id")), (&json!(true), &json!(carol.id)), "{granted}");
        let carol_tokens = self.sign_in(&carol).await;
        let carol_access = carol_tokens.access.as_str();
        self.get("/admin/users", Some(carol_access)).await.expect(200);
        let bob_path = format!("/admin/users/{}", bob.id);
        self.patch(&bob_path, Some(carol_access), &json!({ "is_staff": true })).await.expect_error(403, "forbidden");
        let own = self.post_empty(&format!("/admin/users/{}/deactivate", carol.id), Some(carol_access)).await;
        own.expect_error(403, "own_account");
        let on_root = self.post_empty(&format!("/admin/users/{}/deactivate", root.id), Some(carol_access)).await;
        on_root.expect_error(403, "forbidden");
        let root_path = format!("/admin/users/{}", root.id);
        let own_flag = self.patch(&root_path, Some(root_access), &json!({ "is_staff": false })).await;
        own_flag.expect_error(403, "own_account");
        let taken = self.patch(&staff_path, Some(root_access), &json!({ "is_staff": false })).await;
        taken.expect(200);
        assert_eq!(taken.get("/is_staff"), &json!(false), "{taken}");
        assert!(!self.access_works(carol_access).await, "taking the flag ends the sessions that carry it");
        let carol_tokens = self.sign_in(&carol).await;
        self.get("/admin/users", Some(&carol_tokens.access)).await.expect_error(403, "forbidden");
        assert!(self.access_works(root_access).await, "the refusals changed nothing of root's");

        self.audit_filters(&root, &alice, &bob, &carol).await;

        // The account's owner sees what the operators did, without their address.
        let activity = self.get("/me/activity", Some(&alice_tokens.access)).await;
        activity.expect(200);
        for event in ["user_deactivated", "user_activated"] {
            let entry = activity_entry(&activity, event);
            assert_eq!(entry["by_operator"], json!(true), "{event}: {activity}");
            assert!(entry["ip"].is_null() && entry["user_agent"].is_null(), "{event}: {activity}");
        }
        assert!(!activity.text.contains(&root.id), "no operator's id: {activity}");
    }

    /// `GET /admin/users` pages: `page_size` users each, ordered by email,
    /// neither overlapping nor skipping anyone.
    async fn pages_of_users(&self, root_access: &str) {
        let tag = Uuid::new_v4().simple().to_string();
        let first = self.get(&format!("/admin/users?email={tag}"), Some(root_access)).await;
        first.expect(200);
        let size = first.get("/page_size").as_u64().unwrap_or_else(|| panic!("page_size: {first}"));
        let mut emails = Vec::new();
        for n in 0..=size {
            let email = format!("page-{n:03}-{tag}@example.com");
            let body = json!({ "email": email, "password": PASSWORD, "full_name": FULL_NAME });
            self.post("/register", None, &body).await.expect(201);
            emails.push(email);
        }
        let mut listed = Vec::new();
        for (page, has_more) in [(1, true), (2, false)] {
            let answer = self.get(&format!("/admin/users?email={tag}&page={page}"), Some(root_access)).await;
            answer.expect(200);
            assert_eq!(answer.get("/has_more"), &json!(has_more), "{answer}");
            let users = answer.get("/users").as_array().cloned().unwrap_or_default();
            let expected = if has_more { size } else { 1 };
            assert_eq!(users.len() as u64, expected, "page {page} has {expected} users: {answer}");
            listed.extend(users.iter().filter_map(|u| u["email"].as_str().map(str::to_owned)));
        }
        assert_eq!(listed, emails, "the pages list everyone once, ordered by email");
        let beyond = self.get(&format!("/admin/users?email={tag}&page=3"), Some(root_access)).await;
        assert_eq!((beyond.get("/users"), beyond.get("/has_more")), (&json!([]), &json!(false)), "{beyond}");
    }

    /// `GET /admin/audit`: every admin action of [`Conformance::operators`]
    /// with its actor, and each filter narrowing the answer.
    async fn audit_filters(&self, root: &TestUser, alice: &TestUser, bob: &TestUser, carol: &TestUser) {
        let root_access = self.sign_in(root).await.access;
        let audit = async |query: &str| {
            let answer = self.get(&format!("/admin/audit?{query}"), Some(&root_access)).await;
            answer.expect(200);
            let events = answer.json.as_array().cloned().unwrap_or_else(|| panic!("a list: {answer}"));
            assert!(events.windows(2).all(|w| time(&w[0]) >= time(&w[1])), "newest first: {answer}");
            events
        };
        let actor = json!(root.id);
        for (user, event) in [
            (alice, "user_deactivated"),
            (alice, "user_activated"),
            (bob, "logged_out_everywhere"),
            (carol, "staff_granted"),
            (carol, "staff_revoked"),
        ] {
            let events = audit(&format!("user_id={}&event={event}", user.id)).await;
            assert_eq!(events.len(), 1, "one {event} of {}: {events:?}", user.email);
            assert_eq!(events[0]["detail"]["actor"], actor, "{event} names its actor: {events:?}");
            assert_eq!(events[0]["user_id"], json!(user.id), "{event} names its target: {events:?}");
        }

        let of_alice = audit(&format!("user_id={}", alice.id)).await;
        assert!(of_alice.iter().all(|e| e["user_id"] == json!(alice.id)), "{of_alice:?}");
        let everyone = audit("limit=500").await;
        assert!(everyone.iter().any(|e| e["user_id"] != json!(alice.id)), "no filter: every user's events");
        let deactivations = audit(&format!("user_id={}&event=user_deactivated", alice.id)).await;
        assert!(deactivations.len() < of_alice.len(), "the event filter narrows: {deactivations:?}");
        let activated = &audit(&format!("user_id={}&event=user_activated", alice.id)).await[0];
        let since = activated["at"].as_str().unwrap_or_default().to_owned();
        let recent = audit(&format!("user_id={}&since={since}", alice.id)).await;
        let names: Vec<&str> = recent.iter().filter_map(|e| e["event"].as_str()).collect();
        assert!(names.contains(&"user_activated") && !names.contains(&"user_deactivated"), "since: {names:?}");
        assert!(recent.iter().all(|e| time(e) >= time(activated)), "{recent:?}");
        assert_eq!(audit(&format!("user_id={}&limit=1", alice.id)).await.len(), 1, "limit");

        for (query, field) in [
            ("user_id=nobody", "user_id"),
            ("event=Login-Failed", "event"),
            ("event=", "event"),
            ("since=yesterday", "since"),
            ("since=2025-01-31%2008:00:00Z", "since"),
            ("limit=0", "limit"),
            ("limit=501", "limit"),
        ] {
            self.get(&format!("/admin/audit?{query}"), Some(&root_access)).await.expect_invalid(field);
        }
    }

    /// `GET /me/activity`: the caller's own security events, newest first and
    /// bounded: their sign-in with its address and device, a refused sign-in,
    /// a password change; no refresh, no event's detail, nothing of another
    /// user; 401 without a token.
    pub async fn activity(&self) {
        const AGENT: &str = "Conformance-Activity/1.0";
        const OTHER_AGENT: &str = "Conformance-Other/1.0";
        let user = self.verified_user("activity").await;
        let other = self.verified_user("activity-other").await;
        let tokens = self.sign_in_from(&user, AGENT).await;
        let wrong = json!({ "email": user.email, "password": "Not-The-Password-4821" });
        self.post("/login", None, &wrong).await.expect(401);
        let change = json!({ "current_password": PASSWORD, "new_password": crate::testing::NEW_PASSWORD });
        self.post("/password/change", Some(&tokens.access), &change).await.expect(204);
        let tokens = self.refreshed(&tokens.refresh).await;
        self.sign_in_from(&other, OTHER_AGENT).await;
        let other_wrong = json!({ "email": other.email, "password": "Not-The-Password-4821" });
        self.post("/login", None, &other_wrong).await.expect(401);

        self.get("/me/activity", None).await.expect_error(401, "missing_token");
        let activity = self.get("/me/activity", Some(&tokens.access)).await;
        activity.expect(200);
        let events = activity.json.as_array().cloned().unwrap_or_else(|| panic!("a list: {activity}"));
        assert!(events.len() <= 50, "bounded: {activity}");
        let names: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
        assert_eq!(names.first(), Some(&"password_changed"), "newest first: {activity}");
        for expected in ["login_succeeded", "login_failed", "password_changed", "email_verified"] {
            assert!(names.contains(&expected), "{expected} is missing: {activity}");
        }
        assert!(!names.contains(&"refreshed"), "refreshes are no security events: {activity}");
        assert!(events.windows(2).all(|w| time(&w[0]) >= time(&w[1])), "newest first: {activity}");
        for event in &events {
            let mut keys: Vec<&str> = event.as_object().into_iter().flatten().map(|(k, _)| k.as_str()).collect();
            keys.sort_unstable();
            assert_eq!(keys, ["at", "by_operator", "event", "ip", "user_agent"], "no detail: {activity}");
        }

        // The sign-in, with the device and the address its session recorded.
        let sign_in = activity_entry(&activity, "login_succeeded");
        assert_eq!(sign_in["user_agent"], json!(AGENT), "{activity}");
        assert_eq!(sign_in["by_operator"], json!(false), "{activity}");
        let sessions = self.get("/sessions", Some(&tokens.access)).await;
        let current = sessions.json.as_array().into_iter().flatten().find(|s| s["current"] == json!(true));
        let address = current.map(|s| s["ip"].clone()).unwrap_or_else(|| panic!("the current session: {sessions}"));
        assert!(address.is_string(), "the session recorded the address: {sessions}");
        assert_eq!(sign_in["ip"], address, "the sign-in's address: {activity}");

        for held_back in [OTHER_AGENT, &other.email, &other.id, &user.email, PASSWORD, &tokens.access] {
            assert!(!activity.text.contains(held_back), "the activity must not hold {held_back:?}: {activity}");
        }
    }

    /// A fresh superuser, created through the app's `Auth` as the CLI's
    /// `create-superuser` does (no route makes one), and signed in.
    async fn superuser(&self, label: &str) -> (TestUser, Tokens) {
        let auth = self.client.rocket().state::<auth_core::Auth>().expect("the app manages the platform's Auth");
        let email = self.unique_email(label);
        let user = auth.operators().create_superuser(&email, PASSWORD, FULL_NAME).await.expect("a superuser");
        let user = TestUser { id: user.id.to_string(), email, password: PASSWORD.to_owned() };
        let tokens = self.sign_in(&user).await;
        (user, tokens)
    }

    /// Logs `user` in from a device with `user_agent`.
    async fn sign_in_from(&self, user: &TestUser, user_agent: &str) -> Tokens {
        let body = json!({ "email": user.email, "password": user.password }).to_string();
        let answer = self.send(Method::Post, &self.at("/login"), None, Some(body), &[("User-Agent", user_agent)]).await;
        answer.expect(200);
        Tokens { access: answer.str("/access").to_owned(), refresh: answer.str("/refresh").to_owned() }
    }
}

/// Every route of the operators' API, with a valid body where it takes one,
/// aimed at the account of `id`.
fn admin_requests(id: &str) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (Method::Get, "/admin/users?email=example".to_owned(), None),
        (Method::Get, format!("/admin/users/{id}"), None),
        (Method::Post, format!("/admin/users/{id}/deactivate"), None),
        (Method::Post, format!("/admin/users/{id}/activate"), None),
        (Method::Post, format!("/admin/users/{id}/logout-all"), None),
        (Method::Patch, format!("/admin/users/{id}"), Some(json!({ "is_staff": true }))),
        (Method::Get, format!("/admin/audit?user_id={id}"), None),
    ]
}

/// The `at` of an event.
#[track_caller]
fn time(event: &Value) -> DateTime<FixedOffset> {
    let at = event["at"].as_str().and_then(|at| DateTime::parse_from_rfc3339(at).ok());
    at.unwrap_or_else(|| panic!("`at` is an RFC 3339 date-time: {event}"))
}

/// The newest entry of `event` in an answer of `GET /me/activity`.
#[track_caller]
fn activity_entry<'a>(activity: &'a Answer, event: &str) -> &'a Value {
    let entries = activity.json.as_array().into_iter().flatten();
    entries.into_iter().find(|e| e["event"] == json!(event)).unwrap_or_else(|| panic!("no {event}: {activity}"))
}
