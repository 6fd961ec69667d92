/**
 * Campaigns (seed 004): create from address-book groups or a CSV with a template previewed for real
 * recipients ({nombre}, {sustantivo}, {grupo}), pacing, start/pause/resume/cancel, a live progress bar,
 * per-recipient status with filters, and CSV export.
 */
import { useCallback, useEffect, useRef, useState } from "react";
import { api, problemText, type Schemas } from "../api/client";
import { useI18n } from "../i18n";
import { useLive, useLiveEvents } from "../live";

type Campaign = Schemas["CampaignOut"];
type Recipient = Schemas["RecipientOut"];
type Create = Schemas["CreateCampaignIn"];
const ACTIVE = new Set(["scheduled", "running", "starting", "paused", "pausing", "cancelling"]);
const STATUSES = ["", "pending", "sending", "sent", "delivered", "read", "failed", "skipped", "cancelled"];

export function Progress({ c }: { c: Campaign }) {
  const pct = Math.round((c.progress ?? 0) * 100);
  return (
    <div className="progress" role="progressbar" aria-valuemin={0} aria-valuemax={100} aria-valuenow={pct}
      aria-label={c.name} data-testid="campaign-progress" data-pct={pct}>
      <div style={{ width: `${pct}%` }} />
      <span>{pct} %</span>
    </div>
  );
}

export function Campaigns() {
  const { t } = useI18n();
  const { generation } = useLive();
  const [list, setList] = useState<Campaign[] | null>(null);
  const [open, setOpen] = useState<string | null>(null);
  const [creating, setCreating] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const load = useCallback(async () => {
    const { data, error } = await api.GET("/campaigns", { params: { query: { limit: 50 } } });
    if (error) setError(problemText(error));
    else setList(data.campaigns);
  }, []);
  useEffect(() => { void load(); }, [load, generation]);
  useLiveEvents((e) => { if (e.type.startsWith("campaign.")) void load(); });
  // The socket pushes progress; a slow poll covers anything missed while it reconnects.
  useEffect(() => {
    if (!list?.some((c) => ACTIVE.has(c.status))) return;
    const id = setInterval(() => void load(), 3000);
    return () => clearInterval(id);
  }, [list, load]);

  return (
    <section>
      <h1>{t.campaigns}</h1>
      {error ? <p role="alert" className="error">{error}</p> : null}
      {creating ? <NewCampaign onDone={(id) => { setCreating(false); if (id) setOpen(id); void load(); }} />
        : <button onClick={() => setCreating(true)} data-testid="new-campaign">{t.newCampaign}</button>}
      {list && list.length === 0 && !creating ? <p className="empty">{t.noCampaigns}</p> : null}
      <ul className="cards">
        {list?.map((c) => (
          <li key={c.id} className="card" data-testid={`campaign-${c.id}`}>
            <div className="row"><strong>{c.name}</strong><span className="badge">{c.status}</span></div>
            <Progress c={c} />
            <small>{c.counts.sent + c.counts.delivered + c.counts.read} / {c.counts.total} · {t.failed}: {c.counts.failed}</small>
            <button onClick={() => setOpen(open === c.id ? null : c.id)}>{open === c.id ? t.close : t.details}</button>
          </li>
        ))}
      </ul>
      {open ? <CampaignDetail id={open} onChange={() => void load()} /> : null}
    </section>
  );
}

function NewCampaign({ onDone }: { onDone(id: string | null): void }) {
  const { t } = useI18n();
  const [name, setName] = useState("");
  const [text, setText] = useState("Hola {nombre}, ");
  const [groups, setGroups] = useState<string[]>([]);
  const [allGroups, setAllGroups] = useState<Array<{ grupo: string | null; contacts: number }>>([]);
  const [csv, setCsv] = useState<string | null>(null);
  const [pacing, setPacing] = useState({ enabled: true, baseDelayS: 5, jitterS: 3, perHour: 200, quietHours: true });
  const [preview, setPreview] = useState<Schemas["PreviewOut"] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    void api.GET("/address-book/groups").then(({ data }) => data && setAllGroups(data.groups));
  }, []);

  const body = (start: boolean): Create => ({
    name: name || "Campaign",
    message: { text },
    audience: csv !== null ? { csv } : { groups },
    pacing: pacing.enabled
      ? { enabled: true, baseDelayS: pacing.baseDelayS, jitterS: pacing.jitterS, perHour: pacing.perHour,
        quietHours: pacing.quietHours }
      : { enabled: false },
    start,
  }) as Create;

  // Preview as the person types: the template filled in for the first real recipients.
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  useEffect(() => {
    if (timer.current) clearTimeout(timer.current);
    if (csv === null && groups.length === 0) { setPreview(null); return; }
    timer.current = setTimeout(() => {
      void api.POST("/campaigns/preview", { body: body(false) }).then(({ data, error }) => {
        if (error) setError(problemText(error)); else { setError(null); setPreview(data); }
      });
    }, 300);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [text, groups, csv]);

  const submit = async (start: boolean) => {
    setBusy(true);
    setError(null);
    const { data, error } = await api.POST("/campaigns", { body: body(start) });
    setBusy(false);
    if (error) return setError(problemText(error));
    onDone(data.campaignId);
  };

  return (
    <form className="card campaign-form" onSubmit={(e) => { e.preventDefault(); void submit(true); }}>
      <label>{t.name}<input value={name} onChange={(e) => setName(e.target.value)} data-testid="campaign-name" /></label>
      <fieldset>
        <legend>{t.audience}</legend>
        <label>{t.groups}
          <select multiple value={groups} disabled={csv !== null} data-testid="campaign-groups"
            onChange={(e) => setGroups([...e.target.selectedOptions].map((o) => o.value))}>
            {allGroups.map((g) => <option key={g.grupo ?? ""} value={g.grupo ?? ""}>{g.grupo ?? "—"} ({g.contacts})</option>)}
          </select>
        </label>
        {allGroups.length === 0 ? <p className="empty">{t.noGroups}</p> : null}
        <label>{t.orCsv}
          <input type="file" accept=".csv,text/csv" data-testid="campaign-csv"
            onChange={(e) => { const f = e.target.files?.[0]; if (f) void f.text().then(setCsv); }} />
        </label>
        {csv !== null ? <button type="button" onClick={() => setCsv(null)}>{t.cancel} CSV</button> : null}
      </fieldset>
      <label>{t.template} <small>{"{nombre} {sustantivo} {grupo}"}</small>
        <textarea rows={4} value={text} onChange={(e) => setText(e.target.value)} data-testid="campaign-text" />
      </label>
      {preview ? (
        <div className="preview" data-testid="campaign-preview">
          <strong>{t.preview}</strong> ({preview.total} · {t.skippedN}: {preview.skipped} · {t.invalidN}: {preview.invalid})
          <ul>{preview.items.slice(0, 5).map((i) => <li key={i.phone}><code>+{i.phone}</code> {i.skipped ? <em>{i.skipped}</em> : i.text}</li>)}</ul>
        </div>
      ) : null}
      <fieldset>
        <legend>{t.pacing}</legend>
        <label className="row"><input type="checkbox" checked={pacing.enabled} onChange={(e) => setPacing({ ...pacing, enabled: e.target.checked })} data-testid="pacing-enabled" /> {t.pacingOn}</label>
        {pacing.enabled ? <div className="row">
          <label>{t.delayS}<input type="number" min={0} value={pacing.baseDelayS} onChange={(e) => setPacing({ ...pacing, baseDelayS: Number(e.target.value) })} /></label>
          <label>{t.jitterS}<input type="number" min={0} value={pacing.jitterS} onChange={(e) => setPacing({ ...pacing, jitterS: Number(e.target.value) })} /></label>
          <label>{t.perHour}<input type="number" min={1} value={pacing.perHour} onChange={(e) => setPacing({ ...pacing, perHour: Number(e.target.value) })} /></label>
          <label className="row"><input type="checkbox" checked={pacing.quietHours} onChange={(e) => setPacing({ ...pacing, quietHours: e.target.checked })} /> {t.quietHours}</label>
        </div> : null}
      </fieldset>
      {error ? <p role="alert" className="error">{error}</p> : null}
      <div className="row">
        <button type="submit" disabled={busy} data-testid="campaign-start">{t.createStart}</button>
        <button type="button" disabled={busy} onClick={() => void submit(false)}>{t.createDraft}</button>
        <button type="button" onClick={() => onDone(null)}>{t.cancel}</button>
      </div>
    </form>
  );
}

function CampaignDetail({ id, onChange }: { id: string; onChange(): void }) {
  const { t } = useI18n();
  const [c, setC] = useState<Campaign | null>(null);
  const [rows, setRows] = useState<Recipient[]>([]);
  const [filter, setFilter] = useState("");
  const [confirm, setConfirm] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const path = { params: { path: { campaign_id: id } } };
  const load = useCallback(async () => {
    const [a, b] = await Promise.all([
      api.GET("/campaigns/{campaign_id}", path),
      api.GET("/campaigns/{campaign_id}/recipients", { params: { path: { campaign_id: id },
        query: { limit: 200, ...(filter ? { status: filter } : {}) } } }),
    ]);
    // Right after creating, the read model may not have the campaign yet: say nothing, the next read has it.
    if (a.error) return a.response.status === 404 && !c ? undefined : setError(problemText(a.error));
    setError(null);
    setC(a.data);
    if (b.data) setRows((b.data as Schemas["RecipientPage"]).recipients);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [id, filter]);
  useEffect(() => { void load(); }, [load]);
  useLiveEvents((e) => { if (e.type.startsWith("campaign.")) void load(); });
  useEffect(() => {
    if (c && !ACTIVE.has(c.status)) return;
    const h = setInterval(() => void load(), 3000);
    return () => clearInterval(h);
  }, [c, load]);

  const act = async (what: "start" | "pause" | "resume" | "cancel" | "retry-failed") => {
    setError(null);
    setConfirm(false);
    const r = what === "start" ? await api.POST("/campaigns/{campaign_id}/start", path)
      : what === "pause" ? await api.POST("/campaigns/{campaign_id}/pause", path)
      : what === "resume" ? await api.POST("/campaigns/{campaign_id}/resume", path)
      : what === "cancel" ? await api.POST("/campaigns/{campaign_id}/cancel", path)
      : await api.POST("/campaigns/{campaign_id}/retry-failed", path);
    if (r.error) setError(problemText(r.error));
    await load();
    onChange();
  };
  // Export with the bearer token (a plain link would carry no credentials), then hand the file over.
  const exportCsv = async () => {
    const { data, error } = await api.GET("/campaigns/{campaign_id}/recipients", {
      params: { path: { campaign_id: id }, query: { format: "csv", ...(filter ? { status: filter } : {}) } },
      parseAs: "blob" });
    if (error || !data) return setError(problemText(error));
    const url = URL.createObjectURL(data as Blob);
    const a = document.createElement("a");
    a.href = url;
    a.download = `campaign-${id}.csv`;
    a.click();
    URL.revokeObjectURL(url);
  };
  if (!c) return error ? <p role="alert" className="error">{error}</p> : <p>…</p>;
  return (
    <div className="card" data-testid="campaign-detail">
      <h2>{c.name} <span className="badge" data-testid="campaign-status">{c.status}</span></h2>
      <Progress c={c} />
      <p className="counts">
        {(["total", "pending", "sending", "sent", "delivered", "read", "failed", "skipped", "cancelled"] as const)
          .map((k) => <span key={k}>{k}: <strong>{c.counts[k]}</strong> </span>)}
      </p>
      <div className="row">
        <button onClick={() => void act("start")}>{t.start}</button>
        <button onClick={() => void act("pause")}>{t.pause}</button>
        <button onClick={() => void act("resume")}>{t.resume}</button>
        <button onClick={() => void act("retry-failed")}>{t.retryFailed}</button>
        {confirm ? <span>{t.sure} <button className="danger" onClick={() => void act("cancel")}>{t.confirm}</button>
          <button onClick={() => setConfirm(false)}>{t.cancel}</button></span>
          : <button className="danger" onClick={() => setConfirm(true)}>{t.cancelCampaign}</button>}
        <button onClick={() => void exportCsv()}>{t.exportCsv}</button>
      </div>
      {error ? <p role="alert" className="error">{error}</p> : null}
      <label>{t.filter}
        <select value={filter} onChange={(e) => setFilter(e.target.value)} aria-label={t.filter}>
          {STATUSES.map((s) => <option key={s} value={s}>{s || t.all}</option>)}
        </select>
      </label>
      <table>
        <tbody>
          {rows.map((r) => (
            <tr key={r.recipientId}>
              <td>+{r.phone}</td><td>{r.nombre ?? ""}</td><td>{r.grupo ?? ""}</td>
              <td><span className="badge">{r.status}</span></td><td>{r.reason ?? ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
