-- Refresh-token families get an absolute lifetime (family_created_at: when the login that
-- started the family happened) and carry the user's token version they were issued under:
-- a token issued by a refresh that raced a password change is dead on arrival (its version
-- is behind the user's), whatever the interleaving of the two transactions.
ALTER TABLE refresh_tokens ADD COLUMN family_created_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE refresh_tokens ADD COLUMN token_version INTEGER NOT NULL DEFAULT 0;
UPDATE refresh_tokens SET
    family_created_at = (SELECT min(f.created_at) FROM refresh_tokens f
                         WHERE f.family_id = refresh_tokens.family_id),
    token_version = (SELECT u.token_version FROM users u WHERE u.id = refresh_tokens.user_id);
