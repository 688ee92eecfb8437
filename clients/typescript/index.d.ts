import type { Client, ClientOptions } from "openapi-fetch";
import type { paths } from "./schema.js";

export type { paths, components, operations } from "./schema.js";

/** The error body of every keymint error: a gRPC code, a message, details. */
export type KeymintError = import("./schema.js").components["schemas"]["Status"];

/** Options of createKeymintClient: openapi-fetch's, plus credentials. */
export interface KeymintClientOptions extends ClientOptions {
  /** The account's email (x-api-email); with password, may mint tokens. */
  email?: string;
  /** The account's password (x-api-password). */
  password?: string;
  /** An API token, sent as Authorization: Bearer; it cannot mint tokens. */
  token?: string;
}

/** createKeymintClient returns a typed client for a keymint server. */
export function createKeymintClient(options?: KeymintClientOptions): Client<paths>;
export default createKeymintClient;
