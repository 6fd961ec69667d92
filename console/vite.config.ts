/// <reference types="vitest/config" />
import { defineConfig, type Plugin } from "vite";
import react from "@vitejs/plugin-react";

// `npm run dev` serves the console on :5173 and forwards the API (and its WebSocket) to the command API,
// so the browser sees one origin, as it does when the command API serves the built console at /console.
const api = process.env.ZAPSTREAM_API ?? "http://127.0.0.1:8080";
const apiPrefixes = ["/auth", "/users", "/sessions", "/chats", "/contacts", "/media", "/commands", "/campaigns",
  "/dashboard", "/address-book", "/api-keys", "/agents", "/healthz"];

// The account pages live outside /console (the API's mails link to them): serve the SPA there too, as the
// command API does.
const accountPages: Plugin = {
  name: "zapstream-account-pages",
  configureServer(server) {
    server.middlewares.use((req, _res, next) => {
      if (req.url && /^\/(login|register|verify|reset-password)(\?|$)/.test(req.url)) req.url = "/console/";
      next();
    });
  },
};

export default defineConfig({
  base: "/console/",
  plugins: [react(), accountPages],
  server: {
    proxy: {
      ...Object.fromEntries(apiPrefixes.map((p) => [p, { target: api, changeOrigin: true }])),
      "/ws": { target: api.replace(/^http/, "ws"), ws: true, changeOrigin: true },
    },
  },
  test: { environment: "node", include: ["tests/**/*.test.ts"] },
});
