-- A login session (refresh family) holds one refresh-token chain per scope: its
-- own, and one for each tenant the caller asked tokens for (POST /token/tenant).
-- The scope lives on the chain's tokens, so the login's logout, reuse
-- detection, revocation or expiry ends every scope of it at once.
ALTER TABLE refresh_tokens ADD COLUMN tenant_id BLOB REFERENCES tenants (id) ON DELETE CASCADE;
UPDATE refresh_tokens
   SET tenant_id = (SELECT f.tenant_id FROM refresh_families f WHERE f.id = refresh_tokens.family_id);
-- refresh_families.tenant_id is no longer read or written; SQLite cannot drop
-- a column that has a foreign key (PostgreSQL's migration drops it).
