// The public REST APIs: sign-in at AC, meetings at GC (same origin as this page). Tokens go in
// the Authorization header, never in a URL.

import type { components as AcComponents } from "./generated-ac-api.js";
import type { components } from "./generated-gc-api.js";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

// The shapes of both APIs, generated from their OpenAPI documents (generated-*-api.ts, by
// scripts/signaling-schema.sh): never copied here by hand.
type Gc = components["schemas"];
type Ac = AcComponents["schemas"];

export type Settings = Gc["MeetingSettings"];
export type Meeting = Gc["Meeting"];
export type JoinResult = Gc["JoinResponse"];
export type GuestJoinResult = Gc["GuestJoinResponse"];
export type History = Gc["HistoryResponse"];

/** The secure defaults of DESIGN §3, in the order the forms show them. */
export const SETTING_LABELS: [keyof Settings, string][] = [
  ["waiting_room_enabled", "Waiting room (the host admits people)"],
  ["enable_e2e_encryption", "End-to-end encryption"],
  ["require_auth", "Only signed-in people"],
  ["allow_external_participants", "People from other organizations may join"],
  ["allow_guests", "Guests without an account"],
  ["recording_enabled", "Recording"],
  ["enable_transcription", "Transcription"],
];

/** What each setting does, shown under it: which ones Convene acts on, and which concern media
 * that this platform does not carry (it carries signaling and the microphone level, not audio
 * or video), so that nobody believes a setting protects or records what it does not. */
export const SETTING_HINTS: Record<keyof Settings, string> = {
  waiting_room_enabled: "People wait in the lobby until the host lets them in. Guests without an account always wait.",
  enable_e2e_encryption:
    "Stored for the media service. Convene carries no audio or video, so it encrypts nothing itself.",
  require_auth: "Everyone must sign in. Turn it off to let guests without an account ask to join.",
  allow_external_participants: "Signed-in people of other organizations may join.",
  allow_guests:
    "People without an account may ask to join by the link, with a name; they always wait for the host. Needs “Only signed-in people” off.",
  recording_enabled: "Stored for the media service. Convene carries no audio or video, so nothing is recorded here.",
  enable_transcription:
    "Stored for the media service. Convene carries no audio, so nothing is transcribed here.",
};

export const DEFAULT_SETTINGS: Settings = {
  waiting_room_enabled: true,
  enable_transcription: false,
  enable_e2e_encryption: true,
  require_auth: true,
  recording_enabled: false,
  allow_guests: false,
  allow_external_participants: false,
};

/** Where AC is, as GC wrote it into the page. */
function acUrl(): string {
  const meta = document.querySelector<HTMLMetaElement>('meta[name="convene-ac-url"]');
  return (meta?.content ?? "").replace(/\/+$/, "");
}

async function call<T>(url: string, method: string, token: string | null, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  if (token) headers["Authorization"] = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response: Response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? null : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
      signal: AbortSignal.timeout(15_000),
    });
  } catch {
    throw new ApiError(0, "NETWORK", "The service cannot be reached. Check your connection and try again.");
  }
  const text = await response.text();
  const parsed = text ? safeJson(text) : null;
  if (!response.ok) {
    // The §7 envelope: {"error": {"code", "message"}}.
    const error = (parsed as Partial<Gc["ErrorEnvelope"]> | null)?.error;
    throw new ApiError(
      response.status,
      error?.code ?? `HTTP_${response.status}`,
      error?.message ?? `The request failed (${response.status}).`,
    );
  }
  return parsed as T;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

const base = "/api/v1/meetings";
const enc = encodeURIComponent;

export const ac = {
  signIn: (email: string, password: string) =>
    call<Ac["UserTokenResponse"]>(`${acUrl()}/api/v1/auth/user/token`, "POST", null, {
      email,
      password,
    }),
};

export const gc = {
  create: (token: string, body: Gc["CreateMeetingRequest"]) =>
    call<Meeting>(base, "POST", token, body),
  get: (token: string, code: string) => call<Meeting>(`${base}/${enc(code)}`, "GET", token),
  join: (token: string, code: string) => call<JoinResult>(`${base}/${enc(code)}/join`, "POST", token),
  /** A person without an account asks to join (no token): a guest token and a place in the lobby. */
  guestJoin: (code: string, displayName: string) =>
    call<GuestJoinResult>(`${base}/${enc(code)}/guest-join`, "POST", null, { display_name: displayName }),
  admit: (token: string, code: string, user: string) =>
    call<Gc["LobbyDecision"]>(`${base}/${enc(code)}/admit/${enc(user)}`, "POST", token),
  reject: (token: string, code: string, user: string) =>
    call<Gc["LobbyDecision"]>(`${base}/${enc(code)}/reject/${enc(user)}`, "POST", token),
  /** The host takes someone out of the meeting (seated or waiting); they may not come back. */
  remove: (token: string, code: string, user: string) =>
    call<Gc["RemoveResponse"]>(`${base}/${enc(code)}/remove/${enc(user)}`, "POST", token),
  handOver: (token: string, code: string, user: string) =>
    call<Meeting>(`${base}/${enc(code)}/host/${enc(user)}`, "POST", token),
  admitAll: (token: string, code: string) =>
    call<Gc["AdmitAllResponse"]>(`${base}/${enc(code)}/admit-all`, "POST", token),
  leave: (token: string, code: string) => call<Gc["LeaveResponse"]>(`${base}/${enc(code)}/leave`, "POST", token),
  end: (token: string, code: string) => call<Meeting>(`${base}/${enc(code)}/end`, "POST", token),
  config: (token: string, code: string, patch: Gc["ConfigRequest"]) =>
    call<Meeting>(`${base}/${enc(code)}/config`, "PATCH", token, patch),
  history: (token: string, page: number) =>
    call<History>(`${base}/history?role=any&page=${page}&page_size=20`, "GET", token),
};
