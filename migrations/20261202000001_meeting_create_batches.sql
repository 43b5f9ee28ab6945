-- Creates written several to a statement (group commit, `gc_service::db::creates`).
--
-- A busy GC used to spend most of a create's database time on what every transaction costs
-- whatever it holds: a round trip, the executor's start, a commit record and a wait for the WAL
-- to reach the disk. `meetings_create_batch` inserts the creates GC queued while its previous
-- statement ran, with their audit rows and idempotency keys, in one statement and one commit.
--
-- A batch must not fail because one of its creates is refused, and must never wait for a lock
-- another create holds (waiting while holding slots of several orgs could deadlock). So inside
-- the batch the slot trigger runs in a "batch mode": it only takes a slot with room that no
-- other transaction holds (`skip locked`, never waiting), and where it would have refused the
-- create (org inactive, limit reached) or would have waited (every slot with room held by
-- another create), it drops that row instead. GC then runs each create whose row is missing
-- alone, through the one-create statement, which decides it exactly as before: waits in slot
-- order when it must, and reports the refusal. Nothing is refused in batch mode that the
-- single statement would not decide again; the limit stays exact because batch mode takes
-- slots only the same way the fast path does.
--
-- Batch mode is the transaction-local setting `convene.create_batch = on`, set by the batch
-- function around its insert and by nothing else.

create or replace function meetings_reserve_live_slot() returns trigger
    language plpgsql as
$$
declare
    v_slot  smallint;
    v_batch boolean := coalesce(current_setting('convene.create_batch', true) = 'on', false);
begin
    if not exists (select 1 from organizations where id = new.org_id and is_active) then
        if v_batch then
            return null;
        end if;
        raise exception 'organization % does not exist or is not active', new.org_id
            using errcode = 'CV410';
    end if;
    if v_batch then
        -- No subtransaction here: a row locked and then skipped stays locked until the batch
        -- commits, which only makes other creates skip it meanwhile; the batch never waits.
        select slot into v_slot
        from org_meeting_slots
        where org_id = new.org_id and used < cap
        order by slot
        limit 1
        for update skip locked;
        if not found then
            return null;
        end if;
    else
        -- The fast path: the first slot with room that no other create holds. It runs in a
        -- subtransaction because a row whose room vanished while it was being locked stays
        -- locked even though it is skipped; if no slot is found, rolling the subtransaction back
        -- drops those locks, so the slow path below starts holding nothing and only ever waits
        -- in slot order (which is what keeps waiting creates from deadlocking).
        begin
            select slot into v_slot
            from org_meeting_slots
            where org_id = new.org_id and used < cap
            order by slot
            limit 1
            for update skip locked;
            if not found then
                raise exception 'no free slot' using errcode = 'CV409';
            end if;
        exception
            when sqlstate 'CV409' then v_slot := null;
        end;
        if v_slot is null then
            -- Every slot with room is held by another create, or none has room: wait for all
            -- of them, in slot order, and decide on what committed.
            perform 1 from org_meeting_slots where org_id = new.org_id order by slot for update;
            select slot into v_slot
            from org_meeting_slots
            where org_id = new.org_id and used < cap
            order by slot
            limit 1;
            if not found then
                raise exception 'organization % has reached its concurrent meeting limit', new.org_id
                    using errcode = 'CV403';
            end if;
        end if;
    end if;
    update org_meeting_slots set used = used + 1 where org_id = new.org_id and slot = v_slot;
    new.slot := v_slot;
    return new;
end;
$$;

-- Inserts the creates of one batch; the arrays are the columns, one element per create, with the
-- meaning of `gc_service::db::meetings::CREATE_MEETING_SQL`'s parameters. Returns the meetings
-- inserted; a create missing from the result was not inserted (see the top of this file) and
-- must be run alone. Each inserted meeting gets its `meeting_created` audit row and, when it came
-- with one, its idempotency key, all in the caller's one transaction.
create function meetings_create_batch(p_id uuid[], p_org uuid[], p_host uuid[], p_code text[],
                                      p_name text[], p_max int[], p_waiting_room boolean[],
                                      p_transcription boolean[], p_e2e boolean[],
                                      p_require_auth boolean[], p_recording boolean[],
                                      p_guests boolean[], p_external boolean[],
                                      p_secret bytea[], p_scheduled timestamptz[],
                                      p_key text[], p_hash bytea[], p_ip text[], p_agent text[])
    returns setof meetings
    language plpgsql as
$$
begin
    perform set_config('convene.create_batch', 'on', true);
    return query
        with b as (select *
                   from unnest(p_id, p_org, p_host, p_code, p_name, p_max, p_waiting_room,
                               p_transcription, p_e2e, p_require_auth, p_recording, p_guests,
                               p_external, p_secret, p_scheduled, p_key, p_hash, p_ip, p_agent)
                            as b(id, org_id, host_id, code, name, max, waiting_room,
                                 transcription, e2e, require_auth, recording, guests, external,
                                 secret, scheduled, key, hash, ip, agent)),
             m as (
                 insert into meetings (id, org_id, host_id, meeting_code, display_name,
                                       max_participants, waiting_room_enabled,
                                       enable_transcription, enable_e2e_encryption,
                                       require_auth, recording_enabled, allow_guests,
                                       allow_external_participants, join_token_secret,
                                       scheduled_start_time)
                     select b.id, o.id, u.id, b.code, b.name,
                            coalesce(b.max, least(100, o.max_participants_per_meeting)),
                            b.waiting_room, b.transcription, b.e2e, b.require_auth,
                            b.recording, b.guests, b.external, b.secret, b.scheduled
                     from b
                              join organizations o on o.id = b.org_id
                              join users u on u.id = b.host_id and u.org_id = o.id and u.is_active
                     where (b.max is null or b.max between 2 and o.max_participants_per_meeting)
                       and (b.key is null
                         or not exists (select 1
                                        from idempotency_keys k
                                        where k.user_id = b.host_id and k.key = b.key))
                     returning *),
             audit as (
                 insert into audit_logs (org_id, actor_id, actor_type, action, resource_type,
                                         resource_id, details, ip, user_agent)
                     select m.org_id, m.host_id::text, 'user', 'meeting_created', 'meeting',
                            m.id::text,
                            jsonb_build_object('meeting_code', m.meeting_code,
                                               'max_participants', m.max_participants,
                                               'idempotency_key', b.key is not null),
                            b.ip::inet, b.agent
                     from m
                              join b on b.id = m.id),
             idem as (
                 insert into idempotency_keys (user_id, key, request_hash, meeting_id)
                     select m.host_id, b.key, b.hash, m.id
                     from m
                              join b on b.id = m.id
                     where b.key is not null)
        select * from m;
    perform set_config('convene.create_batch', 'off', true);
end;
$$;
