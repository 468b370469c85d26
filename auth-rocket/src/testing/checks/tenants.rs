//! Tenants, their members, and tenant-scoped tokens.

use rocket::http::Method;
use serde_json::json;
use uuid::Uuid;

use crate::testing::{
    Answer, Conformance, FULL_NAME, PASSWORD, TestUser, Tokens,
    tokens::{assert_same_sign_in, jwt_part},
};

impl Conformance {
    /// `POST /tenants` (201, the caller its highest role), `GET /tenants`
    /// (only the caller's), 422 on a bad name, 401 without a token.
    pub async fn tenants(&self) {
        let [owner_role, _, _] = &self.roles;
        let user = self.verified_user("tenants").await;
        let tokens = self.sign_in(&user).await;
        let name = format!("Acme {}", Uuid::new_v4().simple());
        let answer = self.post("/tenants", Some(&tokens.access), &json!({ "name": name })).await;
        answer.expect(201);
        let id = answer.str("/id").to_owned();
        assert!(id.parse::<Uuid>().is_ok(), "{answer}");
        assert_eq!(answer.str("/name"), name, "{answer}");
        assert_eq!(answer.str("/role"), owner_role, "the creator is the owner: {answer}");

        let list = self.get("/tenants", Some(&tokens.access)).await;
        list.expect(200);
        assert_eq!(list.json, json!([{ "id": id, "name": name, "role": owner_role }]), "{list}");
        let me = self.get("/me", Some(&tokens.access)).await;
        assert_eq!(me.str("/memberships/0/tenant_id"), id, "{me}");
        assert_eq!(me.str("/memberships/0/role"), owner_role, "{me}");

        let stranger = self.verified_user("tenants-stranger").await;
        let theirs = self.sign_in(&stranger).await;
        let their_list = self.get("/tenants", Some(&theirs.access)).await;
        assert_eq!(their_list.json, json!([]), "tenants are private to their members: {their_list}");

        self.post("/tenants", Some(&tokens.access), &json!({ "name": "   " })).await.expect_invalid("name");
        self.post("/tenants", Some(&tokens.access), &json!({})).await.expect_invalid("name");
        self.post("/tenants", None, &json!({ "name": "Anonymous" })).await.expect(401);
        self.get("/tenants", None).await.expect(401);
    }

    /// `PATCH /tenants/<id>/members/<user_id>` and leaving: a manager changes
    /// a role (200 with the member; their next refresh carries it), never above
    /// their own, never demoting the last owner (403 `last_owner`); 404 for a
    /// non-member, 422 for an unknown role, 403 for a member without the right
    /// (before the body is read). Any member may leave (`DELETE` of their own
    /// id, 204); the last owner may not.
    pub async fn member_roles_and_leaving(&self) {
        let [owner_role, admin_role, member_role] = &self.roles;
        let owner = self.verified_user("role-owner").await;
        let owner_tokens = self.sign_in(&owner).await;
        let tenant = self.create_tenant(&owner_tokens.access).await;
        let owner_scoped = self.scoped(&owner_tokens.access, &tenant).await;
        let members = format!("/tenants/{tenant}/members");
        let (admin, member) = (self.verified_user("role-admin").await, self.verified_user("role-member").await);
        for (user, role) in [(&admin, admin_role), (&member, member_role)] {
            self.join(&owner_scoped.access, &tenant, user, role).await;
        }
        let role = |role: &str| json!({ "role": role });
        let of = |user: &TestUser| format!("{members}/{}", user.id);

        let member_scoped = self.scoped(&self.sign_in(&member).await.access, &tenant).await;
        assert_eq!(member_scoped.claims()["role"], json!(member_role));
        let promoted = self.patch(&of(&member), Some(&owner_scoped.access), &role(admin_role)).await;
        promoted.expect(200);
        assert_eq!(promoted.json, json!({ "user_id": member.id, "email": member.email, "role": admin_role }));
        let refreshed = self.refreshed(&member_scoped.refresh).await;
        assert_eq!(refreshed.claims()["role"], json!(admin_role), "the next refresh carries the new role");

        let admin_scoped = self.scoped(&self.sign_in(&admin).await.access, &tenant).await;
        self.patch(&of(&member), Some(&admin_scoped.access), &role(owner_role)).await.expect(403);
        self.patch(&of(&owner), Some(&admin_scoped.access), &role(member_role)).await.expect(403);
        self.patch(&of(&member), Some(&owner_scoped.access), &role("emperor")).await.expect_invalid("role");
        let stranger = self.verified_user("role-stranger").await;
        self.patch(&of(&stranger), Some(&owner_scoped.access), &role(member_role)).await.expect(404);
        let last = self.patch(&of(&owner), Some(&owner_scoped.access), &role(admin_role)).await;
        last.expect_error(403, "last_owner");
        self.patch(&of(&member), Some(&owner_scoped.access), &role(member_role)).await.expect(200);
        let demoted = self.refreshed(&refreshed.refresh).await;
        let refused = self.post_raw(&of(&admin), Some(&demoted.access), r#"{"role": 7}"#).await;
        assert_eq!(refused.status, 405, "POST is not a method of a member: {refused}");
        let admin_uri = self.at(&of(&admin));
        let malformed = Some("{ not json".to_owned());
        let unread = self.send(Method::Patch, &admin_uri, Some(&demoted.access), malformed, &[]).await;
        unread.expect_error(403, "insufficient_role");

        // Leaving: any member, but not the last owner.
        self.delete(&of(&member), Some(&demoted.access)).await.expect(204);
        let list = self.get(&members, Some(&owner_scoped.access)).await;
        assert!(!list.text.contains(&member.id), "the member left: {list}");
        assert!(!self.refresh_works(&demoted.refresh).await, "the left member's tenant session ended");
        self.delete(&of(&owner), Some(&owner_scoped.access)).await.expect_error(403, "last_owner");
    }

    /// Tenant members: listing needs a token scoped to that tenant; inviting
    /// needs the right to manage members (403 before the body is read
    /// otherwise) and grants nothing above the actor's role; `POST
    /// …/members` is no way in (405); removing is 204, and the last owner
    /// cannot be removed (403).
    pub async fn tenant_members(&self) {
        let [owner_role, admin_role, member_role] = &self.roles;
        let owner = self.verified_user("owner").await;
        let owner_tokens = self.sign_in(&owner).await;
        let tenant = self.create_tenant(&owner_tokens.access).await;
        let members = format!("/tenants/{tenant}/members");
        let invitations = format!("/tenants/{tenant}/invitations");

        self.get(&members, Some(&owner_tokens.access)).await.expect(403);
        let owner_scoped = self.scoped(&owner_tokens.access, &tenant).await;
        let list = self.get(&members, Some(&owner_scoped.access)).await;
        list.expect(200);
        assert_eq!(list.json, json!([{ "user_id": owner.id, "email": owner.email, "role": owner_role }]), "{list}");

        let member = self.verified_user("member").await;
        let admin = self.verified_user("admin").await;
        let newcomer = self.verified_user("newcomer").await;
        let invite = |email: &str, role: &str| json!({ "email": email, "role": role });
        // Nobody is added without accepting: the old way in is gone.
        let silent = self.post(&members, Some(&owner_scoped.access), &invite(&member.email, member_role)).await;
        assert_eq!(silent.status, 405, "members join by invitation only: {silent}");
        self.join(&owner_scoped.access, &tenant, &member, member_role).await;
        self.join(&owner_scoped.access, &tenant, &admin, admin_role).await;
        self.post(&invitations, Some(&owner_tokens.access), &invite(&newcomer.email, member_role)).await.expect(403);
        self.post(&invitations, None, &invite(&newcomer.email, member_role)).await.expect(401);
        // Who is asking is checked before the body is read: a token of no tenant is refused, not parsed.
        let unread = self.post_raw(&invitations, Some(&owner_tokens.access), "{ not json").await;
        unread.expect_error(403, "not_a_member");
        self.post_raw(&invitations, None, "{ not json").await.expect_error(401, "missing_token");

        // A member may look but not manage.
        let member_scoped = self.scoped(&self.sign_in(&member).await.access, &tenant).await;
        let list = self.get(&members, Some(&member_scoped.access)).await;
        list.expect(200);
        assert_eq!(list.json.as_array().map(Vec::len), Some(3), "{list}");
        let body = invite(&newcomer.email, member_role);
        self.post(&invitations, Some(&member_scoped.access), &body).await.expect(403);
        let refused = self.post_raw(&invitations, Some(&member_scoped.access), r#"{"email": 7}"#).await;
        refused.expect_error(403, "insufficient_role");
        self.get(&invitations, Some(&member_scoped.access)).await.expect_error(403, "insufficient_role");
        let remove_admin = format!("{members}/{}", admin.id);
        self.delete(&remove_admin, Some(&member_scoped.access)).await.expect(403);

        // An admin manages, but grants nothing above their own role.
        let admin_scoped = self.scoped(&self.sign_in(&admin).await.access, &tenant).await;
        let above = self.post(&invitations, Some(&admin_scoped.access), &invite(&newcomer.email, owner_role)).await;
        above.expect_error(403, "insufficient_role");
        self.join(&admin_scoped.access, &tenant, &newcomer, member_role).await;
        self.delete(&format!("{members}/{}", newcomer.id), Some(&admin_scoped.access)).await.expect(204);
        let list = self.get(&members, Some(&owner_scoped.access)).await;
        let ids: Vec<&str> = list.json.as_array().into_iter().flatten().filter_map(|m| m["user_id"].as_str()).collect();
        assert!(!ids.contains(&newcomer.id.as_str()) && ids.len() == 3, "the removed member is gone: {list}");

        // Another tenant is out of reach of this tenant's tokens.
        let other_tenant = self.create_tenant(&owner_tokens.access).await;
        let other_members = format!("/tenants/{other_tenant}/members");
        let other_invitations = format!("/tenants/{other_tenant}/invitations");
        self.get(&other_members, Some(&owner_scoped.access)).await.expect(403);
        self.post(&other_invitations, Some(&owner_scoped.access), &body).await.expect(403);
        let intruder = self.verified_user("intruder").await;
        let intruder_tokens = self.sign_in(&intruder).await;
        let intruder_tenant = self.create_tenant(&intruder_tokens.access).await;
        let intruder_scoped = self.scoped(&intruder_tokens.access, &intruder_tenant).await;
        self.get(&members, Some(&intruder_scoped.access)).await.expect(403);
        self.get(&invitations, Some(&intruder_scoped.access)).await.expect(403);
        self.post_raw(&invitations, Some(&intruder_scoped.access), "[1, 2]").await.expect_error(403, "not_a_member");
        self.delete(&format!("{members}/{}", member.id), Some(&intruder_scoped.access)).await.expect(403);

        // The last owner stays.
        let last = self.delete(&format!("{members}/{}", owner.id), Some(&owner_scoped.access)).await;
        last.expect(403);
        let list = self.get(&members, Some(&owner_scoped.access)).await;
        assert!(list.text.contains(&owner.id), "the last owner is still a member: {list}");
        self.delete(&format!("{members}/{}", member.id), Some(&owner_scoped.access)).await.expect(204);
        self.delete(&format!("{members}/not-a-user-id"), Some(&owner_scoped.access)).await.expect(404);
    }

    /// Invitations: `POST …/invitations` answers 202 with the same shape
    /// whether or not the address has an account, and mails a one-time link;
    /// 409 for an address already invited or already a member, 422 for an
    /// unknown role or a bad address. `GET …/invitations` lists the open ones.
    /// `POST /invitations/accept` needs a session whose verified email is the
    /// invited one (403 `email_not_verified`, 403 `email_mismatch`), answers
    /// 201 with the membership, and consumes the invitation (400
    /// `invalid_token` after); an invitee without an account registers first.
    /// `DELETE …/invitations/<id>` (204) kills the link; 404 after.
    pub async fn invitations(&self) {
        let [_, admin_role, member_role] = &self.roles;
        let owner = self.verified_user("inv-owner").await;
        let owner_tokens = self.sign_in(&owner).await;
        let tenant = self.create_tenant(&owner_tokens.access).await;
        let owner_scoped = self.scoped(&owner_tokens.access, &tenant).await;
        let invitations = format!("/tenants/{tenant}/invitations");
        let invite = |email: &str, role: &str| json!({ "email": email, "role": role });

        // The same answer for an address with and without an account.
        let known = self.verified_user("inv-known").await;
        let unknown = self.unique_email("inv-unknown");
        let to_known = self.post(&invitations, Some(&owner_scoped.access), &invite(&known.email, member_role)).await;
        let to_unknown = self.post(&invitations, Some(&owner_scoped.access), &invite(&unknown, member_role)).await;
        to_known.expect(202);
        to_unknown.expect(202);
        let shape = |answer: &Answer| {
            let mut keys: Vec<String> = answer.json.as_object().into_iter().flatten().map(|(k, _)| k.clone()).collect();
            keys.sort();
            keys
        };
        assert_eq!(shape(&to_known), ["email", "expires_at", "id", "role"], "{to_known}");
        assert_eq!(shape(&to_known), shape(&to_unknown), "{to_known} vs {to_unknown}");
        assert_eq!(to_unknown.str("/email"), unknown, "{to_unknown}");
        assert_eq!(to_known.str("/role"), member_role, "{to_known}");
        assert_eq!(to_known.cache_control, to_unknown.cache_control);

        self.post(&invitations, Some(&owner_scoped.access), &invite(&known.email, admin_role))
            .await
            .expect_error(409, "already_invited");
        self.post(&invitations, Some(&owner_scoped.access), &invite(&owner.email, member_role))
            .await
            .expect_error(409, "already_member");
        self.post(&invitations, Some(&owner_scoped.access), &invite(&unknown, "emperor")).await.expect_invalid("role");
        self.post(&invitations, Some(&owner_scoped.access), &invite("not-an-email", member_role))
            .await
            .expect_invalid("email");

        let open = self.get(&invitations, Some(&owner_scoped.access)).await;
        open.expect(200);
        let listed: Vec<&str> =
            open.json.as_array().into_iter().flatten().filter_map(|i| i["email"].as_str()).collect();
        assert_eq!(listed.len(), 2, "{open}");
        assert!(listed.contains(&known.email.as_str()) && listed.contains(&unknown.as_str()), "{open}");
        assert_eq!(open.get("/0/invited_by"), &json!(owner.id), "{open}");

        // Accepting needs a session, the invited address, verified.
        let token = self.wait_for_mail(&known.email, 1).await.token();
        let accept = |token: &str| json!({ "token": token });
        self.post("/invitations/accept", None, &accept(&token)).await.expect(401);
        let stranger = self.verified_user("inv-stranger").await;
        let stranger_access = self.sign_in(&stranger).await.access;
        let stolen = self.post("/invitations/accept", Some(&stranger_access), &accept(&token)).await;
        stolen.expect_error(403, "email_mismatch");
        let known_access = self.sign_in(&known).await.access;
        let joined = self.post("/invitations/accept", Some(&known_access), &accept(&token)).await;
        joined.expect(201);
        assert_eq!(joined.str("/tenant_id"), tenant, "{joined}");
        assert_eq!(joined.str("/role"), member_role, "{joined}");
        assert!(joined.get("/tenant_name").is_string(), "{joined}");
        let again = self.post("/invitations/accept", Some(&known_access), &accept(&token)).await;
        again.expect_error(400, "invalid_token");
        let scoped = self.scoped(&known_access, &tenant).await;
        assert_eq!(scoped.claims()["role"], json!(member_role), "the membership is real");
        self.post("/invitations/accept", Some(&known_access), &accept("bogus"))
            .await
            .expect_error(400, "invalid_token");

        // No account yet: sign up with the invited address, verify it, accept.
        let link = self.wait_for_mail(&unknown, 0).await.token();
        let sign_up = json!({ "email": unknown, "password": PASSWORD, "full_name": FULL_NAME });
        self.post("/register", None, &sign_up).await.expect(201);
        let verification = self.wait_for_mail(&unknown, 1).await.token();
        self.post("/verify-email", None, &json!({ "token": verification })).await.expect(200);
        let newcomer = TestUser { id: String::new(), email: unknown.clone(), password: PASSWORD.to_owned() };
        let access = self.sign_in(&newcomer).await.access;
        self.post("/invitations/accept", Some(&access), &accept(&link)).await.expect(201);

        // Revoking kills the link.
        let late = self.verified_user("inv-late").await;
        let sent = self.post(&invitations, Some(&owner_scoped.access), &invite(&late.email, member_role)).await;
        sent.expect(202);
        let late_token = self.wait_for_mail(&late.email, 1).await.token();
        let one = format!("{invitations}/{}", sent.str("/id"));
        self.delete(&one, Some(&owner_scoped.access)).await.expect(204);
        let late_access = self.sign_in(&late).await.access;
        self.post("/invitations/accept", Some(&late_access), &accept(&late_token))
            .await
            .expect_error(400, "invalid_token");
        self.delete(&one, Some(&owner_scoped.access)).await.expect(404);
        self.delete(&format!("{invitations}/not-an-id"), Some(&owner_scoped.access)).await.expect(404);
        let open = self.get(&invitations, Some(&owner_scoped.access)).await;
        assert_eq!(open.json, json!([]), "nothing is open any more: {open}");
    }

    /// `POST /token/tenant` and `login` with `tenant_id`: scoped tokens whose
    /// role comes from the membership, never from the request; 403 for a
    /// non-member; scoped sessions stay scoped across refresh; the scoped
    /// tokens belong to the caller's login (one session, ended by its logout)
    /// and say its sign-in (`amr`, `auth_time`) unchanged.
    pub async fn tenant_token(&self) {
        let [owner_role, _, member_role] = &self.roles;
        let owner = self.verified_user("scope-owner").await;
        let owner_tokens = self.sign_in(&owner).await;
        let tenant = self.create_tenant(&owner_tokens.access).await;

        let answer = self.post("/token/tenant", Some(&owner_tokens.access), &json!({ "tenant_id": tenant })).await;
        answer.expect(200);
        assert_eq!(answer.str("/token_type"), "Bearer", "{answer}");
        let scoped = Tokens { access: answer.str("/access").to_owned(), refresh: answer.str("/refresh").to_owned() };
        let claims = scoped.claims();
        assert_eq!(claims["tenant_id"], json!(tenant), "{claims}");
        assert_eq!(claims["role"], json!(owner_role), "{claims}");
        assert_eq!(claims["sub"], json!(owner.id), "{claims}");
        let rotated = self.refreshed(&scoped.refresh).await;
        let rotated_claims = rotated.claims();
        assert_eq!(
            (&rotated_claims["tenant_id"], &rotated_claims["role"]),
            (&json!(tenant), &json!(owner_role)),
            "{rotated_claims}"
        );
        // The scoped tokens belong to the caller's login: listed once, ended with it.
        assert_eq!(claims["sid"], owner_tokens.claims()["sid"], "scoped tokens carry the login's sid: {claims}");
        assert_same_sign_in(&owner_tokens, &scoped, "a tenant token");
        assert_same_sign_in(&owner_tokens, &rotated, "a tenant token's refresh");
        let sessions = self.get("/sessions", Some(&owner_tokens.access)).await;
        assert_eq!(sessions.get("").as_array().map(Vec::len), Some(1), "the login is listed once: {sessions}");
        let logout = json!({ "refresh": owner_tokens.refresh });
        self.post("/logout", Some(&owner_tokens.access), &logout).await.expect(204);
        assert!(!self.access_works(&rotated.access).await, "the login's logout ends its tenant-scoped access token");
        assert!(!self.refresh_works(&rotated.refresh).await, "the login's logout ends its tenant-scoped refresh token");
        let owner_tokens = self.sign_in(&owner).await;

        let member = self.verified_user("scope-member").await;
        let owner_scoped = self.scoped(&owner_tokens.access, &tenant).await;
        self.join(&owner_scoped.access, &tenant, &member, member_role).await;
        let member_tokens = self.sign_in(&member).await;
        let greedy = json!({ "tenant_id": tenant, "role": owner_role });
        let answer = self.post("/token/tenant", Some(&member_tokens.access), &greedy).await;
        answer.expect(200);
        let claims = jwt_part(answer.str("/access"), 1);
        assert_eq!(claims["role"], json!(member_role), "the role comes from the membership: {claims}");

        let login = json!({ "email": member.email, "password": member.password, "tenant_id": tenant });
        let answer = self.post("/login", None, &login).await;
        answer.expect(200);
        let claims = jwt_part(answer.str("/access"), 1);
        assert_eq!((&claims["tenant_id"], &claims["role"]), (&json!(tenant), &json!(member_role)), "{claims}");

        let outsider = self.verified_user("scope-outsider").await;
        let outsider_tokens = self.sign_in(&outsider).await;
        self.post("/token/tenant", Some(&outsider_tokens.access), &json!({ "tenant_id": tenant })).await.expect(403);
        let unknown = json!({ "tenant_id": Uuid::new_v4().to_string() });
        self.post("/token/tenant", Some(&outsider_tokens.access), &unknown).await.expect(403);
        let login = json!({ "email": outsider.email, "password": outsider.password, "tenant_id": tenant });
        self.post("/login", None, &login).await.expect(403);
        let malformed = json!({ "tenant_id": "not-a-tenant" });
        self.post("/token/tenant", Some(&outsider_tokens.access), &malformed).await.expect_invalid("tenant_id");
        self.post("/token/tenant", None, &json!({ "tenant_id": tenant })).await.expect(401);
    }
}
