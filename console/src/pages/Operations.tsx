/** Operations: the API's health, the live socket, and dead letters with re-drive (header X-Operator-Token). */
import { useEffect, useState } from "react";
import { api, problemText } from "../api/client";
import { useI18n } from "../i18n";
import { useLive } from "../live";

type Row = Record<string, unknown>;

export function Operations() {
  const { t } = useI18n();
  const { state } = useLive();
  const [health, setHealth] = useState<string>("…");
  // The operator token is typed in per visit and kept in memory only: it is not the user's credential.
  const [token, setToken] = useState("");
  const [letters, setLetters] = useState<{ commands: Row[]; events: Row[] } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [note, setNote] = useState<string | null>(null);

  useEffect(() => {
    fetch("/healthz").then((r) => setHealth(r.ok ? "ok" : `HTTP ${r.status}`)).catch(() => setHealth("unreachable"));
  }, []);
  const headers = { "X-Operator-Token": token };
  const load = async () => {
    setError(null);
    const { data, error } = await api.GET("/dead-letters", { headers });
    if (error) return setError(problemText(error));
    setLetters(data);
  };
  const redrive = async (row: Row, kind: "commands" | "events") => {
    setError(null);
    const r = kind === "commands"
      ? await api.POST("/dead-letters/commands/{partition}/{offset}/redrive", { headers,
        params: { path: { partition: Number(row.partition), offset: Number(row.offset) } } })
      : await api.POST("/dead-letters/events/{dead_letter_id}/redrive", { headers,
        params: { path: { dead_letter_id: Number(row.id) } } });
    if (r.error) setError(problemText(r.error));
    else setNote(`${r.data.status}: ${r.data.id}`);
    await load();
  };
  const table = (rows: Row[], kind: "commands" | "events") => rows.length === 0 ? <p className="empty">{t.noDeadLetters}</p> : (
    <table><tbody>{rows.map((r) => (
      <tr key={String(r.id)}>
        <td><code>{String(r.id)}</code></td>
        <td>{String(r.event_type ?? r.eventType ?? r.type ?? "")}</td>
        <td>{String(r.reason ?? r.error ?? "")}</td>
        <td><button onClick={() => void redrive(r, kind)}>{t.redrive}</button></td>
      </tr>))}</tbody></table>
  );
  return (
    <section>
      <h1>{t.operations}</h1>
      <ul>
        <li>command API /healthz: <strong data-testid="health">{health}</strong></li>
        <li>WebSocket: <strong>{state}</strong></li>
      </ul>
      <h2>{t.deadLetters}</h2>
      <form className="row" onSubmit={(e) => { e.preventDefault(); void load(); }}>
        <input type="password" aria-label={t.operatorToken} placeholder={t.operatorToken} value={token}
          onChange={(e) => setToken(e.target.value)} required />
        <button type="submit">{t.show}</button>
      </form>
      {error ? <p role="alert" className="error">{error}</p> : null}
      {note ? <p role="status">{note}</p> : null}
      {letters ? <>
        <h3>{t.commands}</h3>{table(letters.commands, "commands")}
        <h3>{t.events}</h3>{table(letters.events, "events")}
      </> : null}
    </section>
  );
}
