// A real OAuth 2.0 authorization server for the oauth2 provider's tests:
// node's oidc-provider (OpenID Certified), over HTTPS on 127.0.0.1 with the
// test CA's server certificate. Its clients, secrets and token lifetime come
// from a JSON file (argv[2]); it prints "listening <port>" once it accepts.
//
//   node server.mjs config.json
//   config: {"cert","key","ttl","clients":[{client_id, client_secret, ...}]}
import { readFileSync } from 'node:fs';
import https from 'node:https';

import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));

const server = https.createServer({ cert: readFileSync(config.cert), key: readFileSync(config.key) });
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const provider = new Provider(`https://127.0.0.1:${port}`, {
    clients: config.clients,
    scopes: config.scopes,
    features: {
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      devInteractions: { enabled: false },
    },
    ttl: { ClientCredentials: config.ttl },
    // What the tests read: the provider's errors, not its HTML pages.
    renderError: (ctx, out) => {
      ctx.type = 'application/json';
      ctx.body = out;
    },
  });
  provider.proxy = false;
  server.on('request', provider.callback());
  console.log(`listening ${port}`);
});
