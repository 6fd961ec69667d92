/** The address book: contacts and groups, and CSV import with upload progress and per-row errors. */
import { useCallback, useEffect, useState } from "react";
import { api, auth, problemText, type Schemas } from "../api/client";
import { useI18n } from "../i18n";

type Import = Schemas["ImportOut"];

/** POST the CSV as text/csv with upload progress (XHR), bearer token, same origin. */
async function uploadCsv(file: File, onProgress: (pct: number) => void): Promise<Import> {
  const token = await auth.getToken();
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/address-book/import");
    xhr.setRequestHeader("Content-Type", "text/csv");
    if (token) xhr.setRequestHeader("Authorization", `Bearer ${token}`);
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(Math.round((100 * e.loaded) / e.total));
    xhr.onload = () => {
      let body: unknown = null;
      try { body = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body as Import);
      else reject(new Error(problemText(body, `import failed (HTTP ${xhr.status})`)));
    };
    xhr.onerror = () => reject(new Error("import failed (network)"));
    xhr.send(file);
  });
}

export function AddressBook() {
  const { t } = useI18n();
  const [contacts, setContacts] = useState<Schemas["ContactOut"][] | null>(null);
  const [groups, setGroups] = useState<Schemas["GroupCount"][]>([]);
  const [group, setGroup] = useState("");
  const [q, setQ] = useState("");
  const [progress, setProgress] = useState<number | null>(null);
  const [result, setResult] = useState<Import | null>(null);
  const [error, setError] = useState<string | null>(null);

  const load = useCallback(async () => {
    const [c, g] = await Promise.all([
      api.GET("/address-book/contacts", { params: { query: { limit: 200, ...(group ? { grupo: group } : {}), ...(q ? { q } : {}) } } }),
      api.GET("/address-book/groups"),
    ]);
    if (c.error) setError(problemText(c.error)); else setContacts(c.data.contacts);
    if (g.data) setGroups(g.data.groups);
  }, [group, q]);
  useEffect(() => { void load(); }, [load]);

  const importFile = async (file: File) => {
    setError(null);
    setResult(null);
    setProgress(0);
    try {
      let r = await uploadCsv(file, setProgress);
      setResult(r);
      // A large import keeps going on the server: follow it until it is done.
      while (r.status === "running" || r.status === "pending") {
        await new Promise((res) => setTimeout(res, 1000));
        const { data } = await api.GET("/address-book/imports/{import_id}", { params: { path: { import_id: r.importId } } });
        if (!data) break;
        r = data;
        setResult(r);
      }
      await load();
    } catch (err) {
      setError(problemText(err));
    } finally {
      setProgress(null);
    }
  };

  return (
    <section>
      <h1>{t.addressBook}</h1>
      <label className="file">{t.importCsv} <small>(numero,sustantivo,nombre,grupo)</small>
        <input type="file" accept=".csv,text/csv" data-testid="import-csv"
          onChange={(e) => { const f = e.target.files?.[0]; if (f) void importFile(f); e.target.value = ""; }} />
      </label>
      {progress !== null ? <progress max={100} value={progress} aria-label={t.uploading}>{progress}%</progress> : null}
      {result ? (
        <div role="status" data-testid="import-result">
          {result.status}: {t.rowsRead} {result.rowsRead}, {t.imported} {result.imported}, {t.rejected} {result.rejected}
          {result.errors.length ? <ul className="error">{result.errors.slice(0, 50).map((e) => <li key={e.line}>{t.line} {e.line}: {e.reason}</li>)}</ul> : null}
        </div>
      ) : null}
      {error ? <p role="alert" className="error">{error}</p> : null}
      <div className="row">
        <select aria-label={t.groups} value={group} onChange={(e) => setGroup(e.target.value)}>
          <option value="">{t.all}</option>
          {groups.map((g) => <option key={g.grupo ?? ""} value={g.grupo ?? ""}>{g.grupo ?? "—"} ({g.contacts})</option>)}
        </select>
        <input aria-label={t.search} placeholder={t.search} value={q} onChange={(e) => setQ(e.target.value)} />
      </div>
      {contacts && contacts.length === 0 ? <p className="empty">{t.noAddressBook}</p> : null}
      <table>
        <tbody>
          {contacts?.map((c) => <tr key={c.id}><td>+{c.phone}</td><td>{c.nombre ?? ""}</td><td>{c.sustantivo ?? ""}</td><td>{c.grupo ?? ""}</td></tr>)}
        </tbody>
      </table>
    </section>
  );
}
