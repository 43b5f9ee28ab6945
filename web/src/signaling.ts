// The signaling WebSocket to MC (docs/signaling.md): the meeting token goes in the first
// message, never in the URL. A dropped socket is reconnected within the reconnect grace: each
// attempt asks GC for a fresh ticket (join is idempotent for someone present), which also
// follows the meeting to another controller after a failover and renews an expired token.

import { ApiError } from "./api.js";
import { CLOSE, type ClientMessage, type ServerMessage } from "./generated-signaling.js";

// Every message either way, generated from MC's types (docs/signaling.schema.json).
export type { ClientMessage, ServerMessage } from "./generated-signaling.js";

export interface Ticket {
  url: string;
  token: string;
}

/** Closes after which reconnecting makes no sense: ended, left, refused, or replaced. */
const FINAL = new Set<number>([
  CLOSE.NORMAL,
  CLOSE.UNSUPPORTED_DATA,
  CLOSE.TOO_BIG,
  CLOSE.NOT_A_MEMBER,
  CLOSE.MEETING_GONE,
  CLOSE.REPLACED,
]);

/** The browser's own close code for a socket that failed without a close frame. */
const ABNORMAL_CLOSURE = 1006;

export type SocketState = "connecting" | "open" | "reconnecting";

export interface SignalingOptions {
  initial: Ticket;
  /** A fresh ticket (REST join); throws an ApiError when the user may not join any more. */
  renew: () => Promise<Ticket>;
  onEvent: (event: ServerMessage) => void;
  onState: (state: SocketState) => void;
  /** The socket is gone for good: `code` is the last close code (0 when the grace ran out). */
  onClosed: (code: number, reason: string) => void;
  /** How long to keep trying after a drop (MC keeps the seat this long: RECONNECT_GRACE). */
  graceMs: number;
}

export class Signaling {
  private socket: WebSocket | null = null;
  private stopped = false;
  private droppedAt: number | null = null;
  private attempts = 0;
  private timer: number | undefined;

  constructor(private readonly options: SignalingOptions) {}

  start(): void {
    this.connect(this.options.initial);
  }

  get open(): boolean {
    return this.socket?.readyState === WebSocket.OPEN;
  }

  send(message: ClientMessage): void {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  /** Closes for good (leave, end, navigation). */
  stop(): void {
    this.stopped = true;
    window.clearTimeout(this.timer);
    const socket = this.socket;
    this.socket = null;
    if (socket && socket.readyState <= WebSocket.OPEN) socket.close(1000, "bye");
  }

  private connect(ticket: Ticket): void {
    this.options.onState(this.droppedAt === null ? "connecting" : "reconnecting");
    let socket: WebSocket;
    try {
      socket = new WebSocket(ticket.url);
    } catch {
      this.retry(ABNORMAL_CLOSURE);
      return;
    }
    this.socket = socket;
    socket.addEventListener("open", () => {
      const auth: ClientMessage = { type: "auth", token: ticket.token };
      socket.send(JSON.stringify(auth));
    });
    socket.addEventListener("message", (message) => {
      if (this.socket !== socket || typeof message.data !== "string") return;
      let event: ServerMessage;
      try {
        event = JSON.parse(message.data) as ServerMessage;
      } catch {
        return;
      }
      if (event.type === "welcome" || event.type === "lobby.waiting") {
        this.droppedAt = null;
        this.attempts = 0;
        this.options.onState("open");
      }
      this.options.onEvent(event);
    });
    socket.addEventListener("close", (close) => {
      if (this.socket !== socket || this.stopped) return;
      this.socket = null;
      if (FINAL.has(close.code)) {
        this.stopped = true;
        this.options.onClosed(close.code, close.reason);
      } else {
        this.retry(close.code);
      }
    });
  }

  private retry(code: number): void {
    this.droppedAt ??= Date.now();
    if (Date.now() - this.droppedAt > this.options.graceMs) {
      this.stopped = true;
      this.options.onClosed(0, `connection lost (last close ${code})`);
      return;
    }
    this.options.onState("reconnecting");
    const delay = Math.min(500 * 2 ** this.attempts, 4000);
    this.attempts += 1;
    this.timer = window.setTimeout(() => {
      if (this.stopped) return;
      this.options.renew().then(
        (ticket) => {
          if (!this.stopped) this.connect(ticket);
        },
        (error: unknown) => {
          if (this.stopped) return;
          if (error instanceof ApiError && [401, 403, 404].includes(error.status)) {
            this.stopped = true;
            this.options.onClosed(CLOSE.MEETING_GONE, error.message);
          } else {
            this.retry(code);
          }
        },
      );
    }, delay);
  }
}
