import { useEffect, useState, type ReactNode } from "react";
import { Navigate, NavLink, Route, Routes, useLocation, useNavigate } from "react-router-dom";
import { api, auth } from "./api/client";
import type { User } from "./api/auth";
import { useI18n } from "./i18n";
import { LiveProvider, useLive } from "./live";
import { Login, Register, Reset, Verify } from "./pages/Auth";
import { Sessions } from "./pages/Sessions";
import { Chats } from "./pages/Chats";
import { Contacts, Team } from "./pages/Team";
import { Operations } from "./pages/Operations";
import { Campaigns } from "./pages/Campaigns";
import { Dashboard } from "./pages/Dashboard";
import { AddressBook } from "./pages/AddressBook";

/** Restores the login from the refresh cookie once, then follows the Auth object. */
function useUser(): { user: User | null; ready: boolean } {
  const [user, setUser] = useState<User | null>(auth.user);
  const [ready, setReady] = useState(auth.loggedIn);
  useEffect(() => {
    const off = auth.onChange(setUser);
    if (!auth.loggedIn) void auth.refresh().finally(() => setReady(true));
    return off;
  }, []);
  return { user, ready };
}

export function App() {
  const { user, ready } = useUser();
  const location = useLocation();
  if (!ready) return <p className="center">…</p>;
  const authed = (page: ReactNode) =>
    user ? page : <Navigate to={`/login?next=${encodeURIComponent(location.pathname)}`} replace />;
  return (
    <Routes>
      <Route path="/login" element={user ? <Navigate to="/console" replace /> : <Login />} />
      <Route path="/register" element={<Register />} />
      <Route path="/verify" element={<Verify />} />
      <Route path="/reset-password" element={<Reset />} />
      <Route path="/console/*" element={authed(<LiveProvider><Shell user={user!} /></LiveProvider>)} />
      <Route path="*" element={<Navigate to={user ? "/console" : "/login"} replace />} />
    </Routes>
  );
}

function Shell({ user }: { user: User }) {
  const { t, lang, setLang } = useI18n();
  const { state } = useLive();
  const navigate = useNavigate();
  const logout = async (all: boolean) => {
    if (all) await api.POST("/auth/logout-all");
    else await api.POST("/auth/logout");
    auth.clear();
    navigate("/login");
  };
  return (
    <div className="shell">
      <header>
        <strong>zapstream</strong>
        <nav aria-label="main">
          <NavLink to="/console/sessions">{t.sessions}</NavLink>
          <NavLink to="/console/chats">{t.chats}</NavLink>
          <NavLink to="/console/contacts">{t.contacts}</NavLink>
          <NavLink to="/console/address-book">{t.addressBook}</NavLink>
          <NavLink to="/console/campaigns">{t.campaigns}</NavLink>
          <NavLink to="/console/dashboard">{t.dashboard}</NavLink>
          {user.role === "agent" ? null : <NavLink to="/console/team">{t.team}</NavLink>}
          <NavLink to="/console/operations">{t.operations}</NavLink>
        </nav>
        <span className={`live ${state}`} data-testid="live-state" title={state}>
          {state === "open" ? `● ${t.live}` : `○ ${t.offline}`}
        </span>
        <span className="who">{user.email}</span>
        <label>
          <span className="sr">Language</span>
          <select value={lang} onChange={(e) => setLang(e.target.value as "es" | "en")} aria-label="Language">
            <option value="es">ES</option>
            <option value="en">EN</option>
          </select>
        </label>
        <button onClick={() => void logout(false)}>{t.logout}</button>
        <button onClick={() => void logout(true)}>{t.logoutAll}</button>
      </header>
      <main>
        <Routes>
          <Route path="sessions" element={<Sessions />} />
          <Route path="chats" element={<Chats />} />
          <Route path="contacts" element={<Contacts />} />
          <Route path="address-book" element={<AddressBook />} />
          <Route path="campaigns" element={<Campaigns />} />
          <Route path="dashboard" element={<Dashboard />} />
          <Route path="team" element={<Team />} />
          <Route path="operations" element={<Operations />} />
          <Route path="*" element={<Navigate to="sessions" replace />} />
        </Routes>
      </main>
    </div>
  );
}
