// A real OpenID Provider for the OIDC end-to-end suite (tests/oauth.rs):
// `oidc-provider` (OpenID Certified) on 127.0.0.1, with one confidential test
// client, PKCE required, and the interactive login and consent pages replaced
// by an automatic login of the account the test names in `login_hint`.
//
// Environment:
//   OIDC_PORT            port to listen on; 0 (default) picks a free one
//   OIDC_CLIENT_ID       the platform's client (default "platform-client")
//   OIDC_CLIENT_SECRET   its secret (default "platform-client-secret-0123456789")
//   OIDC_REDIRECT_URI    its redirect URI (required)
//   OIDC_CLAIMS_IN_ID_TOKEN  "false": email claims only at the userinfo endpoint
//                        (oidc-provider's strict default); otherwise in the id_token too
//   OIDC_TAMPER          make the token endpoint misbehave (negative tests only):
//                        "audience", "azp", "issuer", "expired", "issued_in_future",
//                        "signature" (signed by a key that is not the published one,
//                        same kid), "unknown_kid", "alg_none", "hs256" (signed with
//                        the client secret as an HMAC key)
//
// The first line on stdout is JSON: {"issuer": "http://127.0.0.1:<port>"}.
//
// `login_hint` is JSON naming the account to sign in:
//   {"sub": "alice", "email": "alice@example.com", "email_verified": true, "name": "Alice"}
// A second client, "other-client" (same redirect URI), lets a test obtain a
// code issued to someone else.

import http from 'node:http';
import { randomUUID } from 'node:crypto';
import Provider from 'oidc-provider';
import { SignJWT, UnsecuredJWT, decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair } from 'jose';

const port = Number(process.env.OIDC_PORT ?? 0);
const clientId = process.env.OIDC_CLIENT_ID ?? 'platform-client';
const clientSecret = process.env.OIDC_CLIENT_SECRET ?? 'platform-client-secret-0123456789';
const redirectUri = process.env.OIDC_REDIRECT_URI;
const claimsInIdToken = process.env.OIDC_CLAIMS_IN_ID_TOKEN !== 'false';
const tamper = process.env.OIDC_TAMPER ?? '';
if (!redirectUri) {
  console.error('OIDC_REDIRECT_URI is required');
  process.exit(2);
}

// A fresh signing key at every start: restarting the provider rotates its key.
const kid = `key-${randomUUID()}`;
const signing = await generateKeyPair('RS256', { extractable: true });
const signingJwk = { ...(await exportJWK(signing.privateKey)), kid, alg: 'RS256', use: 'sig' };
// A key the provider never publishes, for the forged-signature modes.
const foreign = await generateKeyPair('RS256', { extractable: true });

// Accounts signed in so far, by subject, so findAccount can answer later.
const accounts = new Map();

function accountFromHint(hint) {
  let wanted = {};
  if (hint) {
    try {
      wanted = JSON.parse(hint);
    } catch {
      wanted = {};
    }
  }
  const sub = String(wanted.sub ?? 'default-user');
  const account = {
    sub,
    email: wanted.email ?? `${sub}@example.com`,
    email_verified: wanted.email_verified ?? true,
    name: wanted.name ?? 'Test User',
  };
  accounts.set(sub, account);
  return account;
}

const server = http.createServer();
await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
    {
      client_id: 'other-client',
      client_secret: 'other-client-secret-0123456789',
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  jwks: { keys: [signingJwk] },
  cookies: { keys: [randomUUID()] },
  pkce: { required: () => true },
  responseTypes: ['code'],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  conformIdTokenClaims: !claimsInIdToken,
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, sub) {
    const account = accounts.get(sub);
    if (!account) return undefined;
    return { accountId: sub, claims: async () => ({ ...account }) };
  },
});

// Negative tests: rewrite the id_token the token endpoint returns.
async function tampered(idToken) {
  const claims = decodeJwt(idToken);
  const header = decodeProtectedHeader(idToken);
  const now = Math.floor(Date.now() / 1000);
  const resign = (payload, key = signing.privateKey, protectedHeader = header) =>
    new SignJWT(payload).setProtectedHeader(protectedHeader).sign(key);
  switch (tamper) {
    case 'audience':
      return resign({ ...claims, aud: 'someone-else', azp: undefined });
    case 'azp':
      return resign({ ...claims, azp: 'someone-else' });
    case 'issuer':
      return resign({ ...claims, iss: 'http://127.0.0.1:1' });
    case 'expired':
      return resign({ ...claims, iat: now - 1200, exp: now - 600 });
    case 'issued_in_future':
      return resign({ ...claims, iat: now + 3600, exp: now + 7200 });
    case 'signature':
      return resign(claims, foreign.privateKey);
    case 'unknown_kid':
      return resign(claims, foreign.privateKey, { ...header, kid: 'never-published' });
    case 'alg_none':
      return new UnsecuredJWT(claims).encode();
    case 'hs256':
      return resign(claims, new TextEncoder().encode(clientSecret), { alg: 'HS256' });
    default:
      throw new Error(`unknown OIDC_TAMPER mode ${tamper}`);
  }
}

if (tamper) {
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.method === 'POST' && ctx.path === '/token' && ctx.status === 200 && ctx.body?.id_token) {
      ctx.body = { ...ctx.body, id_token: await tampered(ctx.body.id_token) };
    }
  });
}

// The login and consent "pages": each interaction completes at once.
async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const { prompt, params, session } = details;
  if (prompt.name === 'login') {
    const account = accountFromHint(params.login_hint);
    await provider.interactionFinished(req, res, { login: { accountId: account.sub } }, { mergeWithLastSubmission: false });
    return;
  }
  if (prompt.name === 'consent') {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
    if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(prompt.details.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    return;
  }
  res.statusCode = 400;
  res.end(`unexpected prompt ${prompt.name}`);
}

const handler = provider.callback();
server.on('request', (req, res) => {
  if (req.method === 'GET' && req.url.startsWith('/interaction/')) {
    interaction(req, res).catch((error) => {
      console.error(error);
      res.statusCode = 500;
      res.end(String(error.message));
    });
  } else {
    handler(req, res);
  }
});

provider.on('server_error', (ctx, error) => console.error('server_error', error));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
console.log(JSON.stringify({ issuer }));
