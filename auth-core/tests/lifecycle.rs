//! The account and tenant lifecycle at the engine: invitations, email change
//! and account deletion, on SQLite always and on PostgreSQL with `--ignored`.
//! Tokens are read from the mail the engine sent; nothing is mocked.

mod common;

use std::time::Duration;

use auth_core::AuthError;
use common::{PASSWORD, TestContext, client};

backend_tests!(
    invitations_are_single_use_revocable_and_bound_to_the_verified_address,
    an_invitation_admits_nobody_once_its_inviter_may_no_longer_grant_its_role,
    two_owners_demoting_each_other_at_once_leave_one_owner,
    concurrent_accepts_of_one_invitation_make_one_membership,
    an_expired_invitation_can_be_sent_again,
    email_change_is_confirmed_from_the_new_address,
    email_change_to_a_taken_address_tells_only_that_address,
    account_deletion_removes_everything_but_anonymous_audit,
    account_deletion_refuses_the_only_owner_of_a_shared_tenant,
    a_deleted_accounts_tokens_stop_on_every_instance,
);

async fn invitations_are_single_use_revocable_and_bound_to_the_verified_address(ctx: TestContext) {
    let owner = ctx.verified_user("owner@example.com").await;
    let tenant = ctx.auth.tenants().create(owner, "Acme", &client()).await.unwrap();
    let tenants = ctx.auth.tenants();
    let invitation = tenants.invite(owner, tenant.id, "new@example.com", "admin", &client()).await.unwrap();
    let mail = ctx.nth_mail("new@example.com", "You are invited", 1).await;
    assert!(mail.text.contains("http://localhost:8000/accept-invitation?token="), "{}", mail.text);
    assert!(mail.text.contains("\"Acme\" as admin"), "{}", mail.text);
    let token = common::token_in(&mail.text);
    assert_eq!(tenants.invitations(owner, tenant.id).await.unwrap(), [invitation]);

    // The invitee registers first; unverified, the invitation waits.
    let invitee = ctx.register("new@example.com").await;
    let unverified = tenants.accept_invitation(invitee, &token, &client()).await;
    assert!(matches!(unverified, Err(AuthError::EmailNotVerified)), "{unverified:?}");
    let verification = ctx.nth_mail("new@example.com", "Verify", 1).await;
    ctx.auth.accounts().verify_email(&common::token_in(&verification.text), &client()).await.unwrap();

    // Someone else holding the link cannot use it.
    let other = ctx.verified_user("other@example.com").await;
    let stolen = tenants.accept_invitation(other, &token, &client()).await;
    assert!(matches!(stolen, Err(AuthError::EmailMismatch)), "{stolen:?}");

    let joined = tenants.accept_invitation(invitee, &token, &client()).await.unwrap();
    assert_eq!((joined.tenant_id, joined.tenant_name.as_str(), joined.role.as_str()), (tenant.id, "Acme", "admin"));
    let again = tenants.accept_invitation(invitee, &token, &client()).await;
    assert!(matches!(again, Err(AuthError::InvalidOneTimeToken)), "single use: {again:?}");
    assert!(tenants.invitations(owner, tenant.id).await.unwrap().is_empty(), "an accepted invitation is not open");

    // A revoked invitation's link is dead; only open invitations can be revoked.
    let revoked = tenants.invite(owner, tenant.id, "other@example.com", "member", &client()).await.unwrap();
    let other_token = ctx.invitation_token("other@example.com", 1).await;
    tenants.revoke_invitation(owner, tenant.id, revoked.id, &client()).await.unwrap();
    let dead = tenants.accept_invitation(other, &other_token, &client()).await;
    assert!(matches!(dead, Err(AuthError::InvalidOneTimeToken)), "{dead:?}");
    let twice = tenants.revoke_invitation(owner, tenant.id, revoked.id, &client()).await;
    assert!(matches!(twice, Err(AuthError::NotFound)), "{twice:?}");
    assert_eq!(ctx.count("SELECT COUNT(*) FROM memberships").await, 2);

    // An admin cannot revoke an invitation to a role above theirs; an outsider cannot list.
    let high = tenants.invite(owner, tenant.id, "boss@example.com", "owner", &client()).await.unwrap();
    let above = tenants.revoke_invitation(invitee, tenant.id, high.id, &client()).await;
    assert!(matches!(above, Err(AuthError::InsufficientRole)), "{above:?}");
    let outsider = tenants.invitations(other, tenant.id).await;
    assert!(matches!(outsider, Err(AuthError::NotAMember)), "{outsider:?}");
}

/// The threat model's gap: an admin's open invitations outlived the admin's
/// role. Demoted (or removed), the inviter's invitations admit nobody; the
/// owner's still do.
async fn an_invitation_admits_nobody_once_its_inviter_may_no_longer_grant_its_role(ctx: TestContext) {
    let tenants = ctx.auth.tenants();
    let owner = ctx.verified_user("owner@example.com").await;
    let tenant = tenants.create(owner, "Acme", &client()).await.unwrap();
    let admin = ctx.verified_user("admin@example.com").await;
    ctx.join(owner, tenant.id, admin, "admin@example.com", "admin").await;
    let invitee = ctx.verified_user("invitee@example.com").await;
    let leaver = ctx.verified_user("leaver@example.com").await;
    tenants.invite(admin, tenant.id, "invitee@example.com", "admin", &client()).await.unwrap();
    tenants.invite(admin, tenant.id, "leaver@example.com", "member", &client()).await.unwrap();
    let by_admin = ctx.invitation_token("invitee@example.com", 1).await;
    let to_leaver = ctx.invitation_token("leaver@example.com", 1).await;

    tenants.set_member_role(owner, tenant.id, admin, "member", &client()).await.unwrap();
    let refused = tenants.accept_invitation(invitee, &by_admin, &client()).await;
    assert!(matches!(refused, Err(AuthError::InvalidOneTimeToken)), "a demoted inviter: {refused:?}");
    tenants.remove_member(owner, tenant.id, admin, &client()).await.unwrap();
    let refused = tenants.accept_invitation(leaver, &to_leaver, &client()).await;
    assert!(matches!(refused, Err(AuthError::InvalidOneTimeToken)), "a removed inviter: {refused:?}");
    assert_eq!(ctx.count("SELECT COUNT(*) FROM memberships").await, 1, "only the owner");

    // Refused, not used up: the owner revokes it, and the owner's own invitation admits.
    let open = tenants.invitations(owner, tenant.id).await.unwrap();
    assert_eq!(open.len(), 2, "{open:?}");
    tenants.invite(owner, tenant.id, "member2@example.com", "member", &client()).await.unwrap();
    let member = ctx.verified_user("member2@example.com").await;
    let by_owner = ctx.invitation_token("member2@example.com", 1).await;
    tenants.accept_invitation(member, &by_owner, &client()).await.expect("the owner's invitation admits");
}

/// Two owners demote each other at the same moment. Each change takes the
/// tenant's lock and reads the actor's role and the owner count under it, so
/// the second sees the first: never a tenant without an owner.
async fn two_owners_demoting_each_other_at_once_leave_one_owner(ctx: TestContext) {
    let tenants = ctx.auth.tenants();
    let ada = ctx.verified_user("ada@example.com").await;
    let bob = ctx.verified_user("bob@example.com").await;
    for round in 0..5 {
        let tenant = tenants.create(ada, &format!("Acme {round}"), &client()).await.unwrap();
        ctx.join(ada, tenant.id, bob, "bob@example.com", "owner").await;
        let client = client();
        let (ada_demotes, bob_demotes) = tokio::join!(
            tenants.set_member_role(ada, tenant.id, bob, "admin", &client),
            tenants.set_member_role(bob, tenant.id, ada, "admin", &client),
        );
        assert!(ada_demotes.is_ok() != bob_demotes.is_ok(), "exactly one wins: {ada_demotes:?} {bob_demotes:?}");
        let refused = ada_demotes.err().or(bob_demotes.err()).unwrap();
        assert!(matches!(refused, AuthError::InsufficientRole | AuthError::LastOwner), "{refused:?}");
        let owners = tenants.members(ada, tenant.id).await.unwrap().into_iter().filter(|m| m.role == "owner").count();
        assert_eq!(owners, 1, "round {round}");
    }
}

async fn concurrent_accepts_of_one_invitation_make_one_membership(ctx: TestContext) {
    let owner = ctx.verified_user("owner@example.com").await;
    let invitee = ctx.verified_user("race@example.com").await;
    let tenant = ctx.auth.tenants().create(owner, "Acme", &client()).await.unwrap();
    ctx.auth.tenants().invite(owner, tenant.id, "race@example.com", "member", &client()).await.unwrap();
    let token = ctx.invitation_token("race@example.com", 1).await;
    let accepts = (0..4).map(|_| {
        let auth = ctx.auth.clone();
        let token = token.clone();
        tokio::spawn(async move { auth.tenants().accept_invitation(invitee, &token, &client()).await })
    });
    let mut winners = 0;
    for accept in accepts.collect::<Vec<_>>() {
        match accept.await.unwrap() {
            Ok(_) => winners += 1,
            Err(AuthError::InvalidOneTimeToken | AuthError::AlreadyMember) => {}
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(winners, 1);
    assert_eq!(ctx.count("SELECT COUNT(*) FROM memberships").await, 2);
}

async fn an_expired_invitation_can_be_sent_again(ctx: TestContext) {
    let owner = ctx.verified_user("owner@example.com").await;
    let invitee = ctx.verified_user("late@example.com").await;
    let tenant = ctx.auth.tenants().create(owner, "Acme", &client()).await.unwrap();
    let tenants = ctx.auth.tenants();
    tenants.invite(owner, tenant.id, "late@example.com", "member", &client()).await.unwrap();
    let first = ctx.invitation_token("late@example.com", 1).await;
    ctx.clock.advance(Duration::from_secs(7 * 24 * 3600 + 1));
    let expired = tenants.accept_invitation(invitee, &first, &client()).await;
    assert!(matches!(expired, Err(AuthError::InvalidOneTimeToken)), "7 days: {expired:?}");
    assert!(tenants.invitations(owner, tenant.id).await.unwrap().is_empty());

    tenants.invite(owner, tenant.id, "late@example.com", "member", &client()).await.unwrap();
    let second = ctx.invitation_token("late@example.com", 2).await;
    assert_ne!(first, second);
    tenants.accept_invitation(invitee, &second, &client()).await.unwrap();
}

async fn email_change_is_confirmed_from_the_new_address(ctx: TestContext) {
    let user = ctx.verified_user("old@example.com").await;
    let asking = ctx.login("old@example.com").await;
    let other = ctx.login("old@example.com").await;
    let claims = ctx.auth.verify_access(asking.access.expose()).unwrap();
    let accounts = ctx.auth.accounts();

    let wrong = accounts.request_email_change(&claims, "new@example.com", "not-the-password", &client()).await;
    assert!(matches!(wrong, Err(AuthError::ReauthenticationFailed)), "{wrong:?}");
    let same = accounts.request_email_change(&claims, "OLD@example.com", PASSWORD, &client()).await;
    assert!(matches!(same, Err(AuthError::Validation(_))), "{same:?}");
    accounts.request_email_change(&claims, "New@Example.com", PASSWORD, &client()).await.unwrap();
    let link = ctx.nth_mail("new@example.com", "Confirm your new email", 1).await;
    assert!(link.text.contains("http://localhost:8000/confirm-email?token="), "{}", link.text);
    let notice = ctx.nth_mail("old@example.com", "Security notice", 1).await;
    assert!(notice.text.contains("n***@example.com") && !notice.text.contains("new@example.com"), "{}", notice.text);

    // Until the change is confirmed, the old address still resets the password.
    accounts.request_password_reset("old@example.com", &client()).await.unwrap();
    let reset = common::token_in(&ctx.nth_mail("old@example.com", "Reset", 1).await.text);

    let token = common::token_in(&link.text);
    let email = accounts.confirm_email_change(&token, &client()).await.unwrap();
    assert_eq!(email.as_str(), "new@example.com");
    let account = accounts.account(user).await.unwrap();
    assert_eq!(account.user.email.as_str(), "new@example.com");
    assert!(account.user.email_verified());
    let changed = ctx.nth_mail("old@example.com", "Security notice", 2).await;
    assert!(changed.text.contains("was changed"), "{}", changed.text);

    // Once confirmed: the reset link to the old address is dead, the old
    // address signs in nowhere, the other session is revoked, this one lives.
    let dead = accounts.confirm_password_reset(&reset, "Brand-New-Passphrase-9", &client()).await;
    assert!(matches!(dead, Err(AuthError::InvalidOneTimeToken)), "{dead:?}");
    let old = ctx.auth.sessions().login("old@example.com", PASSWORD, None, &client()).await;
    assert!(matches!(old, Err(AuthError::InvalidCredentials)));
    ctx.auth.sessions().login("new@example.com", PASSWORD, None, &client()).await.unwrap();
    assert!(ctx.auth.verify_access(other.access.expose()).is_err(), "the other session is revoked");
    ctx.auth.sessions().refresh(asking.refresh.expose(), &client()).await.expect("the asking session lives");
    let reused = accounts.confirm_email_change(&token, &client()).await;
    assert!(matches!(reused, Err(AuthError::InvalidOneTimeToken)), "single use: {reused:?}");

    let events = ctx.auth.operators().audit_trail(Some(user), 50).await.unwrap();
    for event in ["email_change_requested", "email_changed"] {
        let found = events.iter().find(|e| e.event == event).unwrap_or_else(|| panic!("no {event}"));
        assert!(!found.detail.to_string().contains("@"), "no address in the audit detail: {found:?}");
    }
}

async fn email_change_to_a_taken_address_tells_only_that_address(ctx: TestContext) {
    ctx.verified_user("mover@example.com").await;
    ctx.verified_user("taken@example.com").await;
    ctx.verified_user("later@example.com").await;
    let claims = ctx.auth.verify_access(ctx.login("mover@example.com").await.access.expose()).unwrap();
    let accounts = ctx.auth.accounts();
    accounts.request_email_change(&claims, "taken@example.com", PASSWORD, &client()).await.unwrap();
    let notice = ctx.nth_mail("taken@example.com", "Your email address was entered", 1).await;
    assert!(!notice.text.contains("token="), "no link to a taken address: {}", notice.text);
    ctx.nth_mail("mover@example.com", "Security notice", 1).await;

    // Taken between the request and the confirmation: 409, nothing changed.
    accounts.request_email_change(&claims, "free@example.com", PASSWORD, &client()).await.unwrap();
    let token = common::token_in(&ctx.nth_mail("free@example.com", "Confirm", 1).await.text);
    let later = ctx.auth.verify_access(ctx.login("later@example.com").await.access.expose()).unwrap();
    accounts.request_email_change(&later, "free@example.com", PASSWORD, &client()).await.unwrap();
    let first_token = common::token_in(&ctx.nth_mail("free@example.com", "Confirm", 2).await.text);
    accounts.confirm_email_change(&first_token, &client()).await.unwrap();
    let taken = accounts.confirm_email_change(&token, &client()).await;
    assert!(matches!(taken, Err(AuthError::EmailTaken)), "{taken:?}");
    assert_eq!(accounts.account(claims.sub).await.unwrap().user.email.as_str(), "mover@example.com");
}

async fn account_deletion_removes_everything_but_anonymous_audit(ctx: TestContext) {
    let user = ctx.verified_user("leaving@example.com").await;
    let owner = ctx.verified_user("owner@example.com").await;
    let pair = ctx.login("leaving@example.com").await;
    let claims = ctx.auth.verify_access(pair.access.expose()).unwrap();
    let own = ctx.auth.tenants().create(user, "Solo", &client()).await.unwrap();
    let shared = ctx.auth.tenants().create(owner, "Shared", &client()).await.unwrap();
    ctx.join(owner, shared.id, user, "leaving@example.com", "admin").await;
    ctx.auth.tenants().invite(user, shared.id, "friend@example.com", "member", &client()).await.unwrap();
    ctx.auth.sessions().login("leaving@example.com", "wrong-password", None, &client()).await.unwrap_err();

    let wrong = ctx.auth.accounts().delete_account(&claims, "not-the-password", None, &client()).await;
    assert!(matches!(wrong, Err(AuthError::ReauthenticationFailed)), "{wrong:?}");
    ctx.auth.accounts().delete_account(&claims, PASSWORD, None, &client()).await.unwrap();

    let id = user.simple().to_string();
    for table in ["users", "profiles", "memberships", "refresh_families", "one_time_tokens", "identity_links"] {
        let column = if table == "users" { "id" } else { "user_id" };
        let rows =
            ctx.count(&format!("SELECT COUNT(*) FROM {table} WHERE {column} = {}", uuid_literal(&ctx, &id))).await;
        assert_eq!(rows, 0, "{table} still holds the account");
    }
    assert_eq!(ctx.count("SELECT COUNT(*) FROM tenants").await, 1, "the tenant it was alone in is gone");
    let remaining = ctx.auth.tenants().list(owner).await.unwrap();
    assert_eq!(remaining[0].id, shared.id);
    assert_ne!(remaining[0].id, own.id);
    let open = ctx.auth.tenants().invitations(owner, shared.id).await.unwrap();
    assert_eq!(open[0].invited_by, None, "its invitations stay, without it");

    let events = ctx.auth.operators().audit_trail(Some(user), 100).await.unwrap();
    assert!(events.iter().any(|e| e.event == "account_deleted"));
    assert!(events.iter().any(|e| e.event == "login_failed"));
    for event in &events {
        assert_eq!((event.ip.as_deref(), event.user_agent.as_deref()), (None, None), "{event:?}");
        assert!(!event.detail.to_string().contains("leaving@example.com"), "{event:?}");
    }
    let everyone = ctx.auth.operators().audit_trail(None, 500).await.unwrap();
    assert!(everyone.iter().all(|e| !e.detail.to_string().contains("leaving@example.com")), "{everyone:?}");

    assert!(ctx.auth.verify_access(pair.access.expose()).is_err(), "its access token stops here at once");
    let login = ctx.auth.sessions().login("leaving@example.com", PASSWORD, None, &client()).await;
    assert!(matches!(login, Err(AuthError::InvalidCredentials)));
    ctx.register("leaving@example.com").await;
}

/// A UUID as the test database compares it in SQL.
fn uuid_literal(ctx: &TestContext, simple: &str) -> String {
    match ctx.backend {
        common::Backend::Sqlite(_) => format!("x'{simple}'"),
        common::Backend::Postgres(_) => format!("'{simple}'::uuid"),
    }
}

async fn account_deletion_refuses_the_only_owner_of_a_shared_tenant(ctx: TestContext) {
    let owner = ctx.verified_user("owner@example.com").await;
    let member = ctx.verified_user("member@example.com").await;
    let claims = ctx.auth.verify_access(ctx.login("owner@example.com").await.access.expose()).unwrap();
    let tenant = ctx.auth.tenants().create(owner, "Acme", &client()).await.unwrap();
    ctx.join(owner, tenant.id, member, "member@example.com", "member").await;

    let refused = ctx.auth.accounts().delete_account(&claims, PASSWORD, None, &client()).await;
    assert!(matches!(refused, Err(AuthError::SoleOwner)), "{refused:?}");
    assert!(ctx.auth.accounts().account(owner).await.is_ok(), "nothing was deleted");
    assert!(ctx.auth.verify_access(ctx.login("owner@example.com").await.access.expose()).is_ok());

    ctx.auth.tenants().set_member_role(owner, tenant.id, member, "owner", &client()).await.unwrap();
    ctx.auth.accounts().delete_account(&claims, PASSWORD, None, &client()).await.unwrap();
    let members = ctx.auth.tenants().members(member, tenant.id).await.unwrap();
    assert_eq!(members.len(), 1);
}

async fn a_deleted_accounts_tokens_stop_on_every_instance(ctx: TestContext) {
    let other = ctx.second_instance(|c| c.tokens.revocation_poll_secs = 1).await;
    ctx.verified_user("gone@example.com").await;
    let pair = ctx.login("gone@example.com").await;
    let claims = other.verify_access(pair.access.expose()).unwrap();
    ctx.auth.accounts().delete_account(&claims, PASSWORD, None, &client()).await.unwrap();
    let refused = common::refused_within_3s(&other, pair.access.expose()).await;
    assert!(refused, "the second instance still accepts a deleted account's token after 3 s");
}
