// The signed-in user: the user token lives in this tab's sessionStorage (it survives a reload,
// not the tab), never in a URL, a cookie or localStorage.

const KEY = "convene.user_token";

export interface User {
  token: string;
  id: string;
  name: string;
  expiresAt: number;
  /** A guest without an account: `token` is their guest token for one meeting. */
  guest?: boolean;
}

/** The claims we show; the token is verified by the services, not here. */
function claims(token: string): { sub?: string; name?: string; exp?: number } | null {
  const part = token.split(".")[1];
  if (!part) return null;
  try {
    const json = atob(part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "="));
    const bytes = Uint8Array.from(json, (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes)) as { sub?: string; name?: string; exp?: number };
  } catch {
    return null;
  }
}

export function current(): User | null {
  const token = sessionStorage.getItem(KEY);
  if (!token) return null;
  const c = claims(token);
  // A minute of margin: a token about to expire would fail half-way through a join.
  if (!c?.sub || !c.exp || c.exp * 1000 < Date.now() + 60_000) {
    sessionStorage.removeItem(KEY);
    return null;
  }
  return { token, id: c.sub, name: c.name ?? "", expiresAt: c.exp * 1000 };
}

export function save(token: string): User | null {
  sessionStorage.setItem(KEY, token);
  return current();
}

export function signOut(): void {
  sessionStorage.removeItem(KEY);
}

// A guest (a person without an account, DESIGN §12) holds a guest token for one meeting, kept
// per meeting in this tab, so that a reload joins again as the same guest, in the same place.
const guestKey = (code: string) => `convene.guest_token.${code}`;

function userOf(token: string): User | null {
  const c = claims(token);
  if (!c?.sub || !c.exp || c.exp * 1000 < Date.now() + 60_000) return null;
  return { token, id: c.sub, name: c.name ?? "", expiresAt: c.exp * 1000, guest: true };
}

/** The guest this tab joined `code` as, while their guest token is still good. */
export function guest(code: string): User | null {
  const token = sessionStorage.getItem(guestKey(code));
  if (!token) return null;
  const user = userOf(token);
  if (!user) sessionStorage.removeItem(guestKey(code));
  return user;
}

export function saveGuest(code: string, token: string): User | null {
  sessionStorage.setItem(guestKey(code), token);
  return guest(code);
}

export function forgetGuest(code: string): void {
  sessionStorage.removeItem(guestKey(code));
}
