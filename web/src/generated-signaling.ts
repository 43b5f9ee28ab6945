// Generated from docs/signaling.schema.json by web/scripts/generate-types.mjs: do not edit.
// Regenerate with scripts/signaling-schema.sh.

/**
 * Convene's signaling WebSocket, GET /ws/v1/meetings/{code} on MC (docs/signaling.md): every text frame is one JSON object with a `type`, a ClientMessage from the client or a ServerMessage from the server. Generated from crates/mc-service/src/signaling (scripts/signaling-schema.sh); do not edit.
 */
export type SignalingProtocol = ClientMessage | ServerMessage;
/**
 * What a client may send.
 */
export type ClientMessage = Auth | AudioLevel | Hardware | SetLanguage | Ping | Leave;
/**
 * A message from the server to one client.
 */
export type ServerMessage = RoomMessage | SocketMessage;
/**
 * A change of a room, as the room scripts publish it and clients receive it.
 */
export type RoomMessage =
  | ParticipantJoined
  | ParticipantLeft
  | ParticipantUpdated
  | HostGranted
  | LobbyNoHost
  | LobbyJoined
  | LobbyLeft
  | Admitted
  | Rejected
  | Removed
  | ActiveSpeaker
  | SettingsUpdated
  | MeetingEnded;
/**
 * A participant's role in the meeting.
 */
export type Role = "host" | "guest";
/**
 * Where a seated participant's connection stands. `Admitted`: seated, no live socket yet.
 */
export type ParticipantStatus = "admitted" | "connected" | "reconnecting";
/**
 * A message one socket sends on its own, not published by the room.
 */
export type SocketMessage = Welcome | LobbyWaiting | Pong | ErrorMessage;

/**
 * The first message, and only then: the meeting token from GC's join.
 */
export interface Auth {
  token: string;
  type: "auth";
}
/**
 * The microphone's level, every 20–100 ms while connected.
 */
export interface AudioLevel {
  level_dbfs: number;
  type: "audio_level";
}
/**
 * The pre-join device test's result.
 */
export interface Hardware {
  audio_ready: boolean;
  type: "hardware";
  video_ready: boolean;
}
/**
 * The participant's language.
 */
export interface SetLanguage {
  /**
   * A BCP 47 tag (`en`, `pt-BR`): a primary subtag of 2 to 8 letters, then subtags of 1
   * to 8 letters or digits.
   */
  language: string;
  type: "set_language";
}
/**
 * Answered by `pong`; keeps a quiet socket from idling out.
 */
export interface Ping {
  type: "ping";
}
/**
 * Leave the meeting (or the lobby), as REST leave does.
 */
export interface Leave {
  type: "leave";
}
/**
 * To the room: `user_id` was seated.
 */
export interface ParticipantJoined {
  display_name: string;
  /**
   * Present (true) only for a person without an account (DESIGN §12).
   */
  guest?: boolean;
  role: Role;
  type: "participant.joined";
  user_id: string;
}
/**
 * To the room and the user: `user_id` lost their seat (`left`, `connection_lost`, …).
 */
export interface ParticipantLeft {
  reason: string;
  type: "participant.left";
  user_id: string;
}
/**
 * To the room: fields of `user_id`'s seat changed; only the changed fields are present.
 */
export interface ParticipantUpdated {
  /**
   * The pre-join device test's result, or null when cleared.
   */
  hardware_ready?: HardwareReady | null;
  /**
   * A BCP 47 tag, or null when cleared.
   */
  language?: string | null;
  /**
   * A participant's role in the meeting.
   */
  role?: "host" | "guest";
  status?: ParticipantStatus;
  type: "participant.updated";
  user_id: string;
}
/**
 * The result of a participant's pre-join device test.
 */
export interface HardwareReady {
  audio_ready: boolean;
  video_ready: boolean;
}
/**
 * To the user: they host the meeting now (a hand-over or a succession, DESIGN §12), with
 * the lobby as it is, oldest first; host-only events follow.
 */
export interface HostGranted {
  lobby: LobbyEntryView[];
  type: "host.granted";
}
/**
 * One person waiting in the lobby, as the host sees them (`welcome`'s `lobby`,
 * `host.granted`).
 */
export interface LobbyEntryView {
  display_name: string;
  /**
   * Present (true) only for a person without an account (DESIGN §12).
   */
  guest?: boolean;
  user_id: string;
  /**
   * Since when (RFC 3339, UTC, milliseconds).
   */
  waiting_since: string;
}
/**
 * To the lobby: nobody hosts the meeting, so nobody can let anyone in; the meeting's
 * creator takes the role back by joining, else the meeting ends when it has been empty
 * long enough.
 */
export interface LobbyNoHost {
  type: "lobby.no_host";
}
/**
 * To the host: `user_id` is waiting in the lobby.
 */
export interface LobbyJoined {
  display_name: string;
  /**
   * Present (true) only for a person without an account (DESIGN §12).
   */
  guest?: boolean;
  type: "lobby.joined";
  user_id: string;
}
/**
 * To the host and the user: `user_id` is no longer waiting (`admitted`, `rejected`,
 * `left`, …).
 */
export interface LobbyLeft {
  reason: string;
  type: "lobby.left";
  user_id: string;
}
/**
 * To the waiting user: the host let them in; `welcome` follows.
 */
export interface Admitted {
  type: "admitted";
}
/**
 * To the waiting user: the host turned them away; the socket closes (4403).
 */
export interface Rejected {
  reason: string;
  type: "rejected";
}
/**
 * To the user: the host took them out of the meeting (seated or waiting); the socket
 * closes (4403), and they may not join again until the meeting ends.
 */
export interface Removed {
  reason: string;
  type: "removed";
}
/**
 * To the room: the active speaker changed (null: nobody speaks).
 */
export interface ActiveSpeaker {
  previous_user_id: string | null;
  type: "active_speaker";
  user_id: string | null;
}
/**
 * To the room and the lobby: the host changed the settings or the capacity.
 */
export interface SettingsUpdated {
  max_participants: number;
  settings: MeetingSettings;
  type: "settings.updated";
}
/**
 * A meeting's settings, all seven always present.
 */
export interface MeetingSettings {
  /**
   * Users of every organization may see and join the meeting (default `false`).
   */
  allow_external_participants: boolean;
  /**
   * Concerns people without an account, whom this version does not admit (default `false`).
   */
  allow_guests: boolean;
  /**
   * Stored for the media plane (default `true`).
   */
  enable_e2e_encryption: boolean;
  /**
   * Stored for the media plane; nothing in Convene acts on it yet (default `false`).
   */
  enable_transcription: boolean;
  /**
   * Stored for the media plane (default `false`).
   */
  recording_enabled: boolean;
  /**
   * Concerns people without an account, whom this version does not admit (default `true`).
   */
  require_auth: boolean;
  /**
   * Guests wait in the lobby until the host admits them (default `true`).
   */
  waiting_room_enabled: boolean;
}
/**
 * To the room and the lobby: the meeting ended; the socket closes (1000).
 */
export interface MeetingEnded {
  reason: string;
  type: "meeting.ended";
}
/**
 * To a seated user, first: the room as it is now.
 */
export interface Welcome {
  /**
   * The user id of the active speaker, or null.
   */
  active_speaker: string | null;
  /**
   * The lobby, oldest first: only the host is sent it.
   */
  lobby?: LobbyEntryView[];
  meeting: WelcomeMeeting;
  /**
   * Every seated participant, the user among them.
   */
  participants: ParticipantView[];
  type: "welcome";
  you: You;
}
/**
 * The meeting as the room holds it.
 */
export interface WelcomeMeeting {
  max_participants: number;
  meeting_code: string;
  settings: MeetingSettings;
}
/**
 * One seated participant.
 */
export interface ParticipantView {
  display_name: string;
  /**
   * Present (true) only for a person without an account (DESIGN §12).
   */
  guest?: boolean;
  /**
   * The pre-join device test's result, or null before the user sent one.
   */
  hardware_ready: HardwareReady | null;
  /**
   * When the user was seated (RFC 3339, UTC, milliseconds).
   */
  joined_at: string;
  /**
   * A BCP 47 tag, or null before the user set one.
   */
  language: string | null;
  role: Role;
  status: ParticipantStatus;
  user_id: string;
}
/**
 * The user the `welcome` is for.
 */
export interface You {
  role: Role;
  /**
   * Where a seated participant's connection stands. `Admitted`: seated, no live socket yet.
   */
  status: "admitted" | "connected" | "reconnecting";
  user_id: string;
}
/**
 * To a waiting user, first: they wait in the lobby until the host decides.
 */
export interface LobbyWaiting {
  type: "lobby.waiting";
}
/**
 * The answer to `ping`.
 */
export interface Pong {
  type: "pong";
}
/**
 * A message the server could not act on; the connection stays open.
 */
export interface ErrorMessage {
  /**
   * A shared error code (`BAD_REQUEST`).
   */
  code: string;
  message: string;
  type: "error";
}

/** The signaling close codes by name (x-constants.close_codes). */
export const CLOSE = {
  "AUTH_FAILED": 4401,
  "GOING_AWAY": 1001,
  "MEETING_GONE": 4404,
  "NORMAL": 1000,
  "NOT_A_MEMBER": 4403,
  "POLICY_VIOLATION": 1008,
  "RATE_LIMITED": 4429,
  "REPLACED": 4409,
  "TOO_BIG": 1009,
  "TRY_AGAIN_LATER": 1013,
  "UNSUPPORTED_DATA": 1003
} as const;

/** MC's default reconnect grace (RECONNECT_GRACE): how long a dropped seat is kept. */
export const RECONNECT_GRACE_DEFAULT_MS = 30000;
/** MC's default idle timeout: a socket that sends nothing this long is closed. */
export const IDLE_TIMEOUT_DEFAULT_MS = 60000;
/** MC's default time to authenticate after the upgrade. */
export const AUTH_TIMEOUT_DEFAULT_MS = 5000;
/** The largest frame MC accepts, in bytes. */
export const MAX_FRAME_BYTES = 16384;
