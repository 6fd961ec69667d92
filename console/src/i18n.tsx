/** Spanish (the client's language, default) and English, switchable; the choice is remembered per browser. */
import { createContext, useContext, useState, type ReactNode } from "react";

const en = {
  login: "Log in", register: "Create account", email: "E-mail", password: "Password", name: "Name",
  company: "Company (optional)", forgot: "Forgot your password?", noAccount: "No account yet?",
  haveAccount: "Already have an account?", verify: "Verify e-mail", code: "6-digit code",
  resend: "Send the mail again", reset: "Reset password", newPassword: "New password", sendLink: "Send me a code",
  checkMail: "Check your e-mail: if the address can be used, a message is on its way.",
  verified: "E-mail verified. You can log in now.", passwordChanged: "Password changed. Log in with the new one.",
  sessions: "Numbers", chats: "Chats", campaigns: "Campaigns", dashboard: "Dashboard", logout: "Log out",
  logoutAll: "Log out everywhere", newSession: "Link a number", sessionName: "Name (optional)",
  noSessions: "No numbers yet. Link one: create it, then scan the QR with WhatsApp (Linked devices).",
  scanQr: "Scan with WhatsApp › Linked devices", pairCode: "Link with a code instead", phone: "Phone (E.164)",
  getCode: "Get code", start: "Start", stop: "Stop", unlink: "Log out device", del: "Delete", confirm: "Confirm",
  cancel: "Cancel", sure: "Are you sure?", noChats: "No chats yet. Link a number, then write to someone below.",
  pickChat: "Pick a chat, or start one with a phone number.", newChat: "New chat: phone number", open: "Open",
  message: "Message", send: "Send", attach: "Attach", older: "Load older messages", reply: "Reply", react: "React",
  edit: "Edit", remove: "Delete", typing: "typing…", recording: "recording audio…", voiceNote: "as voice note",
  replyingTo: "Replying to", save: "Save", live: "live", offline: "reconnecting…", noSession: "No connected number.",
  team: "Team and access", agents: "Agents", role: "Role", addAgent: "Add agent", noAgents: "No agents yet: add one to share the chats.",
  enable: "Enable", disable: "Disable", apiKeys: "API keys", scopes: "Only these numbers (none: all)", createKey: "Create key",
  keyOnce: "Copy it now, it is shown only once:", noKeys: "No API keys yet: create one for your servers.", allSessions: "all numbers",
  revoke: "Revoke", contacts: "Contacts", search: "Search", noContacts: "No contacts yet: they arrive once a number is linked.",
  newCampaign: "New campaign", noCampaigns: "No campaigns yet: import contacts in the address book, then create one.",
  failed: "Failed", close: "Close", details: "Details", audience: "Recipients", groups: "Groups",
  noGroups: "No groups yet: import a CSV in the address book.", orCsv: "or a CSV file", template: "Message template",
  preview: "Preview", skippedN: "skipped", invalidN: "invalid", pacing: "Pacing", pacingOn: "Pace the sends (recommended)",
  delayS: "Delay (s)", jitterS: "Jitter (s)", perHour: "Per hour", quietHours: "Respect quiet hours",
  createStart: "Create and start", createDraft: "Create without starting", pause: "Pause", resume: "Resume",
  retryFailed: "Retry failed", cancelCampaign: "Cancel campaign", exportCsv: "Export CSV", filter: "Filter", all: "All",
  from: "From", to: "To", interval: "By", hour: "hour", day: "day", month: "month", timezone: "Time zone",
  sentN: "Sent", deliveredN: "Delivered", readN: "Read", deliveryRate: "Delivery rate",
  noFigures: "Nothing sent in this range yet: run a campaign and its figures show up here.", timeline: "Timeline",
  byGroup: "By group", currentMonth: "This month", monthly: "Monthly trend", topContacts: "Top contacts",
  addressBook: "Address book", importCsv: "Import CSV", rowsRead: "rows read", imported: "imported", rejected: "rejected",
  line: "line", noAddressBook: "No contacts yet: import a CSV (numero,sustantivo,nombre,grupo).",
  operations: "Operations", deadLetters: "Dead letters", operatorToken: "Operator token", show: "Show",
  commands: "Commands", events: "Events", redrive: "Re-drive", noDeadLetters: "None: nothing failed for good.",
  recordVoice: "Record", stopRecording: "Stop and send", allChats: "all chats", assignChat: "Assign a chat (phone)",
  uploading: "Uploading", edited: "edited", noPhone: "No phone at hand? Scan with make dev's simulator", deleted: "This message was deleted",
};
type Dict = typeof en;
const es: Dict = {
  login: "Iniciar sesión", register: "Crear cuenta", email: "Correo", password: "Contraseña", name: "Nombre",
  company: "Empresa (opcional)", forgot: "¿Olvidaste tu contraseña?", noAccount: "¿Aún no tienes cuenta?",
  haveAccount: "¿Ya tienes cuenta?", verify: "Verificar correo", code: "Código de 6 dígitos",
  resend: "Enviar el correo de nuevo", reset: "Restablecer contraseña", newPassword: "Nueva contraseña",
  sendLink: "Enviarme un código",
  checkMail: "Revisa tu correo: si la dirección puede usarse, te llegará un mensaje.",
  verified: "Correo verificado. Ya puedes iniciar sesión.",
  passwordChanged: "Contraseña cambiada. Inicia sesión con la nueva.",
  sessions: "Números", chats: "Chats", campaigns: "Campañas", dashboard: "Panel", logout: "Cerrar sesión",
  logoutAll: "Cerrar todas las sesiones", newSession: "Vincular un número", sessionName: "Nombre (opcional)",
  noSessions: "Aún no hay números. Vincula uno: créalo y escanea el QR con WhatsApp (Dispositivos vinculados).",
  scanQr: "Escanea con WhatsApp › Dispositivos vinculados", pairCode: "Vincular con un código", phone: "Teléfono (E.164)",
  getCode: "Obtener código", start: "Iniciar", stop: "Detener", unlink: "Desvincular", del: "Eliminar",
  confirm: "Confirmar", cancel: "Cancelar", sure: "¿Seguro?",
  noChats: "Aún no hay chats. Vincula un número y escribe a alguien abajo.",
  pickChat: "Elige un chat o empieza uno con un número.", newChat: "Nuevo chat: número", open: "Abrir",
  message: "Mensaje", send: "Enviar", attach: "Adjuntar", older: "Cargar mensajes anteriores", reply: "Responder",
  react: "Reaccionar", edit: "Editar", remove: "Eliminar", typing: "escribiendo…", recording: "grabando audio…",
  voiceNote: "como nota de voz", replyingTo: "Respondiendo a", save: "Guardar", live: "en vivo",
  offline: "reconectando…", noSession: "Ningún número conectado.",
  newCampaign: "Nueva campaña", noCampaigns: "Aún no hay campañas: importa contactos en la agenda y crea una.",
  failed: "Fallidos", close: "Cerrar", details: "Detalles", audience: "Destinatarios", groups: "Grupos",
  noGroups: "Aún no hay grupos: importa un CSV en la agenda.", orCsv: "o un archivo CSV", template: "Plantilla del mensaje",
  preview: "Vista previa", skippedN: "omitidos", invalidN: "inválidos", pacing: "Ritmo de envío",
  pacingOn: "Espaciar los envíos (recomendado)", delayS: "Pausa (s)", jitterS: "Variación (s)", perHour: "Por hora",
  quietHours: "Respetar horas de silencio", createStart: "Crear e iniciar", createDraft: "Crear sin iniciar",
  pause: "Pausar", resume: "Reanudar", retryFailed: "Reintentar fallidos", cancelCampaign: "Cancelar campaña",
  exportCsv: "Exportar CSV", filter: "Filtrar", all: "Todos", from: "Desde", to: "Hasta", interval: "Por",
  hour: "hora", day: "día", month: "mes", timezone: "Zona horaria", sentN: "Enviados", deliveredN: "Entregados",
  readN: "Leídos", deliveryRate: "Tasa de entrega",
  noFigures: "Nada enviado en este rango: lanza una campaña y sus cifras aparecerán aquí.", timeline: "Línea de tiempo",
  byGroup: "Por grupo", currentMonth: "Este mes", monthly: "Tendencia mensual", topContacts: "Contactos principales",
  addressBook: "Agenda", importCsv: "Importar CSV", rowsRead: "filas leídas", imported: "importadas",
  rejected: "rechazadas", line: "línea", noAddressBook: "Aún no hay contactos: importa un CSV (numero,sustantivo,nombre,grupo).",
  operations: "Operación", deadLetters: "Mensajes fallidos (dead letters)", operatorToken: "Token de operador",
  show: "Mostrar", commands: "Comandos", events: "Eventos", redrive: "Reenviar", noDeadLetters: "Ninguno: nada falló definitivamente.",
  recordVoice: "Grabar", stopRecording: "Detener y enviar", allChats: "todos los chats",
  assignChat: "Asignar un chat (número)",
  team: "Equipo y acceso", agents: "Agentes", role: "Rol", addAgent: "Añadir agente",
  noAgents: "Aún no hay agentes: añade uno para compartir los chats.", enable: "Activar", disable: "Desactivar",
  apiKeys: "Claves API", scopes: "Solo estos números (ninguno: todos)", createKey: "Crear clave",
  keyOnce: "Cópiala ahora, solo se muestra una vez:", noKeys: "Aún no hay claves API: crea una para tus servidores.",
  allSessions: "todos los números", revoke: "Revocar", contacts: "Contactos", search: "Buscar",
  noContacts: "Aún no hay contactos: llegan al vincular un número.",
  noPhone: "¿Sin teléfono a mano? Escanea con el simulador de make dev", uploading: "Subiendo", edited: "editado",
  deleted: "Se eliminó este mensaje",
};

export type Lang = "es" | "en";
const dicts: Record<Lang, Dict> = { es, en };
const Ctx = createContext<{ t: Dict; lang: Lang; setLang(l: Lang): void }>({ t: es, lang: "es", setLang: () => {} });

export function I18n({ children }: { children: ReactNode }) {
  const [lang, set] = useState<Lang>(() => (localStorage.getItem("zs.lang") === "en" ? "en" : "es"));
  const setLang = (l: Lang) => {
    localStorage.setItem("zs.lang", l);
    document.documentElement.lang = l;
    set(l);
  };
  return <Ctx.Provider value={{ t: dicts[lang], lang, setLang }}>{children}</Ctx.Provider>;
}

export const useI18n = () => useContext(Ctx);
