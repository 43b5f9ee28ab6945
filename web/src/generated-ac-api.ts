// Generated from docs/openapi/ac-service.json by web/scripts/generate-types.mjs: do not edit.
// Regenerate with scripts/signaling-schema.sh.

export interface paths {
    "/.well-known/jwks.json": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * The public keys.
         * @description The pending next key (if a rotation is under way), the signing key and every retired key
         *     still within its publication period, newest first. Clients may cache the set for a minute;
         *     a verifier meeting an unknown `kid` refetches anyway.
         */
        get: operations["jwks"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/admin/keys/{kid}/withdraw": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Withdraw a compromised signing key.
         * @description The emergency withdrawal of a key: it leaves the JWKS at once and, if it was signing or
         *     about to, a new key signs from now on. Every token it signed is refused from then on (by
         *     AC at once, by GC and MC when their verifiers next refresh the key set). No body.
         */
        post: operations["withdraw_key"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/admin/keys/rotate": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Rotate the signing key.
         * @description Publishes a new signing key now, which signs from `activates_at`. If a key is already
         *     pending, that key is returned and no other is created, so repeating the call is harmless.
         *     No body.
         */
        post: operations["rotate_keys"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/admin/orgs": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Create an organization. */
        post: operations["create_org"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/admin/orgs/{org_id}": {
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
         * Change an organization.
         * @description Its name, limits, or whether it is active. An unknown or malformed `org_id` is 404.
         */
        patch: operations["update_org"];
        trace?: never;
    };
    "/api/v1/admin/orgs/{org_id}/users": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Create a user.
         * @description By an admin service, or by an active org admin of that (active) org, checked in the
         *     database at the time of the call. An org admin of another org gets 404, exactly as for an
         *     org that does not exist.
         */
        post: operations["create_user"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/admin/service-clients": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Create a service client.
         * @description The answer carries the client's secret, shown this once.
         */
        post: operations["create_service_client"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/auth/internal/guest-token": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Get a guest token (GC).
         * @description Signs a guest token, with a guest id AC makes, for a person without an account whom GC lets
         *     ask to join one meeting. Only for a service token with the `internal:meeting-token` scope
         *     (GC's credential); a user token gets 401, a service token without the scope 403, whatever
         *     the body.
         */
        post: operations["issue_guest_token"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/auth/internal/meeting-token": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Get a meeting token (GC).
         * @description Signs a meeting token for a user GC has admitted or put in a lobby: the token a client
         *     sends as the first message of the meeting controller's signaling WebSocket. Only for a
         *     service token with the `internal:meeting-token` scope (GC's credential); a user token gets
         *     401, a service token without the scope 403, whatever the body.
         */
        post: operations["issue_meeting_token"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/auth/internal/meeting-tokens": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Get several meeting tokens (GC).
         * @description Signs from 1 to 100 grants in one request, each checked as the single route checks it, and
         *     answers their tokens in the same order. One malformed grant refuses the whole request
         *     (400, naming the grant's index): GC builds every grant itself, so a malformed one is a bug
         *     to see, not a case to serve around. Same callers as the single route.
         */
        post: operations["issue_meeting_tokens"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/auth/service/token": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Get a service token.
         * @description The OAuth2 client-credentials grant (RFC 6749 section 4.4). The body is form-encoded or
         *     JSON; the client authenticates with HTTP Basic or with `client_id` and `client_secret` in
         *     the body, not both (repeating the Basic client id in the body is allowed). Errors are
         *     RFC 6749 section 5.2 error objects, not the Convene envelope, all with
         *     `Cache-Control: no-store`; only answers of the common middleware (a second
         *     `Authorization` or `Content-Type` header, an overlong head, a timeout, a panic) keep the
         *     envelope.
         */
        post: operations["issue_service_token"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/api/v1/auth/user/token": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Sign in.
         * @description Exchanges an e-mail address and password for a user token. Unknown e-mail, wrong password,
         *     and a deactivated user or org all answer the same 401, in the same time. Failures are
         *     rate limited per account (by default the 6th failure within 15 minutes is refused) and per
         *     client address (429 with `Retry-After`).
         */
        post: operations["issue_user_token"];
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
         * @description The OpenAPI 3.1 document of AC's HTTP API, the same as `ac-service openapi` prints.
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
         * @description Ready when the replica is not stopping, PostgreSQL answers and an active signing key is
         *     loaded.
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
         * @description The Prometheus text format; the catalog is `docs/observability/metrics/ac-service.md`.
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
        /**
         * @description A new organization.
         * @example {
         *       "max_concurrent_meetings": 20,
         *       "name": "Acme Corp",
         *       "slug": "acme"
         *     }
         */
        CreateOrgRequest: {
            /**
             * Format: int64
             * @description Meetings in `scheduled` or `active` state at once.
             * @default 10
             */
            max_concurrent_meetings: number | null;
            /**
             * Format: int64
             * @description The largest `max_participants` of one meeting.
             * @default 100
             */
            max_participants_per_meeting: number | null;
            name: components["schemas"]["DisplayName"];
            /**
             * @description The org's URL-safe handle, unique across the platform.
             * @example acme
             */
            slug: string;
        };
        /**
         * @description A new service client.
         * @example {
         *       "client_id": "reporting-job",
         *       "scopes": [
         *         "admin"
         *       ],
         *       "service_type": "admin"
         *     }
         */
        CreateServiceClientRequest: {
            /** @example convene-gc */
            client_id: string;
            /**
             * @description A set of scopes; a repeated one is ignored.
             * @default []
             */
            scopes: ("admin" | "internal:meeting-token" | "internal:mc" | "internal:gc")[];
            /** @enum {string} */
            service_type: "global-controller" | "meeting-controller" | "admin";
        };
        /**
         * @description A new user of the org.
         * @example {
         *       "display_name": "Ada",
         *       "email": "ada@acme.test",
         *       "password": "correct-horse",
         *       "roles": [
         *         "user",
         *         "org_admin"
         *       ]
         *     }
         */
        CreateUserRequest: {
            display_name: components["schemas"]["DisplayName"];
            /**
             * Format: email
             * @description Unique across the platform, case-insensitively; kept as typed. Trimmed, at most 254
             *     characters.
             */
            email: string;
            /** Format: password */
            password: string;
            /**
             * @description A set of roles; a repeated one is ignored.
             * @default []
             */
            roles: ("user" | "org_admin" | "admin")[];
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
         * @description What GC asks AC to sign for a guest.
         * @example {
         *       "meeting_code": "Ab3dE5gH9jK1",
         *       "name": "Visiting Vera",
         *       "org_id": "9f2773c6-a4b1-4f91-a244-c60b6347fee0"
         *     }
         */
        GuestTokenRequest: {
            /** @description The one meeting the token is good for. */
            meeting_code: components["schemas"]["MeetingCode"];
            /** @description The name the guest gave, under the rules of users' names. */
            name: components["schemas"]["DisplayName"];
            /**
             * Format: uuid
             * @description The meeting's organization.
             */
            org_id: string;
            /**
             * Format: int64
             * @description Requested lifetime in seconds; larger values are capped at 7200; `0` is refused.
             * @example 7200
             */
            ttl_secs?: number | null;
        };
        /** @description A guest token and the guest id it carries. */
        GuestTokenResponse: {
            /**
             * Format: int64
             * @description Seconds until the token expires: at most 7200.
             */
            expires_in: number;
            /**
             * Format: uuid
             * @description The guest id AC made (the token's `sub`).
             */
            guest_id: string;
            /**
             * @description The JWT: `token_type: guest`, `aud: convene-api`, with `sub` (the guest id),
             *     `meeting_code`, `org_id`, `name` and `jti`.
             */
            token: string;
        };
        JwkSet: {
            keys: {
                /** @enum {string} */
                alg: "EdDSA";
                /** @enum {string} */
                crv: "Ed25519";
                /** @description The key's id, in the header of every token it signs. */
                kid: string;
                /** @enum {string} */
                kty: "OKP";
                /** @enum {string} */
                use: "sig";
                /** @description The 32-byte public key, base64url without padding. */
                x: string;
            }[];
        };
        /** @description The next key: published at once, signing from `activates_at`. */
        KeyRotation: {
            /**
             * Format: date-time
             * @description When the key starts signing (the database's clock), `AC_KEY_ACTIVATION_DELAY_SECS`
             *     after the rotation.
             */
            activates_at: string;
            kid: string;
        };
        /** @description A withdrawn key and the key that signs from now on. */
        KeyWithdrawal: {
            signing_kid: string;
            withdrawn_kid: string;
        };
        /** @description The body of `GET /health/live`: `{"status": "live"}`. */
        Live: {
            /** @enum {string} */
            status: "live";
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
        /**
         * @description The grant GC asks AC to sign. AC checks its shape only; GC decides whether the user may join.
         * @example {
         *       "meeting_code": "Ab3dE5gH9jK1",
         *       "meeting_id": "0b6f3c1e-7d1a-4a8e-9c55-2f1f0a9d6b11",
         *       "name": "Demo Host",
         *       "org_id": "9f2773c6-a4b1-4f91-a244-c60b6347fee0",
         *       "role": "host",
         *       "user_id": "6f1c2e9a-0b1d-4c55-9a43-2f8e1d7b3c10"
         *     }
         */
        MeetingTokenRequest: {
            /**
             * @description The holder is a guest without an account (`user_id` their guest id): the token says
             *     `guest: true`, and `role` must be `guest`.
             */
            guest?: boolean;
            /**
             * @description With `guest`: also sign the guest token of this guest id (`user_id`, which GC drew from
             *     its CSPRNG), answered as `guest_token`. GC asks for both tokens of a new guest in one
             *     grant, so a guest's first join costs AC no request of its own (DESIGN §12).
             */
            guest_token?: boolean;
            meeting_code: components["schemas"]["MeetingCode"];
            /** Format: uuid */
            meeting_id: string;
            /** @description The name the other participants see. */
            name: components["schemas"]["DisplayName"];
            /** Format: uuid */
            org_id: string;
            role: components["schemas"]["MeetingRole"];
            /**
             * Format: int64
             * @description Requested lifetime in seconds; larger values are capped at 900 (and at
             *     `AC_MEETING_TOKEN_TTL_SECS`, the default); `0` is refused.
             * @example 600
             */
            ttl_secs?: number | null;
            /** Format: uuid */
            user_id: string;
        };
        /** @description A meeting token. */
        MeetingTokenResponse: {
            /**
             * Format: int64
             * @description Seconds until the token expires: at most 900.
             */
            expires_in: number;
            /**
             * @description For a grant with `guest_token`: the guest token of `user_id` (`token_type: guest`, `aud:
             *     convene-api`, good for two hours and for this one meeting).
             */
            guest_token?: string | null;
            /**
             * @description The JWT: `token_type: meeting`, `aud: convene-mc`, with `sub` (user id), `meeting_id`,
             *     `meeting_code`, `org_id`, `role`, `name` and `jti` (and `guest: true` for a guest).
             */
            token: string;
        };
        /** @description Several grants to sign at once. */
        MeetingTokensRequest: {
            /** @description From 1 to 100 grants; each is checked as the single route checks it. */
            grants: components["schemas"]["MeetingTokenRequest"][];
        };
        /** @description One meeting token per grant, in the order of the grants. */
        MeetingTokensResponse: {
            tokens: components["schemas"]["MeetingTokenResponse"][];
        };
        /** @description An RFC 6749 section 5.2 error object. */
        OAuthErrorBody: {
            error: components["schemas"]["OAuthErrorCode"];
            /** @description A sentence for people; never parse it. */
            error_description: string;
        };
        /**
         * @description The `error` codes of the token endpoint.
         * @enum {string}
         */
        OAuthErrorCode: "invalid_request" | "invalid_client" | "invalid_scope" | "unsupported_grant_type" | "slow_down" | "temporarily_unavailable" | "server_error";
        /** @description An organization. */
        Org: {
            /** Format: date-time */
            created_at: string;
            is_active: boolean;
            /** Format: int32 */
            max_concurrent_meetings: number;
            /** Format: int32 */
            max_participants_per_meeting: number;
            name: string;
            /** Format: uuid */
            org_id: string;
            slug: string;
        };
        /** @description `{"status": "ready", "kid": ...}`. */
        Ready: {
            /** @description The key this replica signs with. */
            kid: string;
            /** @enum {string} */
            status: "ready";
        };
        /**
         * @description A new service client with its secret. Returned once, at creation: the secret is not stored
         *     (only its Argon2id hash) and cannot be shown again.
         */
        ServiceClientWithSecret: {
            client_id: string;
            /**
             * Format: password
             * @description 32 random bytes, base64url without padding.
             */
            client_secret: string;
            /**
             * @description A set of scopes; a repeated one is ignored.
             * @default []
             */
            scopes: ("admin" | "internal:meeting-token" | "internal:mc" | "internal:gc")[];
            /** @enum {string} */
            service_type: "global-controller" | "meeting-controller" | "admin";
        };
        /**
         * @description The form body. RFC 6749 §3.2 tells servers to ignore parameters they do not know, so this
         *     one does not refuse them.
         */
        ServiceTokenFormRequest: {
            /** @example convene-gc */
            client_id?: string;
            /**
             * Format: password
             * @description At most 1024 bytes, no control characters.
             */
            client_secret?: string | null;
            /** @enum {string} */
            grant_type: "client_credentials";
            /**
             * @description Space-separated scopes, each held by the client; absent: all the client's scopes,
             *     empty: none. At most 1024 bytes, no control characters.
             * @example admin
             */
            scope?: string | null;
        };
        /** @description The JSON body. Unknown fields are refused, as on every JSON endpoint. */
        ServiceTokenJsonRequest: {
            /** @example convene-gc */
            client_id?: string;
            /**
             * Format: password
             * @description At most 1024 bytes, no control characters.
             */
            client_secret?: string | null;
            /** @enum {string} */
            grant_type: "client_credentials";
            /**
             * @description Space-separated scopes, each held by the client; absent: all the client's scopes,
             *     empty: none. At most 1024 bytes, no control characters.
             * @example admin
             */
            scope?: string | null;
        };
        /** @description A service token. */
        ServiceTokenResponse: {
            /**
             * @description The JWT: `token_type: service`, `aud: convene-internal`, with `sub` (client id),
             *     `scope`, `service_type` and `jti`.
             */
            access_token: string;
            /**
             * Format: int64
             * @description Seconds until the token expires (`AC_SERVICE_TOKEN_TTL_SECS`, 3600 by default).
             */
            expires_in: number;
            /**
             * @description The granted scopes, space-separated and sorted; left out when none is granted (RFC 6749
             *     has no empty scope, and clients read `""` as one empty scope).
             */
            scope?: string;
            /** @enum {string} */
            token_type: "Bearer";
        };
        /**
         * @description The fields to change; absent or `null` ones keep their value.
         * @example {
         *       "is_active": true,
         *       "max_concurrent_meetings": 20
         *     }
         */
        UpdateOrgRequest: {
            /**
             * @description `false` stops the org's users from signing in and its org admins from creating users,
             *     at once; tokens already issued stay valid until they expire.
             */
            is_active?: boolean | null;
            /** Format: int64 */
            max_concurrent_meetings?: number | null;
            /** Format: int64 */
            max_participants_per_meeting?: number | null;
            name?: null | components["schemas"]["DisplayName"];
        };
        /** @description A user. It has no field a password hash could leak through. */
        User: {
            /** Format: date-time */
            created_at: string;
            display_name: string;
            /** @description As typed at creation. */
            email: string;
            is_active: boolean;
            /** Format: uuid */
            org_id: string;
            /**
             * @description A set of roles; a repeated one is ignored.
             * @default []
             */
            roles: ("user" | "org_admin" | "admin")[];
            /** Format: uuid */
            user_id: string;
        };
        /**
         * @description An e-mail address and its password.
         * @example {
         *       "email": "host@demo.test",
         *       "password": "demo-password"
         *     }
         */
        UserTokenRequest: {
            /**
             * @description Trimmed; compared case-insensitively. At most 254 bytes, no control characters.
             * @example host@demo.test
             */
            email: string;
            /**
             * Format: password
             * @description At most 1024 characters; any character is allowed.
             */
            password: string;
        };
        /** @description A user token. */
        UserTokenResponse: {
            /**
             * @description The JWT: `token_type: user`, `aud: convene-api`, with `sub` (user id), `org_id`,
             *     `roles`, `name` and `jti`.
             */
            access_token: string;
            /**
             * Format: int64
             * @description Seconds until the token expires (`AC_USER_TOKEN_TTL_SECS`, 3600 by default).
             */
            expires_in: number;
            /** @enum {string} */
            token_type: "Bearer";
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
    jwks: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The key set */
            200: {
                headers: {
                    /** @description `public, max-age=60` */
                    "Cache-Control"?: string;
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "keys": [
                     *         {
                     *           "alg": "EdDSA",
                     *           "crv": "Ed25519",
                     *           "kid": "k20261201-Xb3kQ9mN2pLw",
                     *           "kty": "OKP",
                     *           "use": "sig",
                     *           "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
                     *         },
                     *         {
                     *           "alg": "EdDSA",
                     *           "crv": "Ed25519",
                     *           "kid": "k20261101-aBcDeFgHiJkL",
                     *           "kty": "OKP",
                     *           "use": "sig",
                     *           "x": "3p7bfXt9wbTTW2HC7OQ1Nz-DQ8hbeGdNrfx-FG-IK08"
                     *         }
                     *       ]
                     *     }
                     */
                    "application/json": components["schemas"]["JwkSet"];
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
            /** @description The cache has expired and the keys cannot be read from the database */
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
    withdraw_key: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /**
                 * @description The key's id; anything that is not 1-64 characters of `[A-Za-z0-9_-]` is unknown
                 * @example k20261101-aBcDeFgHiJkL
                 */
                kid: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Withdrawn */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "signing_kid": "k20261201-Xb3kQ9mN2pLw",
                     *       "withdrawn_kid": "k20261101-aBcDeFgHiJkL"
                     *     }
                     */
                    "application/json": components["schemas"]["KeyWithdrawal"];
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
            /** @description A user token, or a service token without the `admin` scope */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": {
                     *         "code": "FORBIDDEN",
                     *         "message": "this route needs an admin service token"
                     *       }
                     *     }
                     */
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No key with this id */
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
    rotate_keys: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The next key */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "activates_at": "2026-12-01T12:01:00.123456Z",
                     *       "kid": "k20261201-Xb3kQ9mN2pLw"
                     *     }
                     */
                    "application/json": components["schemas"]["KeyRotation"];
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
            /** @description A user token, or a service token without the `admin` scope */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": {
                     *         "code": "FORBIDDEN",
                     *         "message": "this route needs an admin service token"
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
    create_org: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["CreateOrgRequest"];
            };
        };
        responses: {
            /** @description Created */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "created_at": "2026-12-01T12:00:00.123456Z",
                     *       "is_active": true,
                     *       "max_concurrent_meetings": 20,
                     *       "max_participants_per_meeting": 100,
                     *       "name": "Acme Corp",
                     *       "org_id": "9f2773c6-a4b1-4f91-a244-c60b6347fee0",
                     *       "slug": "acme"
                     *     }
                     */
                    "application/json": components["schemas"]["Org"];
                };
            };
            /** @description A field out of bounds */
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
            /** @description A user token, or a service token without the `admin` scope */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description An org with this slug exists */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": {
                     *         "code": "CONFLICT",
                     *         "message": "an org with this slug already exists"
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
    update_org: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The org's id; anything else is an unknown org (404) */
                org_id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["UpdateOrgRequest"];
            };
        };
        responses: {
            /** @description The org after the change */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "created_at": "2026-12-01T12:00:00.123456Z",
                     *       "is_active": true,
                     *       "max_concurrent_meetings": 20,
                     *       "max_participants_per_meeting": 100,
                     *       "name": "Acme Corp",
                     *       "org_id": "9f2773c6-a4b1-4f91-a244-c60b6347fee0",
                     *       "slug": "acme"
                     *     }
                     */
                    "application/json": components["schemas"]["Org"];
                };
            };
            /** @description A field out of bounds */
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
            /** @description A user token, or a service token without the `admin` scope */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": {
                     *         "code": "FORBIDDEN",
                     *         "message": "the token lacks the required scope"
                     *       }
                     *     }
                     */
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No org with this id */
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
    create_user: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The org's id; anything else is an unknown org (404) */
                org_id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["CreateUserRequest"];
            };
        };
        responses: {
            /** @description Created */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "created_at": "2026-12-01T12:00:00.123456Z",
                     *       "display_name": "Ada",
                     *       "email": "ada@acme.test",
                     *       "is_active": true,
                     *       "org_id": "9f2773c6-a4b1-4f91-a244-c60b6347fee0",
                     *       "roles": [
                     *         "org_admin",
                     *         "user"
                     *       ],
                     *       "user_id": "6f1c2e9a-0b1d-4c55-9a43-2f8e1d7b3c10"
                     *     }
                     */
                    "application/json": components["schemas"]["User"];
                };
            };
            /** @description A field out of bounds: the e-mail, a password of fewer than 8 or more than 1024 characters, the name, an unknown role */
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
            /** @description A service token without the `admin` scope; a user token without the `org_admin` role, or whose user or org is no longer active; an org admin granting `admin` */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No org with this id, or an org admin's other org */
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
            /** @description A user with this e-mail exists (case-insensitively) */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": {
                     *         "code": "CONFLICT",
                     *         "message": "a user with this email already exists"
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
            /** @description No hashing slot freed up within `AC_HASH_WAIT_MS` */
            503: {
                headers: {
                    /** @description `1` */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    create_service_client: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["CreateServiceClientRequest"];
            };
        };
        responses: {
            /** @description Created; keep the secret, it cannot be shown again */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "client_id": "reporting-job",
                     *       "client_secret": "q7ZzV0n3xW1b9Yk2Lr5Tg8Hs4Jd6Mf0PcAeNuBiOwQE",
                     *       "scopes": [
                     *         "admin"
                     *       ],
                     *       "service_type": "admin"
                     *     }
                     */
                    "application/json": components["schemas"]["ServiceClientWithSecret"];
                };
            };
            /** @description A malformed client id, an unknown service type or scope */
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
            /** @description A user token, or a service token without the `admin` scope */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": {
                     *         "code": "FORBIDDEN",
                     *         "message": "this route needs an admin service token"
                     *       }
                     *     }
                     */
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description A client with this id exists */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": {
                     *         "code": "CONFLICT",
                     *         "message": "a service client with this client_id already exists"
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
            /** @description No hashing slot freed up within `AC_HASH_WAIT_MS` */
            503: {
                headers: {
                    /** @description `1` */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    issue_guest_token: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["GuestTokenRequest"];
            };
        };
        responses: {
            /** @description A guest token */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "expires_in": 7200,
                     *       "guest_id": "3c2d9f6e-8a41-4b7e-9d0c-5e1f2a3b4c5d",
                     *       "token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSIsImtpZCI6ImsyMDI2MTEyMS1hQmNEZWZHaElqS2wifQ.eyJ0b2tlbl90eXBlIjoiZ3Vlc3QifQ.c2lnbmF0dXJl"
                     *     }
                     */
                    "application/json": components["schemas"]["GuestTokenResponse"];
                };
            };
            /** @description A malformed field: a code that is not 12 characters of 0-9A-Za-z, an invalid name, `ttl_secs` 0 */
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
            /** @description A service token without the `internal:meeting-token` scope */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": {
                     *         "code": "FORBIDDEN",
                     *         "message": "the token lacks the required scope"
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
    issue_meeting_token: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["MeetingTokenRequest"];
            };
        };
        responses: {
            /** @description A meeting token */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "expires_in": 900,
                     *       "token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSIsImtpZCI6ImsyMDI2MTEyMS1hQmNEZWZHaElqS2wifQ.eyJ0b2tlbl90eXBlIjoibWVldGluZyJ9.c2lnbmF0dXJl"
                     *     }
                     */
                    "application/json": components["schemas"]["MeetingTokenResponse"];
                };
            };
            /** @description A malformed field: a code that is not 12 characters of 0-9A-Za-z, an invalid name, `ttl_secs` 0, a role other than host or guest, a guest whose role is not guest */
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
            /** @description A service token without the `internal:meeting-token` scope */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": {
                     *         "code": "FORBIDDEN",
                     *         "message": "the token lacks the required scope"
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
    issue_meeting_tokens: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["MeetingTokensRequest"];
            };
        };
        responses: {
            /** @description One meeting token per grant, in order */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "tokens": [
                     *         {
                     *           "expires_in": 900,
                     *           "token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSIsImtpZCI6ImsyMDI2MTEyMS1hQmNEZWZHaElqS2wifQ.eyJ0b2tlbl90eXBlIjoibWVldGluZyJ9.c2lnbmF0dXJl"
                     *         }
                     *       ]
                     *     }
                     */
                    "application/json": components["schemas"]["MeetingTokensResponse"];
                };
            };
            /** @description No grant, more than 100, or a malformed grant */
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
            /** @description A service token without the `internal:meeting-token` scope */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": {
                     *         "code": "FORBIDDEN",
                     *         "message": "the token lacks the required scope"
                     *       }
                     *     }
                     */
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description A body over 512 KiB */
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
    issue_service_token: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** @description `application/x-www-form-urlencoded` (unknown parameters ignored) or `application/json` (unknown fields refused) */
        requestBody: {
            content: {
                /**
                 * @example {
                 *       "client_id": "convene-gc",
                 *       "client_secret": "convene-gc-dev-secret",
                 *       "grant_type": "client_credentials",
                 *       "scope": "internal:meeting-token"
                 *     }
                 */
                "application/json": components["schemas"]["ServiceTokenJsonRequest"];
                /**
                 * @example {
                 *       "grant_type": "client_credentials",
                 *       "scope": "admin"
                 *     }
                 */
                "application/x-www-form-urlencoded": components["schemas"]["ServiceTokenFormRequest"];
            };
        };
        responses: {
            /** @description A token */
            200: {
                headers: {
                    /** @description `no-store` */
                    "Cache-Control"?: string;
                    /** @description `no-cache` */
                    Pragma?: string;
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "access_token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSIsImtpZCI6ImsyMDI2MTEyMS1hQmNEZWZHaElqS2wifQ.eyJzdWIiOiJjb252ZW5lLWdjIn0.c2lnbmF0dXJl",
                     *       "expires_in": 3600,
                     *       "scope": "internal:mc internal:meeting-token",
                     *       "token_type": "Bearer"
                     *     }
                     */
                    "application/json": components["schemas"]["ServiceTokenResponse"];
                };
            };
            /** @description A malformed request, refused before anything is looked up, hashed or counted; or a scope the client does not hold */
            400: {
                headers: {
                    /** @description `no-store` */
                    "Cache-Control"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["OAuthErrorBody"] | components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Unknown client, wrong secret, deactivated client, no credentials, or an Authorization header that is not decodable HTTP Basic */
            401: {
                headers: {
                    /** @description `no-store` */
                    "Cache-Control"?: string;
                    /** @description `Basic realm="convene"` */
                    "WWW-Authenticate"?: string;
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": "invalid_client",
                     *       "error_description": "client authentication failed"
                     *     }
                     */
                    "application/json": components["schemas"]["OAuthErrorBody"];
                };
            };
            /** @description A body over 64 KiB */
            413: {
                headers: {
                    /** @description `no-store` */
                    "Cache-Control"?: string;
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": "invalid_request",
                     *       "error_description": "request body is too large"
                     *     }
                     */
                    "application/json": components["schemas"]["OAuthErrorBody"];
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
            /** @description The client id or the address is over its failure budget */
            429: {
                headers: {
                    /** @description `no-store` */
                    "Cache-Control"?: string;
                    /** @description Seconds until the window that locked ends */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": "slow_down",
                     *       "error_description": "too many failed attempts, retry later"
                     *     }
                     */
                    "application/json": components["schemas"]["OAuthErrorBody"];
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
            /** @description A failure on AC's side (a database failure); the cause is only logged */
            500: {
                headers: {
                    /** @description `no-store` */
                    "Cache-Control"?: string;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["OAuthErrorBody"] | components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description No hashing slot freed up in time, or a failure budget stayed full of attempts being checked */
            503: {
                headers: {
                    /** @description `no-store` */
                    "Cache-Control"?: string;
                    /** @description `1` */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["OAuthErrorBody"] | components["schemas"]["ErrorEnvelope"];
                };
            };
        };
    };
    issue_user_token: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["UserTokenRequest"];
            };
        };
        responses: {
            /** @description Signed in */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "access_token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSIsImtpZCI6ImsyMDI2MTEyMS1hQmNEZWZHaElqS2wifQ.eyJzdWIiOiIuLi4ifQ.c2lnbmF0dXJl",
                     *       "expires_in": 3600,
                     *       "token_type": "Bearer"
                     *     }
                     */
                    "application/json": components["schemas"]["UserTokenResponse"];
                };
            };
            /** @description An empty, oversized or control-character e-mail, or a password over 1024 characters; refused before anything is looked up or counted */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorEnvelope"];
                };
            };
            /** @description Unknown e-mail, wrong password, deactivated user or org: all the same answer */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    /**
                     * @example {
                     *       "error": {
                     *         "code": "UNAUTHORIZED",
                     *         "message": "invalid e-mail or password"
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
            /** @description The account or the client address is over its failure budget */
            429: {
                headers: {
                    /** @description Seconds until the window that locked ends */
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
            /** @description No hashing slot freed up within `AC_HASH_WAIT_MS`, or a failure budget stayed full of attempts being checked */
            503: {
                headers: {
                    /** @description `1` */
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
            /** @description The document, `Cache-Control: public, max-age=300` */
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
                     *       "kid": "k20261201-Xb3kQ9mN2pLw",
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
            /** @description Stopping, or PostgreSQL does not answer */
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
                     * @example # TYPE ac_http_requests_total counter
                     *     ac_http_requests_total{method="GET",route="/health/live",status="200"} 3
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
