// A real OpenID provider (npm `oidc-provider`, OpenID-certified) for the hub's OIDC tests.
// Test-only: it listens on 127.0.0.1 and its clients' secrets are in this file.
//
//   node idp.mjs --keys FILE [--port 0] [--audience URL] [--key-type ec|rsa|ed25519]
//                [--rotate] [--drop-old] [--pad-jwks N] [--ttl SECS]
//
// Prints `IDP_URL=<issuer>` once listening. The issuer is http://127.0.0.1:<port>.
// --keys FILE   private JWKs (a JSON list), created with one key of --key-type if missing;
//               so a restart on the same port serves the same keys.
// --rotate      adds a new key in front ([k2, k1]); --drop-old keeps only the first ([k2]).
// --pad-jwks N  serves N extra (well-formed, useless) keys after the real ones.
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

const oidc = new Provider(issuer, {
  clients: [
    client('hub-test'),
    client('eng-bot', { groups: ['eng'] }),
    client('ops-bot', { groups: ['ops'], nexus_zones: 'eng:r' }),
  ],
  extraClientMetadata: { properties: ['groups', 'nexus_zones'] },
  features: {
    clientCredentials: { enabled: true },
    devInteractions: { enabled: false },
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
