/**
 * Seed 004's dashboard: a timeline by hour/day/month, a pie by group, top contacts, the current month and the
 * monthly trend, for a date range in the tenant's time zone (or another one), drawn with Recharts.
 */
import { useEffect, useState } from "react";
import { Bar, BarChart, CartesianGrid, Cell, Legend, Line, LineChart, Pie, PieChart, ResponsiveContainer, Tooltip,
  XAxis, YAxis } from "recharts";
import { api, problemText, type Schemas } from "../api/client";
import { useI18n } from "../i18n";
import { useLive, useLiveEvents } from "../live";

type Timeline = Schemas["Timeline"];
type Breakdown = Schemas["Breakdown"];
type Summary = Schemas["Summary"];
const COLORS = ["#0b6e4f", "#53bdeb", "#f4a261", "#e76f51", "#8ab17d", "#6d597a", "#2a9d8f", "#e9c46a"];

const day = (d: Date) => d.toISOString().slice(0, 10);

function series(t: Timeline | null) {
  return (t?.points ?? []).map((p) => ({ period: p.period.slice(0, t?.interval === "hour" ? 16 : t?.interval === "month" ? 7 : 10),
    ...p.totals }));
}

export function Dashboard() {
  const { t } = useI18n();
  const { generation } = useLive();
  const [from, setFrom] = useState(day(new Date(Date.now() - 29 * 86_400_000)));
  const [to, setTo] = useState(day(new Date()));
  const [tz, setTz] = useState("");
  const [interval, setInterval] = useState<"hour" | "day" | "month">("day");
  const [summary, setSummary] = useState<Summary | null>(null);
  const [timeline, setTimeline] = useState<Timeline | null>(null);
  const [groups, setGroups] = useState<Breakdown | null>(null);
  const [contacts, setContacts] = useState<Breakdown | null>(null);
  const [month, setMonth] = useState<Timeline | null>(null);
  const [monthly, setMonthly] = useState<Timeline | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [tick, setTick] = useState(0);

  useEffect(() => {
    const range = { from, to: `${to}T23:59:59`, ...(tz ? { tz } : {}) };
    const only = tz ? { tz } : {};
    void Promise.all([
      api.GET("/dashboard/summary", { params: { query: range } }),
      api.GET("/dashboard/timeline", { params: { query: { ...range, interval } } }),
      api.GET("/dashboard/by-group", { params: { query: range } }),
      api.GET("/dashboard/by-contact", { params: { query: { ...range, limit: 10 } } }),
      api.GET("/dashboard/current-month", { params: { query: only } }),
      api.GET("/dashboard/monthly", { params: { query: { ...only, months: 12 } } }),
    ]).then(([s, tl, g, c, m, mo]) => {
      const failed = [s, tl, g, c, m, mo].find((r) => r.error);
      setError(failed ? problemText(failed.error) : null);
      if (s.data) setSummary(s.data);
      if (tl.data) setTimeline(tl.data);
      if (g.data) setGroups(g.data);
      if (c.data) setContacts(c.data);
      if (m.data) setMonth(m.data);
      if (mo.data) setMonthly(mo.data);
    });
  }, [from, to, tz, interval, generation, tick]);
  // Campaign progress moves the figures: re-read at most every few seconds while it does.
  useLiveEvents((e) => { if (e.type.startsWith("campaign.")) setTick((n) => (n % 1000) + 1); });
  // The analytics windows fill in behind the events: re-read every few seconds while the page is open.
  useEffect(() => {
    const h = window.setInterval(() => setTick((n) => (n % 1000) + 1), 5000);
    return () => window.clearInterval(h);
  }, []);

  const totals = summary?.totals;
  const monthTotals = (month?.points ?? []).reduce((a, p) => ({ sent: a.sent + p.totals.sent, delivered: a.delivered + p.totals.delivered,
    read: a.read + p.totals.read, failed: a.failed + p.totals.failed }), { sent: 0, delivered: 0, read: 0, failed: 0 });
  const pie = (groups?.items ?? []).map((i) => ({ name: i.key || "—", value: i.totals.sent }));

  return (
    <section className="dashboard">
      <h1>{t.dashboard}</h1>
      <form className="row" onSubmit={(e) => e.preventDefault()}>
        <label>{t.from}<input type="date" value={from} onChange={(e) => setFrom(e.target.value)} /></label>
        <label>{t.to}<input type="date" value={to} onChange={(e) => setTo(e.target.value)} /></label>
        <label>{t.interval}
          <select value={interval} onChange={(e) => setInterval(e.target.value as "hour" | "day" | "month")}>
            <option value="hour">{t.hour}</option><option value="day">{t.day}</option><option value="month">{t.month}</option>
          </select>
        </label>
        <label>{t.timezone}<input placeholder={summary?.timezone ?? "America/Asuncion"} value={tz} onChange={(e) => setTz(e.target.value)} /></label>
      </form>
      {error ? <p role="alert" className="error">{error}</p> : null}
      {totals ? (
        <div className="kpis" data-testid="dashboard-totals">
          <div><small>{t.sentN}</small><strong data-testid="kpi-sent">{totals.sent}</strong></div>
          <div><small>{t.deliveredN}</small><strong>{totals.delivered}</strong></div>
          <div><small>{t.readN}</small><strong>{totals.read}</strong></div>
          <div><small>{t.failed}</small><strong>{totals.failed}</strong></div>
          <div><small>{t.campaigns}</small><strong>{summary?.campaigns}</strong></div>
          <div><small>{t.deliveryRate}</small><strong>{Math.round((summary?.deliveryRate ?? 0) * 100)} %</strong></div>
        </div>
      ) : null}
      {totals && totals.sent === 0 ? <p className="empty">{t.noFigures}</p> : null}
      <div className="charts">
        <figure>
          <figcaption>{t.timeline} ({summary?.timezone})</figcaption>
          <ResponsiveContainer width="100%" height={240}>
            <LineChart data={series(timeline)}>
              <CartesianGrid strokeDasharray="3 3" /><XAxis dataKey="period" /><YAxis allowDecimals={false} /><Tooltip /><Legend />
              <Line isAnimationActive={false} dataKey="sent" stroke={COLORS[0]} /><Line isAnimationActive={false} dataKey="delivered" stroke={COLORS[1]} />
              <Line isAnimationActive={false} dataKey="read" stroke={COLORS[2]} /><Line isAnimationActive={false} dataKey="failed" stroke={COLORS[3]} />
            </LineChart>
          </ResponsiveContainer>
        </figure>
        <figure>
          <figcaption>{t.byGroup}</figcaption>
          {pie.length === 0 ? <p className="empty">—</p> : (
            <ResponsiveContainer width="100%" height={240}>
              <PieChart>
                <Pie isAnimationActive={false} data={pie} dataKey="value" nameKey="name" outerRadius={90} label>
                  {pie.map((_, i) => <Cell key={i} fill={COLORS[i % COLORS.length]} />)}
                </Pie>
                <Tooltip /><Legend />
              </PieChart>
            </ResponsiveContainer>
          )}
        </figure>
        <figure>
          <figcaption>{t.currentMonth}: {monthTotals.sent} {t.sentN.toLowerCase()}, {monthTotals.read} {t.readN.toLowerCase()}</figcaption>
          <ResponsiveContainer width="100%" height={200}>
            <BarChart data={series(month)}>
              <XAxis dataKey="period" /><YAxis allowDecimals={false} /><Tooltip /><Bar isAnimationActive={false} dataKey="sent" fill={COLORS[0]} />
            </BarChart>
          </ResponsiveContainer>
        </figure>
        <figure>
          <figcaption>{t.monthly}</figcaption>
          <ResponsiveContainer width="100%" height={200}>
            <BarChart data={series(monthly)}>
              <XAxis dataKey="period" /><YAxis allowDecimals={false} /><Tooltip /><Legend />
              <Bar isAnimationActive={false} dataKey="sent" fill={COLORS[0]} /><Bar isAnimationActive={false} dataKey="read" fill={COLORS[2]} />
            </BarChart>
          </ResponsiveContainer>
        </figure>
      </div>
      <h2>{t.topContacts}</h2>
      <table>
        <tbody>
          {(contacts?.items ?? []).map((i) => <tr key={i.key}><td>{i.key}</td><td>{i.totals.sent}</td><td>{i.totals.read}</td></tr>)}
        </tbody>
      </table>
    </section>
  );
}
