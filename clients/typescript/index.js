// keymint's TypeScript client: openapi-fetch over the types openapi-typescript
// generates from keymint's OpenAPI document (schema.d.ts, `make gen`).
import createClient from "openapi-fetch";

/**
 * createKeymintClient returns an openapi-fetch client for a keymint server.
 * Credentials, when given, go on every request: email + password (the
 * x-api-email / x-api-password headers, needed to mint) or a token
 * (Authorization: Bearer).
 */
export function createKeymintClient(options = {}) {
  const { email, password, token, headers, ...rest } = options;
  const auth = {};
  if (email !== undefined || password !== undefined) {
    auth["x-api-email"] = email ?? "";
    auth["x-api-password"] = password ?? "";
  }
  if (token !== undefined) {
    auth.authorization = `Bearer ${token}`;
  }
  return createClient({ ...rest, headers: { ...auth, ...headers } });
}

export default createKeymintClient;
