// A real OpenID provider (npm `oidc-provider`, OpenID-certified) for the hub's OIDC tests.
// Test-only: it listens on 127.0.0.1 and its clients' secrets are in this file.
//
//   node idp.mjs --keys FILE [--port 0] [--audience URL] [--key-type ec|rsa|ed25519]
//                [--rotate] [--drop-old] [--pad-jwks N] [--ttl SECS] [--login-redirect URI]
//
// Prints `IDP_URL=<issuer>` once listening. The issuer is http://127.0.0.1:<port>.
// --keys FILE   private JWKs (a JSON list), created with one key of --key-type if missing;
//               so a restart on the same port serves the same keys.
// --rotate      adds a new key in front ([k2, k1]); --drop-old keeps only the first ([k2]).
// --pad-jwks N  serves N extra (well-formed, useless) keys after the real ones.
// --login-redirect URI
//               people sign in too (authorization code + PKCE, for the hub's "Continue with"):
//               clients hub-login / hub-login-secret (client_secret_basic) and
//               hub-login-public (no secret), both redirecting to URI only. The sign-in
//               pages are oidc-provider's development interactions: any login with any
//               password, then a consent page. The account's ID token carries `groups` and
//               `nexus_zones`: alice [eng] "eng:rw"; boss [hub-admins]; anyone else none.
//
// Clients (client_credentials; `curl -u id:secret`), each token an RFC 9068 `at+jwt` for
// --audience (resource indicator), carrying the client's `groups` and `nexus_zones` metadata
// as claims:
//   hub-test / hub-test-secret    no groups
//   eng-bot  / eng-bot-secret     groups [eng]
//   ops-bot  / ops-bot-secret     groups [ops], nexus_zones "eng:r"
//
// Test hooks (never part of a real IdP):
//   GET  /test/stats  -> {"jwks": n, "discovery": n}  requests served since start
//   POST /test/sign   {claims, header?}  -> {"token"}  signed with the current key (the
//                     header's kid/typ/alg may be overridden to build hostile tokens)
//   POST /test/tamper {claims} -> {}  the next ID tokens the token endpoint hands out get
//                     these claims (a null removes one), re-signed with the current key:
//                     a wrong aud, nonce or iss from a "real" IdP. {} stops it.
import Provider from 'oidc-provider';
import { createServer } from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const flag = (name) => args.includes(name);

const keysFile = opt('--keys');
if (!keysFile) {
  console.error('--keys FILE is required');
  process.exit(2);
}
const keyType = opt('--key-type', 'ec');
const port = Number(opt('--port', '0'));
const ttl = Number(opt('--ttl', '300'));
const pad = Number(opt('--pad-jwks', '0'));
const loginRedirect = opt('--login-redirect');
let tamper = {};
const accounts = {
  alice: { groups: ['eng'], nexus_zones: 'eng:rw' },
  boss: { groups: ['hub-admins'] },
  // Groups and no zones: what her groups' roles allow on the hub is all she holds.
  carol: { groups: ['eng-team', 'readers'] },
};

function newKey() {
  const kid = crypto.randomBytes(8).toString('hex');
  let pair;
  let alg;
  if (keyType === 'rsa') {
    pair = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    alg = 'RS256';
  } else if (keyType === 'ed25519') {
    pair = crypto.generateKeyPairSync('ed25519');
    alg = 'EdDSA';
  } else {
    pair = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    alg = 'ES256';
  }
  return { ...pair.privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
}

let keys = fs.existsSync(keysFile) ? JSON.parse(fs.readFileSync(keysFile, 'utf8')) : [newKey()];
if (flag('--rotate')) keys = [newKey(), ...keys];
if (flag('--drop-old')) keys = keys.slice(0, 1);
fs.writeFileSync(keysFile, JSON.stringify(keys), { mode: 0o600 });
const current = keys[0];

const stats = { jwks: 0, discovery: 0 };

const server = createServer();
await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;
const audience = opt('--audience', 'http://127.0.0.1:8081/mcp');

const client = (id, extra = {}) => ({
  client_id: id,
  client_secret: `${id}-secret`,
  grant_types: ['client_credentials'],
  redirect_uris: [],
  response_types: [],
  id_token_signed_response_alg: current.alg,
  ...extra,
});

const loginClient = (id, extra) => ({
  client_id: id,
  grant_types: ['authorization_code'],
  response_types: ['code'],
  redirect_uris: [loginRedirect],
  id_token_signed_response_alg: current.alg,
  ...extra,
});
const loginClients = loginRedirect
  ? [
    loginClient('hub-login', { client_secret: 'hub-login-secret' }),
    loginClient('hub-login-public', { token_endpoint_auth_method: 'none' }),
  ]
  : [];

const oidc = new Provider(issuer, {
  clients: [
    client('hub-test'),
    client('eng-bot', { groups: ['eng'] }),
    client('ops-bot', { groups: ['ops'], nexus_zones: 'eng:r' }),
    ...loginClients,
  ],
  extraClientMetadata: { properties: ['groups', 'nexus_zones'] },
  // The account's groups and zones go into the ID token itself, as the hub reads them.
  conformIdTokenClaims: false,
  claims: { openid: ['sub', 'groups', 'nexus_zones'], email: ['email'], profile: ['name'] },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: `${id}@example.test`, name: id, ...(accounts[id] ?? {}) };
      },
    };
  },
  features: {
    clientCredentials: { enabled: true },
    devInteractions: { enabled: Boolean(loginRedirect) },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => audience,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'files:read files:write',
        audience,
        accessTokenFormat: 'jwt',
        accessTokenTTL: ttl,
        jwt: { sign: { alg: current.alg } },
      }),
    },
  },
  async extraTokenClaims(ctx, token) {
    const c = await ctx.oidc.provider.Client.find(token.clientId);
    const out = {};
    if (c?.groups) out.groups = c.groups;
    if (c?.nexus_zones) out.nexus_zones = c.nexus_zones;
    return out;
  },
  jwks: { keys },
});
oidc.proxy = false;

function publicJwk(k) {
  const pub = crypto.createPublicKey({ key: k, format: 'jwk' }).export({ format: 'jwk' });
  return { ...pub, kid: k.kid, alg: k.alg, use: 'sig' };
}

function b64(buf) {
  return Buffer.from(buf).toString('base64url');
}

function sign(header, claims) {
  const h = { alg: current.alg, typ: 'at+jwt', kid: current.kid, ...header };
  const input = `${b64(JSON.stringify(h))}.${b64(JSON.stringify(claims))}`;
  const key = crypto.createPrivateKey({ key: current, format: 'jwk' });
  const digest = current.alg === 'EdDSA' ? null : 'sha256';
  const sig = crypto.sign(digest, Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  return `${input}.${b64(sig)}`;
}

// Test hook: rewrite the ID token of token responses (see /test/tamper).
oidc.use(async (ctx, next) => {
  await next();
  if (ctx.path === '/token' && ctx.body?.id_token && Object.keys(tamper).length > 0) {
    const [h, p] = ctx.body.id_token.split('.');
    const header = JSON.parse(Buffer.from(h, 'base64url'));
    const claims = JSON.parse(Buffer.from(p, 'base64url'));
    for (const [k, v] of Object.entries(tamper)) {
      if (v === null) delete claims[k];
      else claims[k] = v;
    }
    ctx.body = { ...ctx.body, id_token: sign({ typ: header.typ ?? 'JWT' }, claims) };
  }
});

const callback = oidc.callback();
server.on('request', (req, res) => {
  const path = req.url.split('?')[0];
  if (path === '/jwks') stats.jwks += 1;
  if (path === '/.well-known/openid-configuration') stats.discovery += 1;
  if (path === '/jwks' && pad > 0) {
    const filler = publicJwk(current);
    const extra = Array.from({ length: pad }, (_, i) => ({ ...filler, kid: `pad-${i}` }));
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ keys: [...keys.map(publicJwk), ...extra] }));
    return;
  }
  if (path === '/test/stats') {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(stats));
    return;
  }
  if (path === '/test/tamper' && req.method === 'POST') {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      tamper = JSON.parse(body || '{}').claims ?? {};
      res.setHeader('content-type', 'application/json');
      res.end('{}');
    });
    return;
  }
  if (path === '/test/sign' && req.method === 'POST') {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      try {
        const { claims, header } = JSON.parse(body);
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ token: sign(header ?? {}, claims) }));
      } catch (e) {
        res.statusCode = 400;
        res.end(String(e));
      }
    });
    return;
  }
  callback(req, res);
});

process.on('SIGTERM', () => server.close(() => process.exit(0)));
console.log(`IDP_URL=${issuer}`);
// The test harness stops reading stdout after that line: anything the provider prints
// later (its development interactions log to the console) goes to stderr, never to a
// closed pipe (EPIPE would end the process).
process.stdout.on('error', () => {});
console.log = (...a) => console.error(...a);
console.info = (...a) => console.error(...a);
