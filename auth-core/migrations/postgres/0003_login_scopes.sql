-- A login session (refresh family) holds one refresh-token chain per scope: its
-- own, and one for each tenant the caller asked tokens for (POST /token/tenant).
-- The scope lives on the chain's tokens, so the login's logout, reuse
-- detection, revocation or expiry ends every scope of it at once.
ALTER TABLE refresh_tokens ADD COLUMN tenant_id UUID REFERENCES tenants (id) ON DELETE CASCADE;
UPDATE refresh_tokens t
   SET tenant_id = f.tenant_id FROM refresh_families f WHERE f.id = t.family_id;
ALTER TABLE refresh_families DROP COLUMN tenant_id;
