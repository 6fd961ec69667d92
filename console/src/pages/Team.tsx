/** Team and access: agents (create, disable/enable) and API keys (create with session scopes, shown once, revoke). */
import { useCallback, useEffect, useState } from "react";
import { api, problemText, type Schemas } from "../api/client";
import { useI18n } from "../i18n";

type Agent = Schemas["UserView"];
type Key = Schemas["ApiKeyView"];
type Session = Schemas["SessionView"];

export function Team() {
  const { t } = useI18n();
  const [agents, setAgents] = useState<Agent[] | null>(null);
  const [keys, setKeys] = useState<Key[] | null>(null);
  const [sessions, setSessions] = useState<Session[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [agent, setAgent] = useState({ name: "", email: "", password: "", role: "agent" as "agent" | "admin" });
  const [keyName, setKeyName] = useState("");
  const [scopes, setScopes] = useState<string[]>([]);
  const [shown, setShown] = useState<string | null>(null);

  const load = useCallback(async () => {
    const [a, k, s] = await Promise.all([api.GET("/agents"), api.GET("/api-keys"), api.GET("/sessions")]);
    if (a.error) setError(problemText(a.error)); else setAgents(a.data.agents);
    if (k.error) setError(problemText(k.error)); else setKeys(k.data.apiKeys);
    if (s.data) setSessions(s.data.sessions);
  }, []);
  useEffect(() => { void load(); }, [load]);

  const run = async (fn: () => Promise<{ error?: unknown }>) => {
    setError(null);
    const r = await fn();
    if (r.error) setError(problemText(r.error));
    await load();
    return !r.error;
  };

  return (
    <section>
      <h1>{t.team}</h1>
      {error ? <p role="alert" className="error">{error}</p> : null}
      <h2>{t.agents}</h2>
      <form className="row" onSubmit={(e) => { e.preventDefault(); void run(() => api.POST("/agents", { body: agent }))
        .then((ok) => ok && setAgent({ name: "", email: "", password: "", role: "agent" })); }}>
        <input aria-label={t.name} placeholder={t.name} required value={agent.name} onChange={(e) => setAgent({ ...agent, name: e.target.value })} />
        <input aria-label={t.email} placeholder={t.email} type="email" required value={agent.email} onChange={(e) => setAgent({ ...agent, email: e.target.value })} />
        <input aria-label={t.password} placeholder={t.password} type="password" required minLength={8} value={agent.password} onChange={(e) => setAgent({ ...agent, password: e.target.value })} />
        <select aria-label={t.role} value={agent.role} onChange={(e) => setAgent({ ...agent, role: e.target.value as "agent" | "admin" })}>
          <option value="agent">agent</option>
          <option value="admin">admin</option>
        </select>
        <button type="submit">{t.addAgent}</button>
      </form>
      {agents && agents.length === 0 ? <p className="empty">{t.noAgents}</p> : null}
      <table>
        <tbody>
          {agents?.map((a) => (
            <tr key={a.id}>
              <td>{a.name}</td><td>{a.email}</td><td>{a.role}</td><td>{a.disabled ? "disabled" : "active"}</td>
              <td><AgentChats agent={a} /></td>
              <td>
                {a.disabled
                  ? <button onClick={() => void run(() => api.POST("/agents/{user_id}/enable", { params: { path: { user_id: a.id } } }))}>{t.enable}</button>
                  : <button onClick={() => void run(() => api.POST("/agents/{user_id}/disable", { params: { path: { user_id: a.id } } }))}>{t.disable}</button>}
              </td>
            </tr>
          ))}
        </tbody>
      </table>

      <h2>{t.apiKeys}</h2>
      <form className="row" onSubmit={(e) => {
        e.preventDefault();
        void (async () => {
          setError(null);
          const { data, error } = await api.POST("/api-keys", { body: { name: keyName, sessionIds: scopes.length ? scopes : null } });
          if (error) return setError(problemText(error));
          setShown(data.key);
          setKeyName("");
          setScopes([]);
          await load();
        })();
      }}>
        <input aria-label={t.name} placeholder={t.name} required value={keyName} onChange={(e) => setKeyName(e.target.value)} />
        <label>{t.scopes}
          <select multiple aria-label={t.scopes} value={scopes}
            onChange={(e) => setScopes([...e.target.selectedOptions].map((o) => o.value))}>
            {sessions.map((s) => <option key={s.id} value={s.id}>{s.name || s.phone || s.id.slice(0, 8)}</option>)}
          </select>
        </label>
        <button type="submit">{t.createKey}</button>
      </form>
      {shown ? (
        <p role="status" className="once">{t.keyOnce} <code data-testid="new-key">{shown}</code>{" "}
          <button onClick={() => setShown(null)}>OK</button></p>
      ) : null}
      {keys && keys.length === 0 ? <p className="empty">{t.noKeys}</p> : null}
      <table>
        <tbody>
          {keys?.map((k) => (
            <tr key={k.id}>
              <td>{k.name}</td><td>…{k.last4 ?? ""}</td>
              <td>{k.sessionIds?.length ? `${k.sessionIds.length} ${t.sessions.toLowerCase()}` : t.allSessions}</td>
              <td>{k.revokedAt ? `revoked ${new Date(k.revokedAt).toLocaleString()}` : ""}</td>
              <td>{k.revokedAt ? null : <button className="danger" onClick={() => {
                if (window.confirm(t.sure)) void run(() => api.DELETE("/api-keys/{key_id}", { params: { path: { key_id: k.id } } }));
              }}>{t.revoke}</button>}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

/** Per-chat permissions: an agent sees and answers only the chats assigned to them. */
function AgentChats({ agent }: { agent: Agent }) {
  const { t } = useI18n();
  const [chats, setChats] = useState<Schemas["Assignment"][]>([]);
  const [jid, setJid] = useState("");
  const [error, setError] = useState<string | null>(null);
  const path = { params: { path: { user_id: agent.id } } };
  const load = useCallback(async () => {
    const { data } = await api.GET("/agents/{user_id}/chats", path);
    if (data) setChats(data.chats);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [agent.id]);
  useEffect(() => { if (agent.role === "agent") void load(); }, [load, agent.role]);
  if (agent.role !== "agent") return <small>{t.allChats}</small>;
  const assign = async () => {
    const chatJid = jid.includes("@") ? jid.trim() : `${jid.replace(/[^0-9]/g, "")}@s.whatsapp.net`;
    const { error } = await api.POST("/agents/{user_id}/chats", { ...path, body: { chatJid } });
    setError(error ? problemText(error) : null);
    setJid("");
    await load();
  };
  return (
    <div>
      {chats.map((c) => (
        <span key={c.chatJid} className="badge">{c.chatJid.split("@")[0]}{" "}
          <button aria-label={`${t.remove} ${c.chatJid}`} onClick={() => void api.DELETE("/agents/{user_id}/chats/{jid}",
            { params: { path: { user_id: agent.id, jid: c.chatJid } } }).then(load)}>✕</button>
        </span>
      ))}
      <form className="row" onSubmit={(e) => { e.preventDefault(); void assign(); }}>
        <input aria-label={t.assignChat} placeholder={t.assignChat} value={jid} onChange={(e) => setJid(e.target.value)} required />
        <button type="submit">+</button>
      </form>
      {error ? <small role="alert" className="error">{error}</small> : null}
    </div>
  );
}

export function Contacts() {
  const { t } = useI18n();
  const [contacts, setContacts] = useState<Schemas["ContactView"][] | null>(null);
  const [filter, setFilter] = useState("");
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    void api.GET("/contacts").then(({ data, error }) => (error ? setError(problemText(error)) : setContacts(data.contacts)));
  }, []);
  const shown = contacts?.filter((c) => `${c.id} ${c.name ?? ""} ${c.notify ?? ""}`.toLowerCase().includes(filter.toLowerCase()));
  return (
    <section>
      <h1>{t.contacts}</h1>
      {error ? <p role="alert" className="error">{error}</p> : null}
      <input aria-label={t.search} placeholder={t.search} value={filter} onChange={(e) => setFilter(e.target.value)} />
      {contacts && contacts.length === 0 ? <p className="empty">{t.noContacts}</p> : null}
      <table>
        <tbody>
          {shown?.map((c) => (
            <tr key={c.id}><td>{c.id.split("@")[0]}</td><td>{c.name ?? ""}</td><td>{c.notify ?? ""}</td></tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
