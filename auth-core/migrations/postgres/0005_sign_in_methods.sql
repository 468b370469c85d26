-- How the user signed in to a login session, for the `amr` and `auth_time`
-- claims of its access tokens: RFC 8176 values separated by spaces ('pwd',
-- 'fed', and after a second factor 'pwd otp mfa'), and the Unix milliseconds
-- of that sign-in (or of its latest second factor). Every refresh and tenant
-- token of the session copies them; only a second factor changes them.
-- Sessions from before this migration name no method (their tokens prove no
-- factor) and were signed in when they were created.
ALTER TABLE refresh_families ADD COLUMN amr TEXT NOT NULL DEFAULT '';
ALTER TABLE refresh_families ADD COLUMN auth_time BIGINT NOT NULL DEFAULT 0;
UPDATE refresh_families SET auth_time = created_at;
