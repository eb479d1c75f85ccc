// A real OAuth2/OIDC authorization server for the gateway's tests (node-oidc-provider 9.x).
//
//   OP_PORT=39401 [OP_ALG=RS256|ES256] node tests/oidc/op.mjs
//
// Prints "READY <issuer>" once listening on 127.0.0.1. Issues client-credentials JWT access
// tokens (RFC 9068, header typ "at+jwt") to the confidential client gateway-test /
// gateway-test-secret (client_secret_basic) with an extra claim tenant: "acme".
//
// With OP_CONSOLE_REDIRECTS (comma-separated redirect URIs) it also has the public client
// gateway-console for the authorization code flow with PKCE (the console's OIDC sign-in), and
// its development login and consent pages (any login and password; consent by a button).
//
// Test-only knobs, not part of any standard:
// - request header X-OP-Alg on the token endpoint picks the signing alg of that one token
//   (RS256, PS256 or ES256; default OP_ALG);
// - POST /__test/rotate generates a new signing key pair per key type while the server keeps
//   running on the same port: tokens issued afterwards carry the new kids, and the JWKS
//   publishes the new keys first and still the old ones (as a real rotation does). Answers
//   {"RS256": kid, "PS256": kid, "ES256": kid}.
//
// node-oidc-provider has no public API to change its keystore at runtime (the keystore is
// fixed at construction), so rotation builds a new Provider with the new keys and swaps it in
// behind this process's own HTTP server, which keeps the port.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import Provider from 'oidc-provider';

const port = Number(process.env.OP_PORT || 39401);
const issuer = `http://127.0.0.1:${port}`;
const resource = process.env.OP_RESOURCE || 'https://gateway.test/api';
const defaultAlg = process.env.OP_ALG || 'RS256';
const SCOPES = ['predict:linear', 'metadata:linear', 'admin'];
const ALGS = new Set(['RS256', 'PS256', 'ES256']);
const consoleRedirects = (process.env.OP_CONSOLE_REDIRECTS || '').split(',').filter(Boolean);

if (!ALGS.has(defaultAlg)) {
  console.error(`OP_ALG must be one of ${[...ALGS].join(', ')}`);
  process.exit(2);
}

function privateJwk(type, options) {
  const { privateKey } = generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), use: 'sig' };
}

function newKeys() {
  return {
    rsa: privateJwk('rsa', { modulusLength: 2048 }),
    ec: privateJwk('ec', { namedCurve: 'P-256' }),
  };
}

function buildProvider(current, retired) {
  const signingAlg = (ctx) => {
    const wanted = ctx.get('x-op-alg') || defaultAlg;
    if (!ALGS.has(wanted)) throw new Error(`unsupported X-OP-Alg ${wanted}`);
    return wanted;
  };
  const configuration = {
    clients: [
      {
        client_id: 'gateway-test',
        client_secret: 'gateway-test-secret',
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
        token_endpoint_auth_method: 'client_secret_basic',
        scope: SCOPES.join(' '),
      },
      ...(consoleRedirects.length
        ? [
            {
              client_id: 'gateway-console',
              token_endpoint_auth_method: 'none',
              grant_types: ['authorization_code'],
              response_types: ['code'],
              redirect_uris: consoleRedirects,
              scope: ['openid', ...SCOPES].join(' '),
            },
          ]
        : []),
    ],
    // The current keys come first: the provider signs with the first key that fits the alg.
    jwks: { keys: [current.rsa, current.ec, ...retired.flatMap((k) => [k.rsa, k.ec])] },
    cookies: { keys: ['test-only-cookie-key'] },
    ttl: { ClientCredentials: 600 },
    scopes: ['openid', ...SCOPES],
    extraTokenClaims: async () => ({ tenant: 'acme' }),
    features: {
      devInteractions: { enabled: consoleRedirects.length > 0 },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      // Without resourceIndicators, client_credentials tokens are OPAQUE. With it and
      // accessTokenFormat 'jwt' they are RFC 9068 JWTs (header typ "at+jwt").
      resourceIndicators: {
        enabled: true,
        defaultResource: () => resource,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resourceIndicator) => ({
          scope: SCOPES.join(' '),
          audience: resourceIndicator,
          accessTokenTTL: 600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: signingAlg(ctx) } },
        }),
      },
    },
  };
  const provider = new Provider(issuer, configuration);
  provider.on('server_error', (_ctx, err) => console.error('server_error', err));
  return provider;
}

let current = newKeys();
const retired = [];
let handler = buildProvider(current, retired).callback();

function rotate(res) {
  retired.unshift(current);
  current = newKeys();
  handler = buildProvider(current, retired).callback();
  const kids = { RS256: current.rsa.kid, PS256: current.rsa.kid, ES256: current.ec.kid };
  console.log(`ROTATED ${JSON.stringify(kids)}`);
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify(kids));
}

const server = createServer((req, res) => {
  if (req.url === '/__test/rotate') {
    if (req.method !== 'POST') {
      res.writeHead(405, { allow: 'POST' });
      res.end();
      return;
    }
    rotate(res);
    return;
  }
  handler(req, res);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}

server.listen(port, '127.0.0.1', () => console.log(`READY ${issuer}`));
