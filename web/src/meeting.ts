// The meeting page at /m/{code}: a device check, the join, the lobby, the room (participants
// with the active speaker, the host's lobby list and settings), leaving and ending.

import { ApiError, gc, type GuestJoinResult, type JoinResult, type Meeting, type Settings } from "./api.js";
import { settingFields } from "./settings.js";
import { Microphone, MIN_DBFS } from "./audio.js";
import { currentStatus, el, show, status } from "./dom.js";
import * as session from "./session.js";
import {
  CLOSE,
  type LobbyEntryView,
  type ParticipantView,
  RECONNECT_GRACE_DEFAULT_MS,
  IDLE_TIMEOUT_DEFAULT_MS,
} from "./generated-signaling.js";
import { type ServerMessage, Signaling, type Ticket } from "./signaling.js";
import { showUser, signInForm } from "./signin.js";

/** How often the microphone level goes to MC (DESIGN §4: every 20–100 ms). */
const LEVEL_INTERVAL_MS = 50;
/** A keep-alive when no levels are sent (MC closes sockets idle for IDLE_TIMEOUT_DEFAULT_MS). */
const PING_INTERVAL_MS = IDLE_TIMEOUT_DEFAULT_MS / 3;
/** MC's RECONNECT_GRACE default: after that the seat is gone anyway. */
const RECONNECT_GRACE_MS = RECONNECT_GRACE_DEFAULT_MS;

const LANGUAGES: [string, string][] = [
  ["en", "English"],
  ["de", "Deutsch"],
  ["es", "Español"],
  ["fr", "Français"],
  ["it", "Italiano"],
  ["ja", "日本語"],
  ["pt-BR", "Português (Brasil)"],
];

/** A seated participant as the page knows them: from `welcome`, or from `participant.joined`
 * until `participant.updated` tells more. */
type Participant = Pick<ParticipantView, "user_id" | "display_name" | "role"> &
  Partial<Pick<ParticipantView, "status" | "language" | "hardware_ready" | "guest">>;

type LobbyEntry = Pick<LobbyEntryView, "user_id" | "display_name"> & Partial<Pick<LobbyEntryView, "guest">>;

/** Marks a person without an account (DESIGN §12) in the lists. */
const guestBadge = (guest: boolean | undefined) => (guest ? el("span", { class: "badge" }, "guest without an account") : null);

/** Marks this tab as being in the meeting, so that a reload joins again without asking. */
const joinedKey = (code: string) => `convene.joined.${code}`;

export function meetingPage(code: string): void {
  const user = session.current() ?? session.guest(code);
  showUser(user?.guest ? null : user);
  if (!user) {
    show(
      el("h1", {}, "Join the meeting"),
      guestForm(code),
      el("h2", {}, "Or sign in"),
      el("p", {}, "Members of an organization sign in with their account."),
      signInForm(() => meetingPage(code)),
    );
    return;
  }
  show(el("p", { class: "muted" }, "Loading the meeting…"));
  gc.get(user.token, code).then(
    (meeting) => {
      if (meeting.status === "ended") {
        endedScreen(meeting.display_name);
        return;
      }
      const page = new MeetingPage(user, meeting);
      if (sessionStorage.getItem(joinedKey(code))) {
        void page.rejoin();
      } else {
        page.deviceCheck();
      }
    },
    (error: unknown) => {
      if (error instanceof ApiError && error.status === 404) {
        notFoundScreen();
      } else if (error instanceof ApiError && error.status === 401) {
        if (user.guest) session.forgetGuest(code);
        else session.signOut();
        meetingPage(code);
      } else {
        show(
          el("h1", {}, "The meeting cannot be loaded"),
          el("p", { class: "error" }, error instanceof Error ? error.message : String(error)),
          el("button", { type: "button", onclick: () => meetingPage(code) }, "Try again"),
        );
      }
    },
  );
}

/**
 * "Join as a guest": a person without an account gives a name and asks to join (DESIGN §12).
 * Whether the meeting takes guests is known only by asking (reading it needs a token); a
 * meeting that does not answers like an unknown one, and the page says so. The guest then
 * waits in the lobby: the device check comes while they wait.
 */
function guestForm(code: string): HTMLElement {
  const error = el("p", { class: "error", role: "alert" });
  const name = el("input", { type: "text", name: "guest_name", autocomplete: "name", required: true, maxlength: 255 });
  const submit = el("button", { type: "submit" }, "Join as a guest");
  return el(
    "form",
    {
      class: "panel",
      "aria-label": "Join as a guest",
      onsubmit: (event: Event) => {
        event.preventDefault();
        submit.disabled = true;
        error.textContent = "";
        gc.guestJoin(code, name.value.trim())
          .then((joined) => {
            const guest = session.saveGuest(code, joined.guest_token);
            if (!guest) throw new ApiError(0, "BAD_TOKEN", "The answer was not usable.");
            sessionStorage.setItem(joinedKey(code), "1");
            new MeetingPage(guest, joined.meeting).asGuest(joined);
          })
          .catch((e: unknown) => {
            error.textContent = guestRefusal(e);
            submit.disabled = false;
            name.focus();
          });
      },
    },
    el("p", {}, "No account? Give the name others will see, and the host can let you in."),
    el("label", {}, "Your name", name),
    el("div", { class: "row" }, submit),
    error,
  );
}

function guestRefusal(e: unknown): string {
  if (!(e instanceof ApiError)) return e instanceof Error ? e.message : "Joining failed.";
  switch (e.code) {
    case "NOT_FOUND":
      return "This meeting does not take guests without an account, or it has ended. Sign in to join.";
    case "LOBBY_FULL":
      return "Too many guests are waiting already. Try again in a little while.";
    case "RATE_LIMITED":
      return "Too many attempts from your network. Wait a little and try again.";
    case "BAD_REQUEST":
      return `That name cannot be used: ${e.message}`;
    default:
      return e.message;
  }
}

function notFoundScreen(): void {
  show(
    el("h1", {}, "Meeting not found"),
    el(
      "p",
      {},
      "There is no meeting with this code that you may join. It may have ended, or belong to another organization.",
    ),
    el("p", {}, el("a", { href: "/" }, "Back to your meetings")),
  );
}

function endedScreen(name: string): void {
  show(
    el("h1", {}, "The meeting has ended"),
    el("p", {}, `“${name}” is over.`),
    el("p", {}, el("a", { href: "/" }, "Back to your meetings")),
  );
}

class MeetingPage {
  private mic: Microphone | null = null;
  private signaling: Signaling | null = null;
  private levelTimer: number | undefined;
  private lastSent = 0;
  private meterEl: HTMLMeterElement | null = null;

  private phase: "check" | "joining" | "lobby" | "room" | "over" = "check";
  private me: { user_id: string; role: string } | null = null;
  private participants = new Map<string, Participant>();
  private lobby = new Map<string, LobbyEntry>();
  /** The lobby notice the status bar shows, while it shows one. */
  private lobbyNotice: string | null = null;
  private activeSpeaker: string | null = null;
  private rejectedReason: string | null = null;
  /** The host took this user out (the `removed` event came before the socket closed). */
  private removed = false;
  private language = preferredLanguage();

  // The room's long-lived parts: re-rendered in place, so focus stays where the user is.
  private readonly participantList = el("ul", { class: "people", "aria-label": "Participants" });
  private readonly lobbyBox = el("div");
  private readonly settingsBox = el("div");
  private readonly connection = el("span", { class: "muted" });

  constructor(
    private readonly user: session.User,
    private meeting: Meeting,
  ) {
    window.addEventListener("pagehide", () => this.teardown());
  }

  // ---- before joining -----------------------------------------------------------------------

  deviceCheck(): void {
    this.phase = "check";
    const meter = el("meter", { min: MIN_DBFS, max: 0, value: MIN_DBFS, "aria-label": "Microphone level" });
    this.meterEl = meter;
    const micStatus = el("p", { class: "muted" }, "Your microphone is not in use yet.");
    const testButton = el("button", { type: "button", class: "secondary" }, "Test microphone");
    testButton.addEventListener("click", () => {
      testButton.disabled = true;
      this.openMicrophone().then((ok) => {
        micStatus.textContent = ok
          ? "Microphone ready: the bar moves when you speak."
          : "No microphone: you can still join and follow the meeting.";
        micStatus.className = ok ? "" : "error";
        testButton.disabled = ok;
      });
    });
    const joinButton = el("button", { type: "button" }, "Join meeting");
    joinButton.addEventListener("click", () => {
      joinButton.disabled = true;
      void this.join();
    });
    show(
      el("h1", {}, this.meeting.display_name),
      el("p", { class: "muted" }, `Meeting code ${this.meeting.meeting_code}`),
      el(
        "section",
        { class: "panel", "aria-labelledby": "check-heading" },
        el("h2", { id: "check-heading" }, "Check your microphone"),
        micStatus,
        meter,
        el("div", { class: "row" }, testButton),
      ),
      el("div", { class: "row" }, joinButton),
    );
    this.startLevels();
  }

  /** Opens the microphone once; false when there is none or permission was refused. */
  private async openMicrophone(): Promise<boolean> {
    if (this.mic) return true;
    try {
      this.mic = await Microphone.open();
      return true;
    } catch {
      return false;
    }
  }

  /** After a reload: join again straight away, with the microphone if it is allowed. */
  async rejoin(): Promise<void> {
    await this.openMicrophone();
    await this.join();
  }

  private async join(): Promise<void> {
    this.phase = "joining";
    status("Joining…", true);
    let joined: JoinResult;
    try {
      joined = await gc.join(this.user.token, this.meeting.meeting_code);
    } catch (error) {
      this.joinFailed(error);
      return;
    }
    sessionStorage.setItem(joinedKey(this.meeting.meeting_code), "1");
    this.enter(joined);
  }

  /**
   * A guest's first join was their guest-join: they wait in the lobby already. The device
   * check comes now, while they wait; "Join meeting" then joins again with the guest token
   * (which keeps their place) and opens the room's socket.
   */
  asGuest(joined: GuestJoinResult): void {
    this.meeting = joined.meeting;
    this.deviceCheck();
    status("You are in the lobby: the host has been told you are waiting.", true);
  }

  /** Into the lobby or the room that a join answered, with the room's socket. */
  private enter(joined: JoinResult): void {
    this.meeting = joined.meeting;
    this.renderRoomShell(joined.status === "waiting");
    this.signaling = new Signaling({
      initial: { url: joined.signaling_url, token: joined.meeting_token },
      renew: () => this.ticket(),
      onEvent: (event) => this.onEvent(event),
      onState: (state) => {
        this.connection.textContent =
          state === "open" ? "Connected" : state === "connecting" ? "Connecting…" : "Reconnecting…";
        if (state === "reconnecting") status("Connection lost: reconnecting…", true);
        else if (state === "open") status("");
      },
      onClosed: (code, reason) => this.onClosed(code, reason),
      graceMs: RECONNECT_GRACE_MS,
    });
    this.signaling.start();
    this.startLevels();
  }

  private async ticket(): Promise<Ticket> {
    const joined = await gc.join(this.user.token, this.meeting.meeting_code);
    this.meeting = joined.meeting;
    return { url: joined.signaling_url, token: joined.meeting_token };
  }

  private joinFailed(error: unknown): void {
    sessionStorage.removeItem(joinedKey(this.meeting.meeting_code));
    status("");
    if (error instanceof ApiError && error.code === "REMOVED_FROM_MEETING") {
      this.removedScreen();
      return;
    }
    if (error instanceof ApiError && error.status === 404) {
      notFoundScreen();
      return;
    }
    const message =
      error instanceof ApiError && error.code === "MEETING_FULL"
        ? "The meeting is full."
        : error instanceof Error
          ? error.message
          : "Joining failed.";
    show(
      el("h1", {}, this.meeting.display_name),
      el("p", { class: "error", role: "alert" }, message),
      el("button", { type: "button", onclick: () => this.deviceCheck() }, "Back"),
    );
  }

  // ---- the room -----------------------------------------------------------------------------

  private renderRoomShell(waiting: boolean): void {
    const leave = el("button", { type: "button", class: "secondary" }, waiting ? "Leave the lobby" : "Leave");
    leave.addEventListener("click", () => void this.leave());
    if (waiting) {
      this.phase = "lobby";
      show(
        el("h1", {}, this.meeting.display_name),
        el(
          "section",
          { class: "panel", "aria-labelledby": "lobby-heading" },
          el("h2", { id: "lobby-heading" }, "Waiting for the host to let you in"),
          el("p", {}, "You are in the lobby. The page changes by itself when the host admits you."),
          this.connection,
        ),
        el("div", { class: "row" }, leave),
      );
      return;
    }
    this.phase = "room";
    const controls = el("div", { class: "row" }, leave);
    if (this.isHost()) {
      const end = el("button", { type: "button", class: "danger" }, "End meeting for everyone");
      end.addEventListener("click", () => void this.end());
      controls.append(end);
    }
    const language = el(
      "select",
      { name: "language" },
      ...LANGUAGES.map(([tag, name]) => el("option", { value: tag, selected: tag === this.language }, name)),
    );
    language.addEventListener("change", () => {
      this.language = language.value;
      this.signaling?.send({ type: "set_language", language: this.language });
    });
    const meter = el("meter", { min: MIN_DBFS, max: 0, value: MIN_DBFS, "aria-label": "Your microphone level" });
    this.meterEl = meter;
    show(
      el("h1", {}, this.meeting.display_name),
      el("p", { class: "muted" }, `Meeting code ${this.meeting.meeting_code} · `, this.connection),
      el(
        "section",
        { "aria-labelledby": "people-heading" },
        el("h2", { id: "people-heading" }, "Participants"),
        this.participantList,
      ),
      this.isHost() ? this.lobbyBox : null,
      el(
        "section",
        { class: "panel", "aria-labelledby": "you-heading" },
        el("h2", { id: "you-heading" }, "You"),
        el("label", {}, "Your language", language),
        this.mic ? meter : el("p", { class: "muted" }, "No microphone in use."),
      ),
      this.isHost() ? this.settingsBox : null,
      controls,
    );
    this.renderParticipants();
    this.renderLobby();
    this.renderSettings();
  }

  private isHost(): boolean {
    return (this.me?.role ?? (this.meeting.host_id === this.user.id ? "host" : "guest")) === "host";
  }

  private renderParticipants(): void {
    const items = [...this.participants.values()].sort(
      (a, b) => Number(b.role === "host") - Number(a.role === "host") || a.display_name.localeCompare(b.display_name),
    );
    this.participantList.replaceChildren(
      ...items.map((p) => {
        const speaking = p.user_id === this.activeSpeaker;
        const you = p.user_id === this.user.id;
        return el(
          "li",
          {
            class: speaking ? "speaking" : null,
            "data-user-id": p.user_id,
            "data-speaking": speaking ? "true" : "false",
          },
          el("span", {}, p.display_name, you ? " (you)" : ""),
          el(
            "span",
            { class: "row" },
            // The API calls every non-host a "guest"; the page marks only the host, and the
            // people without an account.
            p.role === "host" ? el("span", { class: "badge" }, "host") : null,
            guestBadge(p.guest),
            p.language ? el("span", { class: "badge", lang: p.language }, p.language) : null,
            p.status === "reconnecting" ? el("span", { class: "badge" }, "reconnecting") : null,
            speaking ? el("span", { class: "badge speaking" }, "speaking") : null,
            // Only a member of the org can host; the page knows guests without an account, and
            // the server refuses people of other orgs (409, shown in the status bar).
            this.isHost() && !you && !p.guest ? this.handOverButton(p) : null,
            this.isHost() && !you ? this.removeButton(p) : null,
          ),
        );
      }),
    );
  }

  /** The host's "Remove" for one participant, asked for confirmation first. */
  private removeButton(p: Participant): HTMLButtonElement {
    const button = el(
      "button",
      { type: "button", class: "secondary", "aria-label": `Remove ${p.display_name}` },
      "Remove",
    );
    button.addEventListener("click", () => {
      if (!window.confirm(`Remove ${p.display_name} from the meeting? They cannot come back while it lasts.`)) return;
      button.disabled = true;
      gc.remove(this.user.token, this.meeting.meeting_code, p.user_id).then(
        () => status(`${p.display_name} was removed.`),
        (e: unknown) => {
          status(e instanceof Error ? e.message : "Removing did not work.");
          button.disabled = false;
        },
      );
    });
    return button;
  }

  /** The host's "Make host" for one participant, asked for confirmation first. */
  private handOverButton(p: Participant): HTMLButtonElement {
    const button = el(
      "button",
      { type: "button", class: "secondary", "aria-label": `Make ${p.display_name} the host` },
      "Make host",
    );
    button.addEventListener("click", () => {
      if (!window.confirm(`Make ${p.display_name} the host? You will no longer be able to admit people or change the settings.`)) return;
      button.disabled = true;
      gc.handOver(this.user.token, this.meeting.meeting_code, p.user_id).then(
        (meeting) => {
          this.meeting = meeting;
          status(`${p.display_name} is the host now.`);
        },
        (e: unknown) => {
          status(e instanceof Error ? e.message : "Handing the meeting over did not work.");
          button.disabled = false;
        },
      );
    });
    return button;
  }

  /**
   * This user's role changed (a hand-over, or the role passed on when the host left: DESIGN
   * §12): the room's page is drawn again for the new role, the host's lists and settings
   * appearing or going.
   */
  private becomeRole(role: "host" | "guest"): void {
    if (!this.me || this.me.role === role) return;
    this.me = { ...this.me, role };
    if (role !== "host") this.lobby.clear();
    if (this.phase === "room") this.renderRoomShell(false);
  }

  /**
   * The status bar's lobby notice follows the lobby: it names the latest person still waiting
   * (and how many more), and goes once nobody waits: it used to stay after the host let the
   * person in. Someone new waiting always shows (`announce`); someone leaving the lobby only
   * updates a notice the bar still shows, never replaces another message.
   */
  private noticeLobby(announce: boolean): void {
    const showing = this.lobbyNotice !== null && currentStatus() === this.lobbyNotice;
    if (!announce && !showing) {
      this.lobbyNotice = null;
      return;
    }
    const waiting = [...this.lobby.values()];
    const latest = waiting[waiting.length - 1];
    if (!latest) {
      status("");
      this.lobbyNotice = null;
      return;
    }
    const others = waiting.length - 1;
    const text =
      others === 0
        ? `${latest.display_name} is waiting in the lobby.`
        : `${latest.display_name} and ${others} more are waiting in the lobby.`;
    status(text);
    this.lobbyNotice = text;
  }

  private renderLobby(): void {
    if (!this.isHost() || this.phase !== "room") return;
    const waiting = [...this.lobby.values()];
    const code = this.meeting.meeting_code;
    const act = (button: HTMLButtonElement, action: () => Promise<unknown>) => {
      button.disabled = true;
      action().catch((e: unknown) => {
        status(e instanceof Error ? e.message : "That did not work.");
        button.disabled = false;
      });
    };
    const list = el(
      "ul",
      { class: "people", "aria-label": "Waiting in the lobby" },
      ...waiting.map((w) => {
        const admit = el("button", { type: "button", "aria-label": `Admit ${w.display_name}` }, "Admit");
        admit.addEventListener("click", () => act(admit, () => gc.admit(this.user.token, code, w.user_id)));
        const reject = el(
          "button",
          { type: "button", class: "secondary", "aria-label": `Reject ${w.display_name}` },
          "Reject",
        );
        reject.addEventListener("click", () => act(reject, () => gc.reject(this.user.token, code, w.user_id)));
        return el(
          "li",
          { "data-user-id": w.user_id },
          el("span", {}, w.display_name),
          el("span", { class: "row" }, guestBadge(w.guest), admit, reject),
        );
      }),
    );
    const admitAll = el("button", { type: "button", class: "secondary" }, "Admit everyone");
    admitAll.addEventListener("click", () => act(admitAll, () => gc.admitAll(this.user.token, code)));
    this.lobbyBox.replaceChildren(
      el(
        "section",
        { "aria-labelledby": "lobby-list-heading" },
        el("h2", { id: "lobby-list-heading" }, `Lobby (${waiting.length})`),
        waiting.length
          ? el("div", {}, list, el("div", { class: "row" }, admitAll))
          : el("p", { class: "muted" }, "Nobody is waiting."),
      ),
    );
  }

  private renderSettings(): void {
    if (!this.isHost() || this.phase !== "room") return;
    const boxes = new Map<keyof Settings, HTMLInputElement>();
    const fields = settingFields(this.meeting.settings, boxes, "room");
    const max = el("input", {
      type: "number",
      name: "max_participants",
      min: 2,
      value: this.meeting.max_participants,
      inputmode: "numeric",
    });
    const error = el("p", { class: "error", role: "alert" });
    const save = el("button", { type: "submit" }, "Save settings");
    this.settingsBox.replaceChildren(
      el(
        "section",
        { class: "panel", "aria-labelledby": "settings-heading" },
        el("h2", { id: "settings-heading" }, "Meeting settings"),
        el(
          "form",
          {
            onsubmit: (event: Event) => {
              event.preventDefault();
              save.disabled = true;
              error.textContent = "";
              const patch: Partial<Settings> & { max_participants?: number } = {};
              for (const [key, box] of boxes) patch[key] = box.checked;
              if (max.value) patch.max_participants = Number(max.value);
              gc.config(this.user.token, this.meeting.meeting_code, patch)
                .then((meeting) => {
                  this.meeting = meeting;
                  status("Settings saved.");
                  this.renderSettings();
                })
                .catch((e: unknown) => {
                  error.textContent = e instanceof Error ? e.message : "The settings could not be saved.";
                  save.disabled = false;
                });
            },
          },
          fields,
          el("label", {}, "Maximum participants", max),
          el("div", { class: "row" }, save),
          error,
        ),
      ),
    );
  }

  // ---- events -------------------------------------------------------------------------------

  private onEvent(event: ServerMessage): void {
    switch (event.type) {
      case "welcome": {
        this.me = event.you;
        this.meeting = {
          ...this.meeting,
          settings: event.meeting.settings,
          max_participants: event.meeting.max_participants,
        };
        this.participants = new Map(event.participants.map((p) => [p.user_id, p]));
        this.lobby = new Map((event.lobby ?? []).map((w) => [w.user_id, w]));
        this.activeSpeaker = event.active_speaker;
        this.renderRoomShell(false);
        this.signaling?.send({ type: "hardware", audio_ready: this.mic !== null, video_ready: false });
        this.signaling?.send({ type: "set_language", language: this.language });
        break;
      }
      case "lobby.waiting":
        if (this.phase !== "lobby") this.renderRoomShell(true);
        this.signaling?.send({ type: "hardware", audio_ready: this.mic !== null, video_ready: false });
        break;
      case "admitted":
        status("The host let you in.");
        break;
      case "rejected":
        this.rejectedReason = event.reason;
        break;
      case "removed":
        this.removed = true;
        break;
      case "lobby.joined": {
        const entry: LobbyEntry = { user_id: event.user_id, display_name: event.display_name };
        if (event.guest) entry.guest = true;
        this.lobby.set(entry.user_id, entry);
        this.noticeLobby(true);
        this.renderLobby();
        break;
      }
      case "lobby.left":
        this.lobby.delete(event.user_id);
        this.noticeLobby(false);
        this.renderLobby();
        break;
      case "participant.joined": {
        const { type: _type, ...p } = event;
        this.participants.set(p.user_id, { ...p, status: "connected" });
        this.renderParticipants();
        break;
      }
      case "participant.left": {
        const id = event.user_id;
        this.participants.delete(id);
        if (this.activeSpeaker === id) this.activeSpeaker = null;
        this.renderParticipants();
        break;
      }
      case "participant.updated": {
        const known = this.participants.get(event.user_id);
        if (known) {
          const { type: _type, ...changes } = event;
          this.participants.set(event.user_id, { ...known, ...changes });
          this.renderParticipants();
        }
        if (event.role && event.user_id === this.me?.user_id) {
          this.becomeRole(event.role);
          if (event.role === "guest") status("You handed the meeting over: someone else hosts it now.");
        }
        break;
      }
      case "host.granted":
        // The lobby as it is now, then host-only events as they come.
        this.lobby = new Map(event.lobby.map((w) => [w.user_id, w]));
        this.becomeRole("host");
        this.renderLobby();
        status("You are the host now: you can admit people, change the settings and end the meeting.");
        break;
      case "lobby.no_host":
        status("Nobody hosts this meeting right now, so nobody can let you in. You can keep waiting or leave.", true);
        break;
      case "active_speaker":
        this.activeSpeaker = event.user_id;
        this.renderParticipants();
        break;
      case "settings.updated":
        this.meeting = {
          ...this.meeting,
          settings: event.settings,
          max_participants: event.max_participants,
        };
        this.renderSettings();
        break;
      case "meeting.ended":
        this.finish();
        endedScreen(this.meeting.display_name);
        break;
      case "error":
        status(event.message || "The meeting service reported an error.");
        break;
      case "pong":
        break;
    }
  }

  private onClosed(code: number, reason: string): void {
    if (this.phase === "over") return;
    const rejected = this.rejectedReason;
    this.finish();
    if (this.removed) {
      this.removedScreen();
    } else if (rejected !== null || (code === CLOSE.NOT_A_MEMBER && this.me === null)) {
      show(
        el("h1", {}, "You were not admitted"),
        el("p", {}, "The host did not let you into this meeting."),
        el("p", {}, el("a", { href: "/" }, "Back to your meetings")),
      );
    } else if (code === CLOSE.MEETING_GONE) {
      endedScreen(this.meeting.display_name);
    } else if (code === CLOSE.REPLACED) {
      show(
        el("h1", {}, "Opened elsewhere"),
        el("p", {}, "You joined this meeting from another tab or device, so this page stopped."),
        el("button", { type: "button", onclick: () => window.location.reload() }, "Use this page instead"),
      );
    } else if (code === CLOSE.NORMAL) {
      this.leftScreen();
    } else {
      show(
        el("h1", {}, "Connection lost"),
        el("p", { class: "error" }, `The meeting could not be reached again (${reason}).`),
        el("button", { type: "button", onclick: () => window.location.reload() }, "Try again"),
      );
    }
  }

  // ---- leaving ------------------------------------------------------------------------------

  private async leave(): Promise<void> {
    const code = this.meeting.meeting_code;
    this.finish();
    try {
      await gc.leave(this.user.token, code);
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 404)) {
        status(error instanceof Error ? error.message : "Leaving failed.");
      }
    }
    this.leftScreen();
  }

  private async end(): Promise<void> {
    if (!window.confirm("End the meeting for everyone?")) return;
    try {
      const meeting = await gc.end(this.user.token, this.meeting.meeting_code);
      this.meeting = meeting;
      this.finish();
      endedScreen(meeting.display_name);
    } catch (error) {
      status(error instanceof Error ? error.message : "Ending failed.");
    }
  }

  private removedScreen(): void {
    if (this.user.guest) session.forgetGuest(this.meeting.meeting_code);
    show(
      el("h1", {}, "You were removed from this meeting"),
      el("p", {}, "The host took you out of this meeting. You cannot join it again while it lasts."),
      el("p", {}, el("a", { href: "/" }, "Back to the start page")),
    );
  }

  private leftScreen(): void {
    show(
      el("h1", {}, "You left the meeting"),
      el("p", {}, el("a", { href: `/m/${this.meeting.meeting_code}` }, "Join again"), " · ", el("a", { href: "/" }, "Your meetings")),
    );
  }

  /** Stops the socket and the levels; the page shows an end screen next. */
  private finish(): void {
    this.phase = "over";
    sessionStorage.removeItem(joinedKey(this.meeting.meeting_code));
    this.signaling?.stop();
    this.signaling = null;
    this.teardown();
    status("");
  }

  private teardown(): void {
    window.clearInterval(this.levelTimer);
    this.levelTimer = undefined;
    this.mic?.close();
    this.mic = null;
  }

  // ---- levels -------------------------------------------------------------------------------

  /** Measures the microphone every 50 ms: the meter always, MC while seated; a ping otherwise. */
  private startLevels(): void {
    if (this.levelTimer !== undefined) return;
    this.levelTimer = window.setInterval(() => {
      const level = this.mic ? this.mic.level() : MIN_DBFS;
      if (this.meterEl) this.meterEl.value = level;
      const signaling = this.signaling;
      if (!signaling?.open) return;
      const now = Date.now();
      if (this.mic && this.phase === "room") {
        signaling.send({ type: "audio_level", level_dbfs: level });
        this.lastSent = now;
      } else if (now - this.lastSent >= PING_INTERVAL_MS) {
        signaling.send({ type: "ping" });
        this.lastSent = now;
      }
    }, LEVEL_INTERVAL_MS);
  }
}

function preferredLanguage(): string {
  const wanted = navigator.language || "en";
  const exact = LANGUAGES.find(([tag]) => tag.toLowerCase() === wanted.toLowerCase());
  if (exact) return exact[0];
  const primary = wanted.split("-")[0]?.toLowerCase();
  return LANGUAGES.find(([tag]) => tag.split("-")[0] === primary)?.[0] ?? "en";
}
