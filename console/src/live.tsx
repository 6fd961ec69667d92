/** One tenant WebSocket for the whole console, shared by the pages through a tiny event bus. */
import { createContext, useCallback, useContext, useEffect, useRef, useState, type ReactNode } from "react";
import { auth } from "./api/client";
import { LiveSocket, type LiveEvent, type LiveState } from "./api/live";

type Listener = (event: LiveEvent) => void;
interface Live {
  state: LiveState;
  /** Increments on every snapshot: pages re-read their data when it changes (a resumed connection). */
  generation: number;
  subscribe(fn: Listener): () => void;
}

const Ctx = createContext<Live>({ state: "stopped", generation: 0, subscribe: () => () => {} });

export function LiveProvider({ children }: { children: ReactNode }) {
  const listeners = useRef(new Set<Listener>());
  const [state, setState] = useState<LiveState>("connecting");
  const [generation, setGeneration] = useState(0);
  useEffect(() => {
    const socket = new LiveSocket({
      token: (refresh) => (refresh ? auth.refresh() : auth.getToken()),
      onEvent: (e) => listeners.current.forEach((fn) => fn(e)),
      onSnapshot: (e) => {
        setGeneration((g) => g + 1);
        listeners.current.forEach((fn) => fn(e));
      },
      onState: (s) => setState(s),
    });
    socket.start();
    return () => socket.stop();
  }, []);
  const subscribe = useCallback((fn: Listener) => {
    listeners.current.add(fn);
    return () => {
      listeners.current.delete(fn);
    };
  }, []);
  return <Ctx.Provider value={{ state, generation, subscribe }}>{children}</Ctx.Provider>;
}

export const useLive = () => useContext(Ctx);

/** Run `fn` for each live event while the component is mounted. */
export function useLiveEvents(fn: Listener): void {
  const { subscribe } = useLive();
  const ref = useRef(fn);
  ref.current = fn;
  useEffect(() => subscribe((e) => ref.current(e)), [subscribe]);
}
