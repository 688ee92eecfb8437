// Runs the generated client against a live keymint: KEYMINT_BASE_URL,
// KEYMINT_EMAIL and KEYMINT_PASSWORD name a server and an org admin on it
// (services/server/e2e's TestTypeScriptClient starts one and runs this file).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createKeymintClient } from "../index.js";

const baseUrl = process.env.KEYMINT_BASE_URL;
const email = process.env.KEYMINT_EMAIL;
const password = process.env.KEYMINT_PASSWORD;
if (!baseUrl || !email || !password) {
  throw new Error("set KEYMINT_BASE_URL, KEYMINT_EMAIL and KEYMINT_PASSWORD");
}

// assertError checks keymint's error shape: {code, message, details}.
function assertError(result, httpStatus, code) {
  assert.equal(result.response.status, httpStatus);
  assert.equal(result.data, undefined);
  assert.deepEqual(Object.keys(result.error).sort(), ["code", "details", "message"]);
  assert.equal(result.error.code, code);
  assert.equal(typeof result.error.message, "string");
  assert.ok(result.error.message.length > 0);
  assert.deepEqual(result.error.details, []);
}

test("mint with a password, list, validate, revoke", async () => {
  const owner = createKeymintClient({ baseUrl, email, password });
  const minted = await owner.POST("/v1/tokens", {
    body: { name: "typescript client", description: "node --test", scopes: ["keymint:admin"] },
  });
  assert.equal(minted.response.status, 200, JSON.stringify(minted.error));
  const { secret, token } = minted.data;
  assert.match(secret, /^km_[0-9A-Za-z]{49}$/);
  assert.equal(token.name, "typescript client");
  assert.equal(token.status, "TOKEN_STATUS_ACTIVE");

  const holder = createKeymintClient({ baseUrl, token: secret });
  const list = await holder.GET("/v1/tokens", { params: { query: { pageSize: 100 } } });
  assert.equal(list.response.status, 200);
  const listed = list.data.tokens.find((t) => t.id === token.id);
  assert.ok(listed, "the new token is listed");
  assert.equal(JSON.stringify(list.data).includes(secret), false, "a list never shows a secret");

  const anyone = createKeymintClient({ baseUrl });
  const valid = await anyone.POST("/v1/tokens:validate", { body: { token: secret, requiredScopes: ["keymint:admin"] } });
  assert.equal(valid.response.status, 200);
  assert.equal(valid.data.valid, true);
  assert.equal(valid.data.tokenId, token.id);
  assert.equal("reason" in valid.data, false, "a valid answer has no reason");

  const revoked = await holder.DELETE("/v1/tokens/{id}", { params: { path: { id: token.id } } });
  assert.equal(revoked.response.status, 200);
  assert.equal(revoked.data.status, "TOKEN_STATUS_REVOKED");

  const after = await anyone.POST("/v1/tokens:validate", { body: { token: secret } });
  assert.equal(after.data.valid, false);
  assert.equal(after.data.reason, "REVOKED");
});

test("revoke by secret", async () => {
  const owner = createKeymintClient({ baseUrl, email, password });
  const minted = await owner.POST("/v1/tokens", { body: { name: "revoke by secret" } });
  assert.equal(minted.response.status, 200);
  const revoked = await owner.POST("/v1/tokens:revoke", { body: { token: minted.data.secret } });
  assert.equal(revoked.response.status, 200);
  assert.equal(revoked.data.id, minted.data.token.id);
  assert.equal(revoked.data.status, "TOKEN_STATUS_REVOKED");
});

test("the org policy round-trips", async () => {
  const admin = createKeymintClient({ baseUrl, email, password });
  const got = await admin.GET("/v1/org/policy");
  assert.equal(got.response.status, 200);
  const put = await admin.PATCH("/v1/org/policy", { body: got.data });
  assert.equal(put.response.status, 200, JSON.stringify(put.error));
  assert.deepEqual(put.data, got.data);
});

test("Semaphore routes", async () => {
  const anyone = createKeymintClient({ baseUrl });
  const meta = await anyone.GET("/api/auth/login");
  assert.deepEqual(meta.data, { oidc_providers: [], login_with_password: true });
  const ping = await anyone.GET("/api/ping", { parseAs: "text" });
  assert.equal(ping.data, "pong");
  const user = await createKeymintClient({ baseUrl, email, password }).GET("/api/user");
  assert.equal(user.response.status, 200);
  assert.equal(user.data.email, email);
  assert.equal(user.data.admin, true);
});

test("error shapes", async () => {
  const anyone = createKeymintClient({ baseUrl });

  const wrong = await createKeymintClient({ baseUrl, email, password: "not-the-password" }).GET("/v1/tokens");
  assertError(wrong, 401, 16);
  assert.match(wrong.response.headers.get("www-authenticate"), /^Bearer /);

  const none = await anyone.GET("/v1/tokens");
  assertError(none, 401, 16);

  const minted = await createKeymintClient({ baseUrl, email, password }).POST("/v1/tokens", { body: { name: "minter" } });
  const byToken = await createKeymintClient({ baseUrl, token: minted.data.secret }).POST("/v1/tokens", { body: { name: "x" } });
  assertError(byToken, 403, 7);

  const noName = await createKeymintClient({ baseUrl, email, password }).POST("/v1/tokens", { body: { name: "" } });
  assertError(noName, 400, 3);
  assert.match(noName.error.message, /name/);

  const unknownParam = await createKeymintClient({ baseUrl, token: minted.data.secret }).GET("/v1/tokens", {
    params: { query: { bogus: "value-not-echoed" } },
  });
  assertError(unknownParam, 400, 3);
  assert.match(unknownParam.error.message, /"bogus"/);
  assert.equal(unknownParam.error.message.includes("value-not-echoed"), false);

  const notFound = await createKeymintClient({ baseUrl, token: minted.data.secret }).GET("/v1/tokens/{id}", {
    params: { path: { id: "00000000-0000-0000-0000-000000000000" } },
  });
  assertError(notFound, 404, 5);

  const methodNotAllowed = await fetch(new URL("/v1/tokens:validate", baseUrl), { method: "PUT" });
  assert.equal(methodNotAllowed.status, 405);
  assert.equal(methodNotAllowed.headers.get("allow"), "POST");
  const body = await methodNotAllowed.json();
  assert.equal(body.code, 12);
});
