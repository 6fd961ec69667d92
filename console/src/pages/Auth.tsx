/** Seed 000's account flows: login, register, e-mail verification (code or link), password reset. */
import { useEffect, useState, type FormEvent, type ReactNode } from "react";
import { Link, useNavigate, useSearchParams } from "react-router-dom";
import { api, auth, problemText } from "../api/client";
import { useI18n } from "../i18n";

function Card({ title, children }: { title: string; children: ReactNode }) {
  return (
    <div className="auth">
      <h1>zapstream</h1>
      <h2>{title}</h2>
      {children}
    </div>
  );
}

function Field(props: { label: string; type?: string; value: string; set(v: string): void; name: string;
  required?: boolean; autoComplete?: string }) {
  return (
    <label>
      {props.label}
      <input name={props.name} type={props.type ?? "text"} value={props.value} required={props.required ?? true}
        autoComplete={props.autoComplete} onChange={(e) => props.set(e.target.value)} />
    </label>
  );
}

function useForm() {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const run = (fn: () => Promise<void>) => async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await fn();
    } catch (err) {
      setError(problemText(err));
    } finally {
      setBusy(false);
    }
  };
  return { error, setError, busy, run };
}

const Err = ({ error }: { error: string | null }) => (error ? <p role="alert" className="error">{error}</p> : null);

export function Login() {
  const { t } = useI18n();
  const [params] = useSearchParams();
  const navigate = useNavigate();
  const [email, setEmail] = useState(params.get("email") ?? "");
  const [password, setPassword] = useState("");
  const { error, busy, run } = useForm();
  const submit = run(async () => {
    const { data, error } = await api.POST("/auth/login", { body: { email, password } });
    if (error) throw error;
    auth.set(data);
    const next = params.get("next");
    navigate(next && next.startsWith("/console") ? next : "/console/sessions");
  });
  return (
    <Card title={t.login}>
      <form onSubmit={submit}>
        <Field name="email" label={t.email} type="email" value={email} set={setEmail} autoComplete="username" />
        <Field name="password" label={t.password} type="password" value={password} set={setPassword}
          autoComplete="current-password" />
        <Err error={error} />
        <button type="submit" disabled={busy}>{t.login}</button>
      </form>
      <p><Link to="/reset-password">{t.forgot}</Link></p>
      <p>{t.noAccount} <Link to="/register">{t.register}</Link></p>
    </Card>
  );
}

export function Register() {
  const { t } = useI18n();
  const [name, setName] = useState("");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [company, setCompany] = useState("");
  const [done, setDone] = useState(false);
  const { error, busy, run } = useForm();
  const submit = run(async () => {
    const { error } = await api.POST("/users", {
      body: { name, email, password, tenantName: company || null },
    });
    if (error) throw error;
    setDone(true);
  });
  if (done) {
    return (
      <Card title={t.register}>
        <p role="status">{t.checkMail}</p>
        <p><Link to="/verify">{t.verify}</Link> · <Link to="/login">{t.login}</Link></p>
      </Card>
    );
  }
  return (
    <Card title={t.register}>
      <form onSubmit={submit}>
        <Field name="name" label={t.name} value={name} set={setName} autoComplete="name" />
        <Field name="email" label={t.email} type="email" value={email} set={setEmail} autoComplete="username" />
        <Field name="password" label={t.password} type="password" value={password} set={setPassword}
          autoComplete="new-password" />
        <Field name="company" label={t.company} value={company} set={setCompany} required={false} />
        <Err error={error} />
        <button type="submit" disabled={busy}>{t.register}</button>
      </form>
      <p>{t.haveAccount} <Link to="/login">{t.login}</Link></p>
    </Card>
  );
}

/** The mail's link carries userId and token (verified at once); the code needs the link's userId too. */
export function Verify() {
  const { t } = useI18n();
  const [params] = useSearchParams();
  const userId = params.get("userId") ?? "";
  const [code, setCode] = useState("");
  const [email, setEmail] = useState("");
  const [ok, setOk] = useState(false);
  const [resent, setResent] = useState(false);
  const { error, busy, run, setError } = useForm();
  const verify = async (body: { code?: string; token?: string }) => {
    const { error } = await api.POST("/users/{user_id}/verify", { params: { path: { user_id: userId } }, body });
    if (error) throw error;
    setOk(true);
  };
  useEffect(() => {
    const token = params.get("token");
    if (userId && token) verify({ token }).catch((e) => setError(problemText(e)));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  if (ok) {
    return (
      <Card title={t.verify}>
        <p role="status">{t.verified}</p>
        <Link to="/login">{t.login}</Link>
      </Card>
    );
  }
  return (
    <Card title={t.verify}>
      {userId ? (
        <form onSubmit={run(() => verify({ code }))}>
          <Field name="code" label={t.code} value={code} set={setCode} autoComplete="one-time-code" />
          <button type="submit" disabled={busy}>{t.verify}</button>
        </form>
      ) : null}
      <Err error={error} />
      <form onSubmit={run(async () => {
        const { error } = await api.POST("/auth/resend-verification", { body: { email } });
        if (error) throw error;
        setResent(true);
      })}>
        <Field name="email" label={t.email} type="email" value={email} set={setEmail} />
        <button type="submit" disabled={busy}>{t.resend}</button>
      </form>
      {resent ? <p role="status">{t.checkMail}</p> : null}
      <p><Link to="/login">{t.login}</Link></p>
    </Card>
  );
}

/** Step 1 mails a code; step 2 (also reached from the mail's link) sets the new password. */
export function Reset() {
  const { t } = useI18n();
  const [params] = useSearchParams();
  const token = params.get("token");
  const [email, setEmail] = useState(params.get("email") ?? "");
  const [code, setCode] = useState("");
  const [password, setPassword] = useState("");
  const [sent, setSent] = useState(false);
  const [changed, setChanged] = useState(false);
  const { error, busy, run } = useForm();
  if (changed) {
    return (
      <Card title={t.reset}>
        <p role="status">{t.passwordChanged}</p>
        <Link to={`/login?email=${encodeURIComponent(email)}`}>{t.login}</Link>
      </Card>
    );
  }
  return (
    <Card title={t.reset}>
      {!sent && !token ? (
        <form onSubmit={run(async () => {
          const { error } = await api.POST("/auth/password-reset", { body: { email } });
          if (error) throw error;
          setSent(true);
        })}>
          <Field name="email" label={t.email} type="email" value={email} set={setEmail} />
          <button type="submit" disabled={busy}>{t.sendLink}</button>
        </form>
      ) : (
        <form onSubmit={run(async () => {
          const body = token ? { email, token, newPassword: password } : { email, code, newPassword: password };
          const { error } = await api.POST("/auth/password-reset/confirm", { body });
          if (error) throw error;
          setChanged(true);
        })}>
          {sent ? <p role="status">{t.checkMail}</p> : null}
          <Field name="email" label={t.email} type="email" value={email} set={setEmail} />
          {token ? null : <Field name="code" label={t.code} value={code} set={setCode} />}
          <Field name="newPassword" label={t.newPassword} type="password" value={password} set={setPassword}
            autoComplete="new-password" />
          <button type="submit" disabled={busy}>{t.reset}</button>
        </form>
      )}
      <Err error={error} />
      <p><Link to="/login">{t.login}</Link></p>
    </Card>
  );
}
