-- Groups that an upstream OpenID provider asserted at sign-in (its `groups_claim`) travel
-- with the OAuth grant: on the code, on each refresh token of the family, and on the access
-- tokens minted from them, so that those tokens speak for the same `group:<g>#member` as a
-- bearer token of the issuer would (SPEC §9). Comma-separated valid group names; empty for
-- local users and for every other token.
ALTER TABLE oauth_codes ADD COLUMN oauth_groups TEXT NOT NULL DEFAULT '';
ALTER TABLE oauth_refresh_tokens ADD COLUMN oauth_groups TEXT NOT NULL DEFAULT '';
ALTER TABLE api_tokens ADD COLUMN oauth_groups TEXT NOT NULL DEFAULT '';
