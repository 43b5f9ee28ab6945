-- The host role moves (DESIGN §12, "Host moderation"): the host hands the meeting over, or the
-- role passes on when the host's seat ends, or nobody hosts until the creator comes back.
--
-- `host_id` is now the current host (null while nobody hosts), and `creator_id` the user who
-- created the meeting, which never changes. The live room decides every change of host in one
-- atomic step and numbers it; GC records a change only if its number is above `host_seq`, so
-- reports that reach PostgreSQL out of order cannot undo a newer change.
alter table meetings add column creator_id uuid references users (id) on delete restrict;
update meetings set creator_id = host_id;
alter table meetings alter column creator_id set not null;

-- A meeting inserted without its creator (a GC of the previous release during a rolling
-- update, a manual insert) was created by its host. GC's statements name the creator, so the
-- condition skips the function on their path.
create function meetings_default_creator() returns trigger
    language plpgsql as
$$
begin
    new.creator_id := new.host_id;
    return new;
end;
$$;

create trigger meetings_default_creator
    before insert on meetings
    for each row
    when (new.creator_id is null)
execute function meetings_default_creator();
alter table meetings alter column host_id drop not null;
alter table meetings add column host_seq bigint not null default 0
    constraint meetings_host_seq_non_negative check (host_seq >= 0);

-- Everyone who was given the host role of a meeting after its creator, for their history
-- (`GET /history` lists the meetings its caller created or hosted). Written in the transaction
-- that records the change of host; it goes with its meeting.
create table meeting_hosts
(
    meeting_id uuid        not null references meetings (id) on delete cascade,
    user_id    uuid        not null,
    since      timestamptz not null default now(),
    primary key (meeting_id, user_id)
);
create index meeting_hosts_user_idx on meeting_hosts (user_id);

-- History reads a creator's ended meetings; the current host of an ended meeting is no longer
-- who the history is about.
create index meetings_creator_history_idx on meetings (creator_id, ended_at desc)
    where status = 'ended';
drop index meetings_host_history_idx;

-- The batch create of migration `20261206000002`, naming the creator (its host) too.
create or replace function meetings_insert_batch(p_id uuid[], p_org uuid[], p_host uuid[], p_code text[],
                                      p_name text[], p_max int[], p_waiting_room boolean[],
                                      p_transcription boolean[], p_e2e boolean[],
                                      p_require_auth boolean[], p_recording boolean[],
                                      p_guests boolean[], p_external boolean[],
                                      p_secret bytea[], p_scheduled timestamptz[],
                                      p_key text[], p_hash bytea[])
    returns setof meetings
    language plpgsql as
$$
begin
    perform set_config('convene.create_batch', 'on', true);
    return query
        with b as (select *
                   from unnest(p_id, p_org, p_host, p_code, p_name, p_max, p_waiting_room,
                               p_transcription, p_e2e, p_require_auth, p_recording, p_guests,
                               p_external, p_secret, p_scheduled, p_key, p_hash)
                            as b(id, org_id, host_id, code, name, max, waiting_room,
                                 transcription, e2e, require_auth, recording, guests, external,
                                 secret, scheduled, key, hash)),
             m as (
                 insert into meetings (id, org_id, host_id, creator_id, meeting_code, display_name,
                                       max_participants, waiting_room_enabled,
                                       enable_transcription, enable_e2e_encryption,
                                       require_auth, recording_enabled, allow_guests,
                                       allow_external_participants, join_token_secret,
                                       scheduled_start_time)
                     select b.id, o.id, u.id, u.id, b.code, b.name,
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
