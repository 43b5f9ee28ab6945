// Generated from docs/openapi/gc-service.json by web/scripts/generate-types.mjs: do not edit.
// Regenerate with scripts/signaling-schema.sh.

export interface paths {
    "/api/v1/meetings": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Create a meeting.
         * @description Also served at `/api/v1/meetings/` (never a redirect). The caller needs the role `user`,
         *     `org_admin` or `admin`, checked before the body is read; the meeting's org is the token's
         *     `org_id` and its host the token's `sub`. A new meeting is `scheduled` and takes one of the
         *     org's `max_concurrent_meetings` places until it ends. With an `Idempotency-Key`, a retry by
         *     the same user with the same key and request returns the first meeting (201 with
         *     `Idempotent-Replayed: true`) and creates nothing.
         *
         *     Order of checks: authentication (401, 503), role (403), content type, size and JSON shape
         *     (400, 413), field rules (400), `Idempotency-Key` format (400), then the database: a stored
         *     key (replay or 409), org or user inactive (403), `max_participants` above the org limit
         *     (400), org at its limit (403).
         */
        post: operations["create_meeting"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/meetings/{code}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Read a meeting.
         * @description With `participant_count` read from the room now (when the room's controller cannot be
         *     reached, the count of open visits recorded in PostgreSQL, and a `lobby_count` of 0).
         *     `lobby_count` only for the host. Writes nothing.
         */
        get: operations["get_meeting"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/meetings/{code}/admit-all": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Admit the whole lobby (host).
         * @description Longest waiting first (ties broken by user id), while seats remain. An empty lobby, and a
         *     meeting nobody has joined yet, answer two empty arrays. No body.
         */
        post: operations["admit_all"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/meetings/{code}/admit/{user_id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Admit a user from the lobby (host).
         * @description Moves `user_id` from the lobby to a seat, as a guest, if a seat is free. Admitting someone
         *     already seated changes nothing and answers 200. The first seat makes the meeting `active`.
         *     No body.
         */
        post: operations["admit"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/meetings/{code}/config": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        /**
         * Change a meeting's settings (host).
         * @description The meeting and the caller's right to change it are checked before the body's errors are
         *     answered. PostgreSQL is changed first, then the room; if the controller cannot be reached
         *     the answer is 503 and the change stands: send the same PATCH again to bring the room in
         *     line. A change that changes nothing writes nothing.
         */
        patch: operations["update_config"];
        trace?: never;
    };
    "/api/v1/meetings/{code}/end": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * End a meeting (host).
         * @description Ends it for everyone: the meeting becomes `ended`, every open visit closes, and the room's
         *     controller is asked to end the room. PostgreSQL decides, so the answer is 200 even when the
         *     controller cannot be reached. Ending an ended meeting answers 200 with the same body and
         *     writes nothing. No body.
         */
        post: operations["end_meeting"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/meetings/{code}/guest-join": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Join as a guest, without an account.
         * @description For a meeting that allows guests (`allow_guests` on, `require_auth` off): the guest gives a
         *     name, gets a guest token for this meeting, and waits in the lobby for the host, whatever
         *     `waiting_room_enabled` says. Needs no `Authorization`. Each call makes a new guest; a guest
         *     who reloads joins again with their guest token (`POST /{code}/join`).
         */
        post: operations["guest_join"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/meetings/{code}/host/{user_id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Hand the meeting over (host).
         * @description Makes a seated member of the meeting's organization its host (DESIGN §12): both hear
         *     `participant.updated` with their new `role`, the new host gets the lobby (`host.granted`)
         *     and the host's rights here, and `host_id` changes. The meeting shows in the history of
         *     everyone who hosted it. Answers the meeting as the caller sees it afterwards (no longer
         *     its host, so without `lobby_count`). Handing it to oneself changes nothing. No body.
         */
        post: operations["hand_over"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/meetings/{code}/join": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Join a meeting.
         * @description The host, and everyone when the waiting room is off, take a seat if one is free; others
         *     wait in the lobby for the host. The first seat makes a `scheduled` meeting `active`.
         *     Joining again while seated or waiting changes nothing and issues a fresh meeting token, so
         *     a client may retry after a timeout or a 503. No body (one sent is ignored).
         */
        post: operations["join_meeting"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/meetings/{code}/leave": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Leave a meeting.
         * @description Removes the caller from their seat or from the lobby. Leaving twice, or leaving a meeting
         *     one never joined, changes nothing and is not an error. A caller who came in while the
         *     meeting allowed external participants may still leave it after the host turned that off,
         *     while they hold a visit. No body.
         */
        post: operations["leave_meeting"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/meetings/{code}/reject/{user_id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Reject a user in the lobby (host).
         * @description Removes `user_id` from the lobby with the reason `rejected_by_host`; never unseats anyone.
         *     A rejected user may join again. No body.
         */
        post: operations["reject"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/meetings/{code}/remove/{user_id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Remove someone from the meeting (host).
         * @description Takes a member or a guest out, seated or waiting: their sockets are told `removed` and
         *     closed (4403), the room hears `participant.left` (or the host `lobby.left`) with the reason
         *     `removed_by_host`, their visit is closed with that reason, and every later join of theirs
         *     answers 403 `REMOVED_FROM_MEETING` until the meeting ends. Removing someone again answers
         *     the same. No body.
         */
        post: operations["remove"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/meetings/history": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * The caller's meeting history.
         * @description Ended meetings, newest `ended_at` first: by default those the caller hosted. A meeting
         *     leaves the history when retention deletes it (`MEETING_RETENTION_DAYS`, 90, after it
         *     ended).
         */
        get: operations["history"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/openapi.json": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * This document.
         * @description The OpenAPI 3.1 document of GC's HTTP API, the same as `gc-service openapi` prints.
         */
        get: operations["openapi_document"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/webhooks": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get: operations["list"];
        put?: never;
        post: operations["create"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/webhooks/{webhook_id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get: operations["get"];
        put?: never;
        post?: never;
        delete: operations["delete"];
        options?: never;
        head?: never;
        patch: operations["update"];
        trace?: never;
    };
    "/api/v1/webhooks/{webhook_id}/deliveries": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get: operations["deliveries"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/retry": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        post: operations["retry"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/webhooks/{webhook_id}/rotate-secret": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        post: operations["rotate_secret"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/webhooks/{webhook_id}/test": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        post: operations["test"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/health/live": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Liveness probe.
         * @description The process is up and serving HTTP. Nothing else is checked, so an outage of a dependency
         *     (PostgreSQL, Redis, AC) does not get every replica restarted; `/health/ready` checks them.
         */
        get: operations["live"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/health/ready": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Readiness probe.
         * @description Ready to serve creates: not stopping, PostgreSQL answers and AC's signing keys are known.
         *     Meeting controllers do not count. Not ready is a 503 envelope; the failing dependency is
         *     logged, not shown.
         */
        get: operations["ready"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/metrics": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Prometheus metrics.
         * @description The Prometheus text format; the catalog is `docs/observability/metrics/gc-service.md`.
         */
        get: operations["metrics"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
}
export type webhooks = Record<string, never>;
export interface components {
    schemas: {
        /** @description Who got a seat and who still waits, each in admission order. */
        AdmitAllResponse: {
            admitted: string[];
            /** @description Left in the lobby for want of a seat. */
            still_waiting: string[];
        };
        /**
         * @description Body of `PATCH /{code}/config`: any of the settings (and `lock_room`) and
         *     `max_participants`, at the top level. A field left out or `null` keeps its value.
         */
        ConfigRequest: {
            allow_external_participants?: boolean | null;
            allow_guests?: boolean | null;
            enable_e2e_encryption?: boolean | null;
            enable_transcription?: boolean | null;
            /** @description Another name for `waiting_room_enabled` (DESIGN §3); if both are sent they must agree. */
            lock_room?: boolean | null;
            /**
             * Format: int32
             * @description 2 up to the org's `max_participants_per_meeting` (at most 10000, AC's bound), read now;
             *     a lower value unseats nobody.
             */
            max_participants?: number | null;
            recording_enabled?: boolean | null;
            require_auth?: boolean | null;
            /** @description Turning it off admits the lobby at once, longest waiting first, while seats remain. */
            waiting_room_enabled?: boolean | null;
        } & (({
            lock_room?: null;
        } & {
            [key: string]: unknown;
        }) | ({
            waiting_room_enabled?: null;
        } & {
            [key: string]: unknown;
        }) | ({
            /** @enum {boolean} */
            lock_room?: true;
            /** @enum {boolean} */
            waiting_room_enabled?: true;
        } & {
            [key: string]: unknown;
        }) | ({
            /** @enum {boolean} */
            lock_room?: false;
            /** @enum {boolean} */
            waiting_room_enabled?: false;
        } & {
            [key: string]: unknown;
        }));
        /** @description Body of `POST /api/v1/meetings`. `null` means the same as leaving a field out. */
        CreateMeetingRequest: {
            display_name: components["schemas"]["DisplayName"];
            /**
             * Format: int32
             * @description 2 up to the org's `max_participants_per_meeting` (at most 10000, AC's bound); out of
             *     range is a 400, never capped. Default: `min(100, org limit)`.
             * @example 25
             */
            max_participants?: number | null;
            /**
             * Format: date-time
             * @description RFC 3339 with an offset (`Z` or `+hh:mm`), between 5 minutes ago and 366 days ahead;
             *     returned in UTC. A scheduled meeting nobody joins expires 24 h after it.
             * @example 2027-01-07T09:00:00+01:00
             */
            scheduled_start_time?: string | null;
            settings?: null | components["schemas"]["SettingsRequest"];
        };
        /** @description `POST /api/v1/webhooks`. */
        CreateWebhookRequest: {
            /** @description Free text for the org, at most 500 characters. */
            description?: string | null;
            /** @description The event types to deliver, at least one. */
            events: components["schemas"]["EventType"][];
            /**
             * @description Where deliveries are POSTed: `https`, at most 2048 characters, no credentials or
             *     fragment, never a loopback, private, link-local, multicast or metadata address.
             */
            url: string;
        };
        /** @description `GET /api/v1/webhooks/{webhook_id}/deliveries`. */
        DeliveryListResponse: {
            deliveries: components["schemas"]["DeliveryResponse"][];
            /** Format: int32 */
            page: number;
            /** Format: int32 */
            page_size: number;
        };
        /** @description One delivery of an event to a webhook. */
        DeliveryResponse: {
            /** Format: int32 */
            attempts: number;
            /** Format: date-time */
            created_at: string;
            /** Format: date-time */
            delivered_at?: string | null;
            /**
             * Format: uuid
             * @description Also the `webhook-id` header of every attempt.
             */
            delivery_id: string;
            event_type: string;
            /** Format: date-time */
            last_attempt_at?: string | null;
            last_error?: string | null;
            /**
             * Format: int32
             * @description The last answer's HTTP status; null when there was none.
             */
            last_status?: number | null;
            /**
             * Format: date-time
             * @description When it is tried next, while pending.
             */
            next_attempt_at?: string | null;
            /** @description `pending`, `delivered` or `failed`. */
            status: string;
            /** Format: uuid */
            webhook_id: string;
        };
        /**
         * @description A name people see on one line (common::display_name): trimmed of surrounding whitespace, then 1-255 characters (Unicode scalar values) with at least one visible character, and no control, format (except a zero-width joiner between two characters), line-separator, paragraph-separator or private-use characters. The limit counts after trimming, so the schema has no maxLength: surrounding whitespace may take a request past it.
         * @example Weekly sync
         */
        DisplayName: string;
        /**
         * @description What went wrong: a stable code to act on, and a sentence for people. 500 and 503 messages
         *     are generic; the cause is only in the service's log.
         */
        ErrorBody: {
            /**
             * @description What went wrong, for programs: UPPER_SNAKE, stable. Each code has one HTTP status.
             * @enum {string}
             */
            code: "BAD_REQUEST" | "UNAUTHORIZED" | "FORBIDDEN" | "NOT_FOUND" | "METHOD_NOT_ALLOWED" | "CONFLICT" | "MEETING_FULL" | "LOBBY_FULL" | "REMOVED_FROM_MEETING" | "ORG_MEETING_LIMIT_REACHED" | "PAYLOAD_TOO_LARGE" | "UNSUPPORTED_MEDIA_TYPE" | "URI_TOO_LONG" | "REQUEST_HEADERS_TOO_LARGE" | "RATE_LIMITED" | "SERVICE_UNAVAILABLE" | "INTERNAL";
            /**
             * @description A human sentence, lowercase, without a trailing period. Never parse it.
             * @example the resource does not exist
             */
            message: string;
        };
        /** @description The JSON body of every error response. */
        ErrorEnvelope: {
            error: components["schemas"]["ErrorBody"];
        };
        /**
         * @description The events a webhook can subscribe to, as the body's `type` names them.
         * @enum {string}
         */
        EventType: "meeting.created" | "meeting.started" | "meeting.ended" | "participant.joined" | "participant.left" | "participant.removed" | "lobby.waiting" | "webhook.test";
        /**
         * @description Body of `POST /{code}/guest-join`.
         * @example {
         *       "display_name": "Visiting Vera"
         *     }
         */
        GuestJoinRequest: {
            /**
             * @description The name the room shows, under the rules of users' names: 1 to 255 characters after
             *     trimming, no control, invisible or direction-changing characters.
             */
            display_name: string;
        };
        /** @description A guest's place in the lobby, the guest token for this meeting, and how to reach the room. */
        GuestJoinResponse: {
            /**
             * Format: int64
             * @description Seconds the meeting token is valid: at most 900.
             */
            expires_in: number;
            /**
             * @description A guest token from AC (`token_type: guest`, at most 2 h): the bearer token of this
             *     meeting's `GET`, `join` (a reload keeps the same guest and place) and `leave`, and of
             *     nothing else.
             */
            guest_token: string;
            /** @description The meeting as a participant who is not the host sees it. */
            meeting: components["schemas"]["Meeting"];
            /** @description A meeting token (`guest: true`), for the first message of the signaling WebSocket. */
            meeting_token: string;
            /** @description Always `guest`. */
            role: components["schemas"]["MeetingRole"];
            /** Format: uri */
            signaling_url: string;
            /** @enum {string} */
            status: "waiting";
        };
        /** @description One page of the caller's ended meetings. */
        HistoryResponse: {
            /**
             * @description Newest `ended_at` first (ties broken by meeting id), with `participant_count` 0;
             *     `lobby_count` (0) only on meetings the caller hosted.
             */
            items: components["schemas"]["Meeting"][];
            /** Format: int32 */
            page: number;
            /** Format: int32 */
            page_size: number;
            /**
             * Format: int64
             * @description Every matching meeting; a page past the end has empty `items` and the same `total`.
             */
            total: number;
        };
        /** @description Where a join left the caller, and how to reach the room. */
        JoinResponse: {
            /**
             * Format: int64
             * @description Seconds the meeting token is valid: at most 900.
             */
            expires_in: number;
            /** @description The meeting after the join. */
            meeting: components["schemas"]["Meeting"];
            /**
             * @description A meeting token from AC (`aud: convene-mc`), for the first message of the signaling
             *     WebSocket; a waiting caller gets one too.
             */
            meeting_token: string;
            role: components["schemas"]["MeetingRole"];
            /**
             * Format: uri
             * @description `<the controller's public WebSocket URL>/ws/v1/meetings/<code>`.
             */
            signaling_url: string;
            /** @enum {string} */
            status: "admitted" | "waiting";
        };
        /** @description `{"status": "left"}`. */
        LeaveResponse: {
            /** @enum {string} */
            status: "left";
        };
        /** @description The body of `GET /health/live`: `{"status": "live"}`. */
        Live: {
            /** @enum {string} */
            status: "live";
        };
        /** @description What the host decided for one user in the lobby. */
        LobbyDecision: {
            /** @enum {string} */
            status: "admitted" | "rejected";
            /** Format: uuid */
            user_id: string;
        };
        /**
         * @description A meeting (DESIGN §3), as one caller sees it. It has no field for the join-token secret,
         *     nor the org's id.
         */
        Meeting: {
            /** Format: date-time */
            created_at: string;
            display_name: components["schemas"]["DisplayName"];
            /** Format: date-time */
            ended_at?: string | null;
            /**
             * Format: uuid
             * @description The user who hosts it now: its creator, until the host hands it over or leaves (DESIGN
             *     §12); null while nobody hosts.
             */
            host_id?: string | null;
            /**
             * Format: uri
             * @description `<GC_PUBLIC_BASE_URL>/m/<meeting_code>`.
             */
            join_url: string;
            /**
             * Format: int32
             * @description People waiting in the lobby: present only when the caller is the host.
             */
            lobby_count?: number;
            /** Format: int32 */
            max_participants: number;
            meeting_code: components["schemas"]["MeetingCode"];
            /**
             * Format: uuid
             * @description A UUIDv7.
             */
            meeting_id: string;
            /**
             * Format: int32
             * @description People seated in the room now (0 once ended).
             */
            participant_count: number;
            /**
             * Format: date-time
             * @description In UTC.
             */
            scheduled_start_time?: string | null;
            settings: components["schemas"]["MeetingSettings"];
            /**
             * Format: date-time
             * @description When the first seat was taken.
             */
            started_at?: string | null;
            /** @enum {string} */
            status: "scheduled" | "active" | "ended";
        };
        /**
         * @description A meeting code: 12 characters of 0-9A-Za-z, drawn uniformly from a CSPRNG, unique across the platform.
         * @example wRmjjLrHq4qH
         */
        MeetingCode: string;
        /**
         * @description A participant's role in one meeting: its host, or anyone else.
         * @enum {string}
         */
        MeetingRole: "host" | "guest";
        /** @description A meeting's settings, all seven always present. */
        MeetingSettings: {
            /** @description Users of every organization may see and join the meeting (default `false`). */
            allow_external_participants: boolean;
            /** @description Concerns people without an account, whom this version does not admit (default `false`). */
            allow_guests: boolean;
            /** @description Stored for the media plane (default `true`). */
            enable_e2e_encryption: boolean;
            /** @description Stored for the media plane; nothing in Convene acts on it yet (default `false`). */
            enable_transcription: boolean;
            /** @description Stored for the media plane (default `false`). */
            recording_enabled: boolean;
            /** @description Concerns people without an account, whom this version does not admit (default `true`). */
            require_auth: boolean;
            /** @description Guests wait in the lobby until the host admits them (default `true`). */
            waiting_room_enabled: boolean;
        };
        /** @description `{"status": "ready"}`. */
        Ready: {
            /** @enum {string} */
            status: "ready";
        };
        /** @description The host removed someone. */
        RemoveResponse: {
            /** @enum {string} */
            status: "removed";
            /** Format: uuid */
            user_id: string;
        };
        /** @description The settings a request may set; absent (or `null`) ones keep their secure default. */
        SettingsRequest: {
            /** @description Default `false`. */
            allow_external_participants?: boolean | null;
            /** @description Default `false`. */
            allow_guests?: boolean | null;
            /** @description Default `true`. */
            enable_e2e_encryption?: boolean | null;
            /** @description Default `false`. */
            enable_transcription?: boolean | null;
            /** @description Another name for `waiting_room_enabled` (DESIGN §3); if both are sent they must agree. */
            lock_room?: boolean | null;
            /** @description Default `false`. */
            recording_enabled?: boolean | null;
            /** @description Default `true`. */
            require_auth?: boolean | null;
            /** @description Default `true`. */
            waiting_room_enabled?: boolean | null;
        } & (({
            lock_room?: null;
        } & {
            [key: string]: unknown;
        }) | ({
            waiting_room_enabled?: null;
        } & {
            [key: string]: unknown;
        }) | ({
            /** @enum {boolean} */
            lock_room?: true;
            /** @enum {boolean} */
            waiting_room_enabled?: true;
        } & {
            [key: string]: unknown;
        }) | ({
            /** @enum {boolean} */
            lock_room?: false;
            /** @enum {boolean} */
            waiting_room_enabled?: false;
        } & {
            [key: string]: unknown;
        }));
        /** @description `PATCH /api/v1/webhooks/{webhook_id}`: the fields to change. */
        UpdateWebhookRequest: {
            description?: string | null;
            /**
             * @description `true` enables it again (also after GC disabled it on a 410); `false` stops deliveries,
             *     which wait until it is enabled.
             */
            enabled?: boolean | null;
            events?: components["schemas"]["EventType"][] | null;
            url?: string | null;
        };
        /** @description `GET /api/v1/webhooks`. */
        WebhookListResponse: {
            webhooks: components["schemas"]["WebhookResponse"][];
        };
        /** @description A webhook. The secret is never shown here, only when it is made. */
        WebhookResponse: {
            /** Format: date-time */
            created_at: string;
            description: string;
            /** @description `gone` when GC disabled it because the endpoint answered 410; null otherwise. */
            disabled_reason?: string | null;
            enabled: boolean;
            events: string[];
            /**
             * Format: date-time
             * @description While a rotated-out secret still signs (beside the current one): until when.
             */
            previous_secret_expires_at?: string | null;
            /** Format: date-time */
            updated_at: string;
            url: string;
            /** Format: uuid */
            webhook_id: string;
        };
        /**
         * @description A webhook with its new secret: the answer of create and of rotate-secret, the only times
         *     the secret is shown.
         */
        WebhookWithSecretResponse: components["schemas"]["WebhookResponse"] & {
            /** @description `whsec_` + base64 of 32 random bytes, as the Standard Webhooks libraries take it. */
            secret: string;
        };
    };
    responses: never;
    parameters: never;
    requestBodies: never;
    headers: never;
    pathItems: never;
}
export type $defs = Record<string, never>;
export interface operations {
    create_meeting: {
        parameters: {
            query?: never;
            header?: {
                /**
                 * @description Makes the create safe to retry: 1-255 visible ASCII characters (`!` to `~`), sent once; per user, honoured for 24 hours
                 * @example 0190f1b2-7c1e-7abc-8def-0123456789ab
                 */
                "Idempotency-Key"?: string;
            };
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["CreateMeetingRequest"];
            };
        };
        responses: {
            /** @description Created (or, with `Idempotent-Replayed: true`, the meeting a first request with the same key created, in its current state). No `Location` header. */
            201: {
                headers: {
                    /** @description `true` on a replay; absent otherwise */
                    "Idempotent-Replayed"?: string;
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "created_at": "2026-11-21T21:10:23.552871Z",
                     *       "display_name": "Weekly sync",
                     *       "ended_at": null,
                     *       "host_id": "f3067a20-7ca4-4fd5-b01f-f824d67f9a1b",
                     *       "join_url": "http://127.0.0.1:8080/m/wRmjjLrHq4qH",
                     *       "lobby_count": 0,
                     *       "max_participants": 25,
                     *       "meeting_code": "wRmjjLrHq4qH",
                     *       "meeting_id": "01a1fff2-2c3f-7011-9c5b-33dff30e3113",
                     *       "participant_count": 0,
                     *       "scheduled_start_time": "2027-01-07T08:00:00Z",
                     *       "settings": {
                     *         "allow_external_participants": false,
                     *         "allow_guests": false,
                     *         "enable_e2e_encryption": true,
                     *         "enable_transcription": true,
                     *         "recording_enabled": false,
                     *         "require_auth": true,
                     *         "waiting_room_enabled": false
                     *       },
                     *       "started_at": null,
                     *       "status": "scheduled"
                     *     }
                     */
                    "application/json": components["schemas"]["Meeting"];
                };
            };
            /** @description A field breaks its rule, `max_participants` is above the org's limit, `lock_room` and `waiting_room_enabled` disagree, or the `Idempotency-Key` is malformed */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No valid bearer token */
            401: {
                headers: {
                    /** @description Always `Bearer realm="convene"`. */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The token lacks the role; the user or the org is not active; or the org already has `max_concurrent_meetings` meetings in `scheduled` or `active` */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The `Idempotency-Key` was used with another request */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": {
                     *         "code": "CONFLICT",
                     *         "message": "this Idempotency-Key was already used with a different request"
                     *       }
                     *     }
                     */
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The body is over 64 KiB */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request target is over 8 KiB */
            414: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request headers are too large */
            431: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description A failure on the service's side */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Temporarily unavailable; safe to retry */
            503: {
                headers: {
                    /** @description Seconds to wait before retrying: on every 503, and on a 429 (a full hashing capacity, a rate limit). */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    get_meeting: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The meeting code; anything but 12 characters of 0-9A-Za-z is an unknown meeting (404) */
                code: components["schemas"]["MeetingCode"];
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The meeting */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "created_at": "2026-11-21T21:10:23.552871Z",
                     *       "display_name": "Weekly sync",
                     *       "ended_at": null,
                     *       "host_id": "f3067a20-7ca4-4fd5-b01f-f824d67f9a1b",
                     *       "join_url": "http://127.0.0.1:8080/m/wRmjjLrHq4qH",
                     *       "lobby_count": 0,
                     *       "max_participants": 25,
                     *       "meeting_code": "wRmjjLrHq4qH",
                     *       "meeting_id": "01a1fff2-2c3f-7011-9c5b-33dff30e3113",
                     *       "participant_count": 1,
                     *       "scheduled_start_time": "2027-01-07T08:00:00Z",
                     *       "settings": {
                     *         "allow_external_participants": false,
                     *         "allow_guests": false,
                     *         "enable_e2e_encryption": true,
                     *         "enable_transcription": true,
                     *         "recording_enabled": false,
                     *         "require_auth": true,
                     *         "waiting_room_enabled": false
                     *       },
                     *       "started_at": "2026-12-01T12:47:04.272041Z",
                     *       "status": "active"
                     *     }
                     */
                    "application/json": components["schemas"]["Meeting"];
                };
            };
            /** @description The request is malformed */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No valid bearer token */
            401: {
                headers: {
                    /** @description Always `Bearer realm="convene"`. */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Unknown, ended or invisible meeting: all the same answer, so codes cannot be probed */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": {
                     *         "code": "NOT_FOUND",
                     *         "message": "the resource does not exist"
                     *       }
                     *     }
                     */
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request target is over 8 KiB */
            414: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request headers are too large */
            431: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description A failure on the service's side */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Temporarily unavailable; safe to retry */
            503: {
                headers: {
                    /** @description Seconds to wait before retrying: on every 503, and on a 429 (a full hashing capacity, a rate limit). */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    admit_all: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The meeting code; anything but 12 characters of 0-9A-Za-z is an unknown meeting (404) */
                code: components["schemas"]["MeetingCode"];
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Admitted while seats remained */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "admitted": [
                     *         "0b9c0f3e-5d0c-4c7e-8a51-2f4d9f1c6a10",
                     *         "5e2d7c1b-9a43-4f0e-b2d6-8c1e0a7f3b22"
                     *       ],
                     *       "still_waiting": [
                     *         "c3a1e9d7-6b25-4e8f-9f10-4d2b7a6e8c33"
                     *       ]
                     *     }
                     */
                    "application/json": components["schemas"]["AdmitAllResponse"];
                };
            };
            /** @description The request is malformed */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No valid bearer token */
            401: {
                headers: {
                    /** @description Always `Bearer realm="convene"`. */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The caller may see the meeting but is not its host */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": {
                     *         "code": "FORBIDDEN",
                     *         "message": "only the meeting's host may do this"
                     *       }
                     *     }
                     */
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Unknown, ended or invisible meeting: all the same answer, so codes cannot be probed */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": {
                     *         "code": "NOT_FOUND",
                     *         "message": "the resource does not exist"
                     *       }
                     *     }
                     */
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request target is over 8 KiB */
            414: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request headers are too large */
            431: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description A failure on the service's side */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The meeting's controller failed or is unreachable (or AC, for GC's own service token); safe to retry */
            503: {
                headers: {
                    /** @description Seconds to wait before retrying: on every 503, and on a 429 (a full hashing capacity, a rate limit). */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    admit: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The meeting code; anything but 12 characters of 0-9A-Za-z is an unknown meeting (404) */
                code: components["schemas"]["MeetingCode"];
                /** @description The user to admit (their token's `sub`); anything but a UUID is a 404 */
                user_id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Seated */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "status": "admitted",
                     *       "user_id": "67b7069f-22ef-4512-8324-02ad22af87f8"
                     *     }
                     */
                    "application/json": components["schemas"]["LobbyDecision"];
                };
            };
            /** @description The request is malformed */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No valid bearer token */
            401: {
                headers: {
                    /** @description Always `Bearer realm="convene"`. */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The caller may see the meeting but is not its host */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": {
                     *         "code": "FORBIDDEN",
                     *         "message": "only the meeting's host may do this"
                     *       }
                     *     }
                     */
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Unknown, ended or invisible meeting; `user_id` not a UUID; the user neither waiting nor seated; nobody has joined yet */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No free seat; the user stays in the lobby */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": {
                     *         "code": "MEETING_FULL",
                     *         "message": "the meeting is full"
                     *       }
                     *     }
                     */
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request target is over 8 KiB */
            414: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request headers are too large */
            431: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description A failure on the service's side */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The meeting's controller failed or is unreachable (or AC, for GC's own service token); safe to retry */
            503: {
                headers: {
                    /** @description Seconds to wait before retrying: on every 503, and on a 429 (a full hashing capacity, a rate limit). */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    update_config: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The meeting code; anything but 12 characters of 0-9A-Za-z is an unknown meeting (404) */
                code: components["schemas"]["MeetingCode"];
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "lock_room": false,
                 *       "max_participants": 10
                 *     }
                 */
                "application/json": components["schemas"]["ConfigRequest"];
            };
        };
        responses: {
            /** @description The meeting as its host sees it, after the change */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "created_at": "2026-11-21T21:10:23.552871Z",
                     *       "display_name": "Weekly sync",
                     *       "ended_at": null,
                     *       "host_id": "f3067a20-7ca4-4fd5-b01f-f824d67f9a1b",
                     *       "join_url": "http://127.0.0.1:8080/m/wRmjjLrHq4qH",
                     *       "lobby_count": 0,
                     *       "max_participants": 25,
                     *       "meeting_code": "wRmjjLrHq4qH",
                     *       "meeting_id": "01a1fff2-2c3f-7011-9c5b-33dff30e3113",
                     *       "participant_count": 1,
                     *       "scheduled_start_time": "2027-01-07T08:00:00Z",
                     *       "settings": {
                     *         "allow_external_participants": false,
                     *         "allow_guests": false,
                     *         "enable_e2e_encryption": true,
                     *         "enable_transcription": true,
                     *         "recording_enabled": false,
                     *         "require_auth": true,
                     *         "waiting_room_enabled": false
                     *       },
                     *       "started_at": "2026-12-01T12:47:04.272041Z",
                     *       "status": "active"
                     *     }
                     */
                    "application/json": components["schemas"]["Meeting"];
                };
            };
            /** @description A field out of range (`max_participants` below 2 or above the org's limit), `lock_room` and `waiting_room_enabled` disagree */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No valid bearer token */
            401: {
                headers: {
                    /** @description Always `Bearer realm="convene"`. */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The caller may see the meeting but is not its host */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": {
                     *         "code": "FORBIDDEN",
                     *         "message": "only the meeting's host may do this"
                     *       }
                     *     }
                     */
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Unknown, ended or invisible meeting: all the same answer, so codes cannot be probed */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": {
                     *         "code": "NOT_FOUND",
                     *         "message": "the resource does not exist"
                     *       }
                     *     }
                     */
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The body is over 64 KiB */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request target is over 8 KiB */
            414: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request headers are too large */
            431: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description A failure on the service's side */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The controller failed; the change is stored: send it again */
            503: {
                headers: {
                    /** @description Seconds to wait before retrying: on every 503, and on a 429 (a full hashing capacity, a rate limit). */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    end_meeting: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The meeting code; anything but 12 characters of 0-9A-Za-z is an unknown meeting (404) */
                code: components["schemas"]["MeetingCode"];
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Ended, with `ended_at`, `participant_count` 0 and `lobby_count` 0 */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "created_at": "2026-11-21T21:10:23.552871Z",
                     *       "display_name": "Weekly sync",
                     *       "ended_at": "2026-12-01T13:30:12.003117Z",
                     *       "host_id": "f3067a20-7ca4-4fd5-b01f-f824d67f9a1b",
                     *       "join_url": "http://127.0.0.1:8080/m/wRmjjLrHq4qH",
                     *       "lobby_count": 0,
                     *       "max_participants": 25,
                     *       "meeting_code": "wRmjjLrHq4qH",
                     *       "meeting_id": "01a1fff2-2c3f-7011-9c5b-33dff30e3113",
                     *       "participant_count": 0,
                     *       "scheduled_start_time": "2027-01-07T08:00:00Z",
                     *       "settings": {
                     *         "allow_external_participants": false,
                     *         "allow_guests": false,
                     *         "enable_e2e_encryption": true,
                     *         "enable_transcription": true,
                     *         "recording_enabled": false,
                     *         "require_auth": true,
                     *         "waiting_room_enabled": false
                     *       },
                     *       "started_at": "2026-12-01T12:47:04.272041Z",
                     *       "status": "ended"
                     *     }
                     */
                    "application/json": components["schemas"]["Meeting"];
                };
            };
            /** @description The request is malformed */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No valid bearer token */
            401: {
                headers: {
                    /** @description Always `Bearer realm="convene"`. */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The caller is not the host, also when the meeting has ended */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": {
                     *         "code": "FORBIDDEN",
                     *         "message": "only the meeting's host may do this"
                     *       }
                     *     }
                     */
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Unknown code, or a meeting the caller may not see */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": {
                     *         "code": "NOT_FOUND",
                     *         "message": "the resource does not exist"
                     *       }
                     *     }
                     */
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request target is over 8 KiB */
            414: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request headers are too large */
            431: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description A failure on the service's side */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Temporarily unavailable; safe to retry */
            503: {
                headers: {
                    /** @description Seconds to wait before retrying: on every 503, and on a 429 (a full hashing capacity, a rate limit). */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    guest_join: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The meeting code; anything but 12 characters of 0-9A-Za-z is an unknown meeting (404) */
                code: components["schemas"]["MeetingCode"];
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["GuestJoinRequest"];
            };
        };
        responses: {
            /** @description Waiting in the lobby */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "expires_in": 900,
                     *       "guest_token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSIsImtpZCI6ImsyMDI2MTEyMS1hQmNEZWZHaElqS2wifQ.eyJ0b2tlbl90eXBlIjoiZ3Vlc3QifQ.c2lnbmF0dXJl",
                     *       "meeting": {
                     *         "created_at": "2026-11-21T21:10:23.552871Z",
                     *         "display_name": "Weekly sync",
                     *         "ended_at": null,
                     *         "host_id": "f3067a20-7ca4-4fd5-b01f-f824d67f9a1b",
                     *         "join_url": "http://127.0.0.1:8080/m/wRmjjLrHq4qH",
                     *         "lobby_count": 0,
                     *         "max_participants": 25,
                     *         "meeting_code": "wRmjjLrHq4qH",
                     *         "meeting_id": "01a1fff2-2c3f-7011-9c5b-33dff30e3113",
                     *         "participant_count": 1,
                     *         "scheduled_start_time": "2027-01-07T08:00:00Z",
                     *         "settings": {
                     *           "allow_external_participants": false,
                     *           "allow_guests": false,
                     *           "enable_e2e_encryption": true,
                     *           "enable_transcription": true,
                     *           "recording_enabled": false,
                     *           "require_auth": true,
                     *           "waiting_room_enabled": false
                     *         },
                     *         "started_at": "2026-12-01T12:47:04.272041Z",
                     *         "status": "active"
                     *       },
                     *       "meeting_token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSIsImtpZCI6ImsyMDI2MTEyMS1hQmNEZWZHaElqS2wifQ.eyJ0b2tlbl90eXBlIjoibWVldGluZyJ9.c2lnbmF0dXJl",
                     *       "role": "guest",
                     *       "signaling_url": "ws://127.0.0.1:8081/ws/v1/meetings/wRmjjLrHq4qH",
                     *       "status": "waiting"
                     *     }
                     */
                    "application/json": components["schemas"]["GuestJoinResponse"];
                };
            };
            /** @description A malformed body or a name that breaks the rules */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Unknown, ended, or not open to guests: all the same answer */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": {
                     *         "code": "NOT_FOUND",
                     *         "message": "the resource does not exist"
                     *       }
                     *     }
                     */
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The lobby holds as many guests as it may (`MAX_GUESTS_WAITING`, 50), or (for an older meeting controller) no free seat */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": {
                     *         "code": "LOBBY_FULL",
                     *         "message": "the lobby holds as many guests as it may"
                     *       }
                     *     }
                     */
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The body is over 64 KiB */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request target is over 8 KiB */
            414: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description This client address (an IPv6 /64) asked to join as a guest too often: 10 at once, then one every 6 s (`GC_GUEST_JOIN_BURST`, `GC_GUEST_JOIN_INTERVAL_MS`); `Retry-After` says when to try again */
            429: {
                headers: {
                    /** @description Seconds until this address may ask again */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": {
                     *         "code": "RATE_LIMITED",
                     *         "message": "too many requests, retry later"
                     *       }
                     *     }
                     */
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request headers are too large */
            431: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description A failure on the service's side */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No controller can take the meeting; its controller failed; AC did not issue the meeting token. If AC failed after the seat was taken, the seat stands: join again to get the token */
            503: {
                headers: {
                    /** @description Seconds to wait before retrying: on every 503, and on a 429 (a full hashing capacity, a rate limit). */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    hand_over: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The meeting code; anything but 12 characters of 0-9A-Za-z is an unknown meeting (404) */
                code: components["schemas"]["MeetingCode"];
                /** @description The seated member to make the host; anything but a UUID is a 404 */
                user_id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Handed over */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Meeting"];
                };
            };
            /** @description The request is malformed */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No valid bearer token */
            401: {
                headers: {
                    /** @description Always `Bearer realm="convene"`. */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The caller does not host the meeting (any more) */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": {
                     *         "code": "FORBIDDEN",
                     *         "message": "only the meeting's host may do this"
                     *       }
                     *     }
                     */
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Unknown, ended or invisible meeting; `user_id` not a UUID */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": {
                     *         "code": "NOT_FOUND",
                     *         "message": "the resource does not exist"
                     *       }
                     *     }
                     */
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The user is not seated, is a guest without an account, or is not a member of the meeting's organization */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": {
                     *         "code": "CONFLICT",
                     *         "message": "only a member of the meeting's organization can host it"
                     *       }
                     *     }
                     */
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request target is over 8 KiB */
            414: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request headers are too large */
            431: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description A failure on the service's side */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The meeting's controller failed or is unreachable (or AC, for GC's own service token); safe to retry */
            503: {
                headers: {
                    /** @description Seconds to wait before retrying: on every 503, and on a 429 (a full hashing capacity, a rate limit). */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    join_meeting: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The meeting code; anything but 12 characters of 0-9A-Za-z is an unknown meeting (404) */
                code: components["schemas"]["MeetingCode"];
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Seated or waiting */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "expires_in": 900,
                     *       "meeting": {
                     *         "created_at": "2026-11-21T21:10:23.552871Z",
                     *         "display_name": "Weekly sync",
                     *         "ended_at": null,
                     *         "host_id": "f3067a20-7ca4-4fd5-b01f-f824d67f9a1b",
                     *         "join_url": "http://127.0.0.1:8080/m/wRmjjLrHq4qH",
                     *         "lobby_count": 0,
                     *         "max_participants": 25,
                     *         "meeting_code": "wRmjjLrHq4qH",
                     *         "meeting_id": "01a1fff2-2c3f-7011-9c5b-33dff30e3113",
                     *         "participant_count": 1,
                     *         "scheduled_start_time": "2027-01-07T08:00:00Z",
                     *         "settings": {
                     *           "allow_external_participants": false,
                     *           "allow_guests": false,
                     *           "enable_e2e_encryption": true,
                     *           "enable_transcription": true,
                     *           "recording_enabled": false,
                     *           "require_auth": true,
                     *           "waiting_room_enabled": false
                     *         },
                     *         "started_at": "2026-12-01T12:47:04.272041Z",
                     *         "status": "active"
                     *       },
                     *       "meeting_token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSIsImtpZCI6ImsyMDI2MTEyMS1hQmNEZWZHaElqS2wifQ.eyJ0b2tlbl90eXBlIjoibWVldGluZyJ9.c2lnbmF0dXJl",
                     *       "role": "host",
                     *       "signaling_url": "ws://127.0.0.1:8081/ws/v1/meetings/wRmjjLrHq4qH",
                     *       "status": "admitted"
                     *     }
                     */
                    "application/json": components["schemas"]["JoinResponse"];
                };
            };
            /** @description The request is malformed */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No valid bearer token */
            401: {
                headers: {
                    /** @description Always `Bearer realm="convene"`. */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Unknown, ended or invisible meeting: all the same answer, so codes cannot be probed */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": {
                     *         "code": "NOT_FOUND",
                     *         "message": "the resource does not exist"
                     *       }
                     *     }
                     */
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No free seat for a caller who would be seated; the caller is neither seated nor put in the lobby */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": {
                     *         "code": "MEETING_FULL",
                     *         "message": "the meeting is full"
                     *       }
                     *     }
                     */
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request target is over 8 KiB */
            414: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The caller joined and left this meeting too often: 20 at once, then one every 3 s (`GC_JOIN_LEAVE_BURST`, `GC_JOIN_LEAVE_INTERVAL_MS`); `Retry-After` says when to try again */
            429: {
                headers: {
                    /** @description Seconds until the next join or leave is allowed */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": {
                     *         "code": "RATE_LIMITED",
                     *         "message": "too many requests, retry later"
                     *       }
                     *     }
                     */
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request headers are too large */
            431: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description A failure on the service's side */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No controller can take the meeting; its controller failed; AC did not issue the meeting token. If AC failed after the seat was taken, the seat stands: join again to get the token */
            503: {
                headers: {
                    /** @description Seconds to wait before retrying: on every 503, and on a 429 (a full hashing capacity, a rate limit). */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    leave_meeting: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The meeting code; anything but 12 characters of 0-9A-Za-z is an unknown meeting (404) */
                code: components["schemas"]["MeetingCode"];
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Not in the room or the lobby any more */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "status": "left"
                     *     }
                     */
                    "application/json": components["schemas"]["LeaveResponse"];
                };
            };
            /** @description The request is malformed */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No valid bearer token */
            401: {
                headers: {
                    /** @description Always `Bearer realm="convene"`. */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Unknown, ended or invisible meeting: all the same answer, so codes cannot be probed */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": {
                     *         "code": "NOT_FOUND",
                     *         "message": "the resource does not exist"
                     *       }
                     *     }
                     */
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request target is over 8 KiB */
            414: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The caller joined and left this meeting too often: 20 at once, then one every 3 s (`GC_JOIN_LEAVE_BURST`, `GC_JOIN_LEAVE_INTERVAL_MS`); `Retry-After` says when to try again */
            429: {
                headers: {
                    /** @description Seconds until the next join or leave is allowed */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": {
                     *         "code": "RATE_LIMITED",
                     *         "message": "too many requests, retry later"
                     *       }
                     *     }
                     */
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request headers are too large */
            431: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description A failure on the service's side */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The controller failed; the caller may still be in the room: leave again */
            503: {
                headers: {
                    /** @description Seconds to wait before retrying: on every 503, and on a 429 (a full hashing capacity, a rate limit). */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    reject: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The meeting code; anything but 12 characters of 0-9A-Za-z is an unknown meeting (404) */
                code: components["schemas"]["MeetingCode"];
                /** @description The user to reject; anything but a UUID is a 404 */
                user_id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Rejected */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "status": "rejected",
                     *       "user_id": "67b7069f-22ef-4512-8324-02ad22af87f8"
                     *     }
                     */
                    "application/json": components["schemas"]["LobbyDecision"];
                };
            };
            /** @description The request is malformed */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No valid bearer token */
            401: {
                headers: {
                    /** @description Always `Bearer realm="convene"`. */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The caller may see the meeting but is not its host */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": {
                     *         "code": "FORBIDDEN",
                     *         "message": "only the meeting's host may do this"
                     *       }
                     *     }
                     */
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Unknown, ended or invisible meeting; `user_id` not a UUID; the user not waiting (also when seated, or rejected already); nobody has joined yet */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request target is over 8 KiB */
            414: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request headers are too large */
            431: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description A failure on the service's side */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The meeting's controller failed or is unreachable (or AC, for GC's own service token); safe to retry */
            503: {
                headers: {
                    /** @description Seconds to wait before retrying: on every 503, and on a 429 (a full hashing capacity, a rate limit). */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    remove: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The meeting code; anything but 12 characters of 0-9A-Za-z is an unknown meeting (404) */
                code: components["schemas"]["MeetingCode"];
                /** @description The user or guest to remove; anything but a UUID is a 404 */
                user_id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Removed */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "status": "removed",
                     *       "user_id": "67b7069f-22ef-4512-8324-02ad22af87f8"
                     *     }
                     */
                    "application/json": components["schemas"]["RemoveResponse"];
                };
            };
            /** @description The request is malformed */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No valid bearer token */
            401: {
                headers: {
                    /** @description Always `Bearer realm="convene"`. */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The caller may see the meeting but is not its host */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": {
                     *         "code": "FORBIDDEN",
                     *         "message": "only the meeting's host may do this"
                     *       }
                     *     }
                     */
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Unknown, ended or invisible meeting; `user_id` not a UUID; nobody has joined the meeting yet */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": {
                     *         "code": "NOT_FOUND",
                     *         "message": "the resource does not exist"
                     *       }
                     *     }
                     */
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The host cannot remove themselves */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": {
                     *         "code": "CONFLICT",
                     *         "message": "the host cannot be removed; hand the meeting over first"
                     *       }
                     *     }
                     */
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request target is over 8 KiB */
            414: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request headers are too large */
            431: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description A failure on the service's side */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The meeting's controller failed or is unreachable (or AC, for GC's own service token); safe to retry */
            503: {
                headers: {
                    /** @description Seconds to wait before retrying: on every 503, and on a 429 (a full hashing capacity, a rate limit). */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    history: {
        parameters: {
            query?: {
                /** @description The page, from 1. */
                page?: number;
                /** @description Meetings per page. */
                page_size?: number;
                role?: "host" | "guest" | "any";
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description One page */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "items": [
                     *         {
                     *           "created_at": "2026-11-21T21:10:23.552871Z",
                     *           "display_name": "Weekly sync",
                     *           "ended_at": "2026-12-01T13:30:12.003117Z",
                     *           "host_id": "f3067a20-7ca4-4fd5-b01f-f824d67f9a1b",
                     *           "join_url": "http://127.0.0.1:8080/m/wRmjjLrHq4qH",
                     *           "lobby_count": 0,
                     *           "max_participants": 25,
                     *           "meeting_code": "wRmjjLrHq4qH",
                     *           "meeting_id": "01a1fff2-2c3f-7011-9c5b-33dff30e3113",
                     *           "participant_count": 0,
                     *           "scheduled_start_time": "2027-01-07T08:00:00Z",
                     *           "settings": {
                     *             "allow_external_participants": false,
                     *             "allow_guests": false,
                     *             "enable_e2e_encryption": true,
                     *             "enable_transcription": true,
                     *             "recording_enabled": false,
                     *             "require_auth": true,
                     *             "waiting_room_enabled": false
                     *           },
                     *           "started_at": "2026-12-01T12:47:04.272041Z",
                     *           "status": "ended"
                     *         }
                     *       ],
                     *       "page": 1,
                     *       "page_size": 20,
                     *       "total": 1
                     *     }
                     */
                    "application/json": components["schemas"]["HistoryResponse"];
                };
            };
            /** @description `page` or `page_size` out of range, an unknown `role`, a value that is not a number, an unknown parameter */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No valid bearer token */
            401: {
                headers: {
                    /** @description Always `Bearer realm="convene"`. */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request target is over 8 KiB */
            414: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request headers are too large */
            431: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description A failure on the service's side */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Temporarily unavailable; safe to retry */
            503: {
                headers: {
                    /** @description Seconds to wait before retrying: on every 503, and on a 429 (a full hashing capacity, a rate limit). */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    openapi_document: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The document */
            200: {
                headers: {
                    /** @description `public, max-age=300` */
                    "Cache-Control"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": Record<string, never>;
                };
            };
            /** @description The request is malformed */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request target is over 8 KiB */
            414: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request headers are too large */
            431: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description A failure on the service's side */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Temporarily unavailable; safe to retry */
            503: {
                headers: {
                    /** @description Seconds to wait before retrying: on every 503, and on a 429 (a full hashing capacity, a rate limit). */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    list: {
        parameters: {
            query?: {
                /**
                 * @description The organization, for an `admin` service token (required then); a user may give only
                 *     their own.
                 */
                org_id?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The organization's webhooks, oldest first */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["WebhookListResponse"];
                };
            };
            /** @description The request is malformed */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No valid bearer token */
            401: {
                headers: {
                    /** @description Always `Bearer realm="convene"`. */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description An `org_admin` of the organization, or an `admin` service token naming it with `?org_id=` */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request target is over 8 KiB */
            414: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request headers are too large */
            431: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description A failure on the service's side */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Temporarily unavailable; safe to retry */
            503: {
                headers: {
                    /** @description Seconds to wait before retrying: on every 503, and on a 429 (a full hashing capacity, a rate limit). */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    create: {
        parameters: {
            query?: {
                /**
                 * @description The organization, for an `admin` service token (required then); a user may give only
                 *     their own.
                 */
                org_id?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "description": "CRM sync",
                 *       "events": [
                 *         "meeting.created",
                 *         "meeting.ended"
                 *       ],
                 *       "url": "https://hooks.example.com/convene"
                 *     }
                 */
                "application/json": components["schemas"]["CreateWebhookRequest"];
            };
        };
        responses: {
            /** @description Created; `secret` is shown only here */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["WebhookWithSecretResponse"];
                };
            };
            /** @description A field is invalid (the URL, an unknown event type, ...) */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No valid bearer token */
            401: {
                headers: {
                    /** @description Always `Bearer realm="convene"`. */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description An `org_admin` of the organization, or an `admin` service token naming it with `?org_id=` */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The organization has 20 webhooks already */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The body is over 64 KiB */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request target is over 8 KiB */
            414: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request headers are too large */
            431: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description A failure on the service's side */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Webhooks are not configured on this deployment */
            503: {
                headers: {
                    /** @description Seconds to wait before retrying: on every 503, and on a 429 (a full hashing capacity, a rate limit). */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    get: {
        parameters: {
            query?: {
                /**
                 * @description The organization, for an `admin` service token (required then); a user may give only
                 *     their own.
                 */
                org_id?: string;
            };
            header?: never;
            path: {
                webhook_id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The webhook */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["WebhookResponse"];
                };
            };
            /** @description The request is malformed */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No valid bearer token */
            401: {
                headers: {
                    /** @description Always `Bearer realm="convene"`. */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description An `org_admin` of the organization, or an `admin` service token naming it with `?org_id=` */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No such webhook in the organization */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request target is over 8 KiB */
            414: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request headers are too large */
            431: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description A failure on the service's side */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Temporarily unavailable; safe to retry */
            503: {
                headers: {
                    /** @description Seconds to wait before retrying: on every 503, and on a 429 (a full hashing capacity, a rate limit). */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    delete: {
        parameters: {
            query?: {
                /**
                 * @description The organization, for an `admin` service token (required then); a user may give only
                 *     their own.
                 */
                org_id?: string;
            };
            header?: never;
            path: {
                webhook_id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Deleted, with its deliveries (pending ones are not sent) */
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            /** @description The request is malformed */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No valid bearer token */
            401: {
                headers: {
                    /** @description Always `Bearer realm="convene"`. */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description An `org_admin` of the organization, or an `admin` service token naming it with `?org_id=` */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No such webhook in the organization */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request target is over 8 KiB */
            414: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request headers are too large */
            431: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description A failure on the service's side */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Temporarily unavailable; safe to retry */
            503: {
                headers: {
                    /** @description Seconds to wait before retrying: on every 503, and on a 429 (a full hashing capacity, a rate limit). */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    update: {
        parameters: {
            query?: {
                /**
                 * @description The organization, for an `admin` service token (required then); a user may give only
                 *     their own.
                 */
                org_id?: string;
            };
            header?: never;
            path: {
                webhook_id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "enabled": true
                 *     }
                 */
                "application/json": components["schemas"]["UpdateWebhookRequest"];
            };
        };
        responses: {
            /** @description The webhook after the change */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["WebhookResponse"];
                };
            };
            /** @description A field is invalid */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No valid bearer token */
            401: {
                headers: {
                    /** @description Always `Bearer realm="convene"`. */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description An `org_admin` of the organization, or an `admin` service token naming it with `?org_id=` */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No such webhook in the organization */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The body is over 64 KiB */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request target is over 8 KiB */
            414: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request headers are too large */
            431: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description A failure on the service's side */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Temporarily unavailable; safe to retry */
            503: {
                headers: {
                    /** @description Seconds to wait before retrying: on every 503, and on a 429 (a full hashing capacity, a rate limit). */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    deliveries: {
        parameters: {
            query?: {
                /** @description See [`OrgQuery`]. */
                org_id?: string;
                /** @description From 1; 50 deliveries a page, newest first. */
                page?: number;
                /** @description `pending`, `delivered` or `failed`. */
                status?: string;
            };
            header?: never;
            path: {
                webhook_id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description A page of deliveries, newest first */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["DeliveryListResponse"];
                };
            };
            /** @description An unknown status or a page out of range */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No valid bearer token */
            401: {
                headers: {
                    /** @description Always `Bearer realm="convene"`. */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description An `org_admin` of the organization, or an `admin` service token naming it with `?org_id=` */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No such webhook in the organization */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request target is over 8 KiB */
            414: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request headers are too large */
            431: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description A failure on the service's side */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Temporarily unavailable; safe to retry */
            503: {
                headers: {
                    /** @description Seconds to wait before retrying: on every 503, and on a 429 (a full hashing capacity, a rate limit). */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    retry: {
        parameters: {
            query?: {
                /**
                 * @description The organization, for an `admin` service token (required then); a user may give only
                 *     their own.
                 */
                org_id?: string;
            };
            header?: never;
            path: {
                delivery_id: string;
                webhook_id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Due now, with a fresh retry window */
            202: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["DeliveryResponse"];
                };
            };
            /** @description The request is malformed */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No valid bearer token */
            401: {
                headers: {
                    /** @description Always `Bearer realm="convene"`. */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description An `org_admin` of the organization, or an `admin` service token naming it with `?org_id=` */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No such delivery of a webhook of the organization */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description It was delivered already */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request target is over 8 KiB */
            414: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request headers are too large */
            431: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description A failure on the service's side */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Temporarily unavailable; safe to retry */
            503: {
                headers: {
                    /** @description Seconds to wait before retrying: on every 503, and on a 429 (a full hashing capacity, a rate limit). */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    rotate_secret: {
        parameters: {
            query?: {
                /**
                 * @description The organization, for an `admin` service token (required then); a user may give only
                 *     their own.
                 */
                org_id?: string;
            };
            header?: never;
            path: {
                webhook_id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The new secret; the previous one signs beside it for 24 h */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["WebhookWithSecretResponse"];
                };
            };
            /** @description The request is malformed */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No valid bearer token */
            401: {
                headers: {
                    /** @description Always `Bearer realm="convene"`. */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description An `org_admin` of the organization, or an `admin` service token naming it with `?org_id=` */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No such webhook in the organization */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request target is over 8 KiB */
            414: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request headers are too large */
            431: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description A failure on the service's side */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Temporarily unavailable; safe to retry */
            503: {
                headers: {
                    /** @description Seconds to wait before retrying: on every 503, and on a 429 (a full hashing capacity, a rate limit). */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    test: {
        parameters: {
            query?: {
                /**
                 * @description The organization, for an `admin` service token (required then); a user may give only
                 *     their own.
                 */
                org_id?: string;
            };
            header?: never;
            path: {
                webhook_id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description A `webhook.test` event is queued */
            202: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["DeliveryResponse"];
                };
            };
            /** @description The request is malformed */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No valid bearer token */
            401: {
                headers: {
                    /** @description Always `Bearer realm="convene"`. */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description An `org_admin` of the organization, or an `admin` service token naming it with `?org_id=` */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No such webhook in the organization */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request target is over 8 KiB */
            414: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request headers are too large */
            431: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description A failure on the service's side */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Temporarily unavailable; safe to retry */
            503: {
                headers: {
                    /** @description Seconds to wait before retrying: on every 503, and on a 429 (a full hashing capacity, a rate limit). */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    live: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Alive */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "status": "live"
                     *     }
                     */
                    "application/json": components["schemas"]["Live"];
                };
            };
            /** @description The request is malformed */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request target is over 8 KiB */
            414: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request headers are too large */
            431: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description A failure on the service's side */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Temporarily unavailable; safe to retry */
            503: {
                headers: {
                    /** @description Seconds to wait before retrying: on every 503, and on a 429 (a full hashing capacity, a rate limit). */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    ready: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Ready */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "status": "ready"
                     *     }
                     */
                    "application/json": components["schemas"]["Ready"];
                };
            };
            /** @description The request is malformed */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request target is over 8 KiB */
            414: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request headers are too large */
            431: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description A failure on the service's side */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Stopping, PostgreSQL does not answer, or no signing keys from AC */
            503: {
                headers: {
                    /** @description Seconds to wait before retrying: on every 503, and on a 429 (a full hashing capacity, a rate limit). */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    metrics: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The metrics */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example # TYPE gc_http_requests_total counter
                     *     gc_http_requests_total{method="GET",route="/health/live",status="200"} 3
                     */
                    "text/plain; version=0.0.4": string;
                };
            };
            /** @description The request is malformed */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request target is over 8 KiB */
            414: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description The request headers are too large */
            431: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description A failure on the service's side */
            500: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Temporarily unavailable; safe to retry */
            503: {
                headers: {
                    /** @description Seconds to wait before retrying: on every 503, and on a 429 (a full hashing capacity, a rate limit). */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
}
