/**
 * Chats of one number: the list (unread counts, last message) and a conversation with backwards infinite
 * scroll (the API's cursor), sending text/media/voice notes, replies, reactions, edits, deletes, receipt
 * ticks and the contact's typing indicator, all live.
 *
 * Live frames are merged into what is on screen at once (the projector may write the read model a moment
 * after the gateway forwards the event); the read models are re-read shortly after, and on every snapshot.
 */
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { api, auth, problemText, type Schemas } from "../api/client";
import type { LiveEvent } from "../api/live";
import { useI18n } from "../i18n";
import { useLive, useLiveEvents } from "../live";

type Session = Schemas["SessionView"];
type Chat = Schemas["ChatView"];
type Message = Schemas["MessageView"];
type Kind = "image" | "video" | "audio" | "document";

const PAGE = 30;
const ORDER = ["pending", "server_ack", "delivered", "read", "played"];

/** Receipt ticks: ✓ sent, ✓✓ delivered, blue ✓✓ read. Statuses only move forward. */
export function ticks(status: string | null | undefined): { mark: string; label: string; cls: string } {
  switch (status) {
    case "server_ack": return { mark: "✓", label: "sent", cls: "tick" };
    case "delivered": return { mark: "✓✓", label: "delivered", cls: "tick" };
    case "read":
    case "played": return { mark: "✓✓", label: "read", cls: "tick read" };
    default: return { mark: "🕓", label: "pending", cls: "tick" };
  }
}

function later(a: string | null | undefined, b: string | null | undefined): string | null | undefined {
  return ORDER.indexOf(b ?? "") > ORDER.indexOf(a ?? "") ? b : a;
}

function jidOf(phoneOrJid: string): string {
  const v = phoneOrJid.trim();
  return v.includes("@") ? v : `${v.replace(/[^0-9]/g, "")}@s.whatsapp.net`;
}

function kindOf(file: File): Kind {
  if (file.type.startsWith("image/")) return "image";
  if (file.type.startsWith("video/")) return "video";
  if (file.type.startsWith("audio/")) return "audio";
  return "document";
}

/** POST /media with upload progress (fetch cannot report it; XHR can). Same origin, bearer token. */
async function upload(file: File, kind: Kind, sessionId: string, onProgress: (pct: number) => void)
  : Promise<Schemas["UploadView"]> {
  const token = await auth.getToken();
  const form = new FormData();
  form.append("kind", kind); // before the file: the API enforces the kind's size limit while streaming
  form.append("sessionId", sessionId);
  form.append("file", file);
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/media");
    if (token) xhr.setRequestHeader("Authorization", `Bearer ${token}`);
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(Math.round((100 * e.loaded) / e.total));
    xhr.onload = () => {
      let body: unknown = null;
      try { body = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body as Schemas["UploadView"]);
      else reject(new Error(problemText(body, `upload failed (HTTP ${xhr.status})`)));
    };
    xhr.onerror = () => reject(new Error("upload failed (network)"));
    xhr.send(form);
  });
}

export function Chats() {
  const { t } = useI18n();
  const { generation } = useLive();
  const [sessions, setSessions] = useState<Session[]>([]);
  const [sessionId, setSessionId] = useState<string | null>(null);
  const [chats, setChats] = useState<Chat[] | null>(null);
  const [open, setOpen] = useState<string | null>(null);
  const [newChat, setNewChat] = useState("");
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    void api.GET("/sessions").then(({ data, error }) => {
      if (error) return setError(problemText(error));
      setSessions(data.sessions);
      setSessionId((cur) => cur ?? data.sessions.find((s) => s.status === "connected")?.id
        ?? data.sessions[0]?.id ?? null);
    });
  }, [generation]);

  const loadChats = useCallback(async () => {
    if (!sessionId) return;
    const { data, error } = await api.GET("/chats", { params: { query: { sessionId } } });
    if (error) setError(problemText(error));
    else setChats(data.chats);
  }, [sessionId]);
  useEffect(() => { void loadChats(); }, [loadChats, generation]);

  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  useLiveEvents((e) => {
    if (e.sessionId !== sessionId) return;
    if (e.type === "session.messages.upsert" || e.type === "session.messages.update" || e.type.startsWith("session.chats")) {
      if (timer.current) clearTimeout(timer.current);
      timer.current = setTimeout(() => void loadChats(), 400);
    }
  });

  return (
    <section className="chats">
      <aside>
        <label>{t.sessions}
          <select value={sessionId ?? ""} onChange={(e) => { setSessionId(e.target.value); setOpen(null); }}
            aria-label={t.sessions}>
            {sessions.map((s) => <option key={s.id} value={s.id}>{s.name || (s.phone ? `+${s.phone}` : s.id.slice(0, 8))} · {s.status}</option>)}
          </select>
        </label>
        {!sessionId ? <p className="empty">{t.noSession}</p> : null}
        <form className="row" onSubmit={(e) => { e.preventDefault(); if (newChat.trim()) setOpen(jidOf(newChat)); setNewChat(""); }}>
          <input aria-label={t.newChat} placeholder={t.newChat} value={newChat} inputMode="tel"
            onChange={(e) => setNewChat(e.target.value)} data-testid="new-chat" />
          <button type="submit">{t.open}</button>
        </form>
        {error ? <p role="alert" className="error">{error}</p> : null}
        {chats && chats.length === 0 ? <p className="empty">{t.noChats}</p> : null}
        <ul className="chatlist">
          {chats?.map((c) => (
            <li key={c.jid}>
              <button className={open === c.jid ? "active" : ""} onClick={() => setOpen(c.jid)} data-testid={`chat-${c.jid}`}>
                <span className="jid">{c.jid.split("@")[0]}</span>
                {c.unreadCount > 0 ? <span className="unread" aria-label="unread">{c.unreadCount}</span> : null}
                <small>{c.lastMessage.text ?? ""}</small>
              </button>
            </li>
          ))}
        </ul>
      </aside>
      {sessionId && open ? <Conversation key={`${sessionId}/${open}`} sessionId={sessionId} jid={open} />
        : <p className="empty">{t.pickChat}</p>}
    </section>
  );
}

function mergeUpsert(list: Message[], e: LiveEvent, jid: string): Message[] {
  const incoming = (e.payload.messages as Array<Record<string, unknown>> | undefined) ?? [];
  let out = list;
  for (const m of incoming) {
    if (m.remoteJid !== jid) continue;
    const id = m.id as string;
    const existing = out.find((x) => x.id === id);
    const merged: Message = {
      ...(existing ?? { forward: false, forwarded: false, isDeleted: false, isEdited: false, reactions: [] }),
      id, chatJid: jid, fromMe: Boolean(m.fromMe), timestamp: Number(m.timestamp), type: String(m.type ?? "conversation"),
      text: (m.text as string | null | undefined) ?? existing?.text ?? null,
      status: later(existing?.status, m.status as string | null | undefined) ?? null,
      replyTo: (m.replyToMessageId as string | null | undefined) ?? existing?.replyTo ?? null,
    } as Message;
    out = existing ? out.map((x) => (x.id === id ? merged : x)) : [...out, merged];
  }
  return out;
}

function Conversation({ sessionId, jid }: { sessionId: string; jid: string }) {
  const { t } = useI18n();
  const { generation } = useLive();
  const [messages, setMessages] = useState<Message[]>([]);
  const [cursor, setCursor] = useState<string | null | undefined>(undefined);
  const [text, setText] = useState("");
  const [replyTo, setReplyTo] = useState<Message | null>(null);
  const [editing, setEditing] = useState<Message | null>(null);
  const [progress, setProgress] = useState<number | null>(null);
  const [ptt, setPtt] = useState(false);
  const [presence, setPresence] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const scroller = useRef<HTMLDivElement>(null);
  const topSentinel = useRef<HTMLDivElement>(null);
  const lastTyping = useRef(0);
  const marked = useRef(new Set<string>());

  const sorted = useMemo(() => [...messages].sort((a, b) => a.timestamp - b.timestamp), [messages]);

  /** Merge a page from the API (it is the truth; live-merged statuses only move forward). */
  const mergePage = (page: Message[]) => setMessages((cur) => {
    const byId = new Map(cur.map((m) => [m.id, m]));
    for (const m of page) {
      const old = byId.get(m.id);
      byId.set(m.id, old ? { ...m, status: later(old.status, m.status) ?? null } : m);
    }
    return [...byId.values()];
  });

  const loadNewest = useCallback(async () => {
    const { data, error } = await api.GET("/chats/{jid}/messages", {
      params: { path: { jid }, query: { sessionId, limit: PAGE } } });
    if (error) return setError(problemText(error));
    mergePage(data.messages);
    setCursor((c) => (c === undefined ? data.nextCursor ?? null : c));
    // Read receipts for what the person now sees, each message once (the list is re-read on every event).
    const unread = data.messages.filter((m) => !m.fromMe && m.status !== "read" && !marked.current.has(m.id))
      .map((m) => m.id);
    unread.forEach((id) => marked.current.add(id));
    if (unread.length) void api.POST("/chats/{jid}/read", { params: { path: { jid } }, body: { messageIds: unread } });
  }, [jid, sessionId]);

  const loadOlder = useCallback(async () => {
    if (!cursor) return;
    const el = scroller.current;
    const before = el ? el.scrollHeight - el.scrollTop : 0;
    const { data, error } = await api.GET("/chats/{jid}/messages", {
      params: { path: { jid }, query: { sessionId, limit: PAGE, cursor } } });
    if (error) return setError(problemText(error));
    mergePage(data.messages);
    setCursor(data.nextCursor ?? null);
    // Keep the reader's place: the page grows above what they are looking at.
    requestAnimationFrame(() => { if (el) el.scrollTop = el.scrollHeight - before; });
  }, [cursor, jid, sessionId]);

  useEffect(() => { void loadNewest(); }, [loadNewest, generation]);
  useEffect(() => { void api.POST("/chats/{jid}/presence/subscribe", { params: { path: { jid } } }); }, [jid]);

  // Infinite scroll backwards: when the top comes into view, read the next older page.
  useEffect(() => {
    const el = topSentinel.current;
    if (!el || typeof IntersectionObserver === "undefined") return;
    const io = new IntersectionObserver((entries) => entries[0]?.isIntersecting && void loadOlder(),
      { root: scroller.current });
    io.observe(el);
    return () => io.disconnect();
  }, [loadOlder]);

  const atBottom = useRef(true);
  useEffect(() => {
    const el = scroller.current;
    if (el && atBottom.current) el.scrollTop = el.scrollHeight;
  }, [sorted.length]);

  const refresh = useRef<ReturnType<typeof setTimeout> | null>(null);
  useLiveEvents((e) => {
    if (e.sessionId !== sessionId) return;
    if (e.type === "session.messages.upsert") {
      setMessages((cur) => mergeUpsert(cur, e, jid));
    } else if (e.type === "session.messages.update") {
      const updates = (e.payload.updates as Array<{ messageId: string; status: string }> | undefined) ?? [];
      setMessages((cur) => cur.map((m) => {
        const u = updates.find((x) => x.messageId === m.id);
        return u ? { ...m, status: later(m.status, u.status) ?? null } : m;
      }));
    } else if (e.type === "session.presence.update" && e.payload.chatJid === jid) {
      const entry = (e.payload.updates as Array<{ presence: string }> | undefined)?.[0];
      setPresence(entry?.presence ?? null);
      return;
    } else if (!e.type.startsWith("session.messages")) {
      return;
    }
    if (refresh.current) clearTimeout(refresh.current);
    refresh.current = setTimeout(() => void loadNewest(), 800);
  });

  const run = async (fn: () => Promise<{ error?: unknown }>) => {
    setError(null);
    const r = await fn();
    if (r.error) setError(problemText(r.error));
  };

  const send = async () => {
    const content = text.trim();
    if (!content) return;
    if (editing) {
      await run(() => api.PATCH("/chats/{jid}/messages/{message_id}", {
        params: { path: { jid, message_id: editing.id } }, body: { content } }));
      setEditing(null);
    } else {
      await run(() => api.POST("/chats/{jid}/messages", { params: { path: { jid } },
        body: { content, sessionId, replyToMessageId: replyTo?.id ?? null, ptt: false } }));
      setReplyTo(null);
    }
    setText("");
    atBottom.current = true;
  };

  const attach = async (file: File, voice = false) => {
    setError(null);
    setProgress(0);
    try {
      const kind = kindOf(file);
      const up = await upload(file, kind, sessionId, setProgress);
      await run(() => api.POST("/chats/{jid}/messages", { params: { path: { jid } },
        body: { sessionId, media: { mediaId: up.mediaId, kind: up.kind as Kind }, caption: text.trim() || null,
          ptt: kind === "audio" && (ptt || voice) } }));
      setText("");
    } catch (err) {
      setError(problemText(err));
    } finally {
      setProgress(null);
    }
  };

  // Record a voice note in the browser (MediaRecorder gives WebM/Opus, which the API accepts for voice notes
  // and converts), then send it like an attached audio with ptt.
  const recorder = useRef<MediaRecorder | null>(null);
  const [recording, setRecording] = useState(false);
  const record = async () => {
    if (recorder.current) {
      recorder.current.stop();
      return;
    }
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      const rec = new MediaRecorder(stream);
      const chunks: Blob[] = [];
      rec.ondataavailable = (e) => chunks.push(e.data);
      rec.onstop = () => {
        stream.getTracks().forEach((tr) => tr.stop());
        recorder.current = null;
        setRecording(false);
        const type = rec.mimeType || "audio/webm";
        void attach(new File(chunks, `voice-${Date.now()}.webm`, { type }), true);
      };
      recorder.current = rec;
      rec.start();
      setRecording(true);
      void api.POST("/chats/{jid}/presence", { params: { path: { jid } }, body: { presence: "recording" } });
    } catch (err) {
      setError(problemText(err, "microphone not available"));
    }
  };

  const typing = (value: string) => {
    setText(value);
    const now = Date.now();
    if (now - lastTyping.current > 4000) {
      lastTyping.current = now;
      void api.POST("/chats/{jid}/presence", { params: { path: { jid } }, body: { presence: "composing" } });
    }
  };

  return (
    <div className="conversation">
      <header>
        <strong>{jid.split("@")[0]}</strong>{" "}
        {presence === "composing" ? <em data-testid="presence">{t.typing}</em>
          : presence === "recording" ? <em data-testid="presence">{t.recording}</em> : null}
      </header>
      <div className="messages" ref={scroller} data-testid="messages"
        onScroll={(e) => { const el = e.currentTarget; atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40; }}>
        <div ref={topSentinel} />
        {cursor ? <button onClick={() => void loadOlder()}>{t.older}</button> : null}
        {sorted.map((m) => {
          const tk = ticks(m.status);
          const quoted = m.replyTo ? messages.find((x) => x.id === m.replyTo) : null;
          return (
            <div key={m.id} className={`msg ${m.fromMe ? "me" : "them"}`} data-testid="message">
              {quoted ? <blockquote>{quoted.text ?? "…"}</blockquote> : null}
              {m.isDeleted ? <em>{t.deleted}</em> : <span className="text">{m.text ?? ""}</span>}
              {m.media && m.media.kind === "image" && m.media.url ? <img src={m.media.url} alt={m.media.fileName ?? "image"} className="thumb" /> : null}
              {m.media && m.media.kind !== "image" ? <a href={m.media.url ?? "#"} target="_blank" rel="noreferrer">📎 {m.media.fileName ?? m.media.kind}</a> : null}
              <span className="meta">
                {m.isEdited ? <small>{t.edited} </small> : null}
                {new Date(m.timestamp * 1000).toLocaleTimeString()}
                {m.fromMe ? <span className={tk.cls} title={tk.label} aria-label={tk.label} data-testid="ticks" data-status={tk.label}> {tk.mark}</span> : null}
              </span>
              {m.reactions?.length ? <span className="reactions">{m.reactions.map((r) => `${r.emoji}${r.count > 1 ? r.count : ""}`).join(" ")}</span> : null}
              {!m.isDeleted ? (
                <span className="msg-actions">
                  <button onClick={() => setReplyTo(m)} aria-label={t.reply}>↩</button>
                  <button aria-label={t.react} onClick={() => void run(() => api.POST("/chats/{jid}/messages/{message_id}/reactions",
                    { params: { path: { jid, message_id: m.id } }, body: { emoji: "👍" } }))}>👍</button>
                  {m.fromMe ? <>
                    <button aria-label={t.edit} onClick={() => { setEditing(m); setText(m.text ?? ""); }}>✎</button>
                    <button aria-label={t.remove} onClick={() => { if (window.confirm(t.sure)) void run(() => api.DELETE(
                      "/chats/{jid}/messages/{message_id}", { params: { path: { jid, message_id: m.id } } })); }}>🗑</button>
                  </> : null}
                </span>
              ) : null}
            </div>
          );
        })}
      </div>
      {replyTo || editing ? (
        <div className="row quote">
          {replyTo ? `${t.replyingTo}: ${replyTo.text ?? ""}` : `${t.edit}: ${editing?.text ?? ""}`}
          <button onClick={() => { setReplyTo(null); setEditing(null); setText(""); }} aria-label={t.cancel}>✕</button>
        </div>
      ) : null}
      {progress !== null ? <progress max={100} value={progress} aria-label={t.uploading}>{progress}%</progress> : null}
      {error ? <p role="alert" className="error">{error}</p> : null}
      <form className="composer row" onSubmit={(e) => { e.preventDefault(); void send(); }}>
        <label className="file">{t.attach}
          <input type="file" accept="image/*,video/*,audio/*,application/pdf,.doc,.docx,.xls,.xlsx,.txt"
            data-testid="attach" onChange={(e) => { const f = e.target.files?.[0]; if (f) void attach(f); e.target.value = ""; }} />
        </label>
        <label className="ptt"><input type="checkbox" checked={ptt} onChange={(e) => setPtt(e.target.checked)} /> {t.voiceNote}</label>
        {typeof MediaRecorder !== "undefined" ? (
          <button type="button" onClick={() => void record()} aria-pressed={recording} className={recording ? "danger" : ""}>
            {recording ? t.stopRecording : t.recordVoice}
          </button>
        ) : null}
        <input className="grow" aria-label={t.message} placeholder={t.message} value={text}
          onChange={(e) => typing(e.target.value)} data-testid="composer" />
        <button type="submit" data-testid="send">{editing ? t.save : t.send}</button>
      </form>
    </div>
  );
}
