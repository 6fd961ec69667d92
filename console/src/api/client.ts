/**
 * The console's only way to the backend: a client generated from schemas/openapi.json (openapi-typescript
 * writes schema.d.ts on every `npm run build`), so a changed or removed route fails the type check.
 */
import createClient from "openapi-fetch";
import type { components, paths } from "./schema";
import { Auth, authedFetch, type TokenAnswer } from "./auth";

export type Schemas = components["schemas"];
export type Problem = Schemas["ProblemDetail"];

async function refreshCall(): Promise<TokenAnswer | null> {
  // The refresh cookie is HttpOnly, path /auth, SameSite=Strict: same origin, so fetch sends it.
  const r = await fetch("/auth/refresh", { method: "POST", credentials: "same-origin" });
  if (r.status === 401 || r.status === 403) return null;
  if (!r.ok) throw new Error(`refresh: HTTP ${r.status}`);
  return (await r.json()) as TokenAnswer;
}

export const auth = new Auth(refreshCall);
export const api = createClient<paths>({ baseUrl: "", fetch: authedFetch(auth) });

/** Words for an error answer (problem+json), never a blank page. */
export function problemText(error: unknown, fallback = "Something went wrong"): string {
  if (error && typeof error === "object") {
    const p = error as Partial<Problem>;
    const fields = (p.errors ?? []).map((e) => `${(e.loc ?? []).slice(1).join(".")}: ${e.msg}`).join("; ");
    const head = p.detail || p.title;
    if (head) return fields ? `${head} (${fields})` : head;
  }
  if (error instanceof Error) return error.message;
  return fallback;
}
