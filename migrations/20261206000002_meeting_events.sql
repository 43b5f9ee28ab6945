-- One record of every change (`gc_service::domain::events`, `gc_service::db::events`).
--
-- Every change of a meeting is recorded by one statement text in GC (`record_events!`), in
-- the transaction of the change. The batch create function of migration `20261202000001`
-- wrote its `meeting_created` audit rows itself; its successor below inserts the meetings and
-- their idempotency keys only, and GC's statement that calls it records their events.
--
-- `meetings_create_batch` stays for the GC replicas of the previous release during a rolling
-- update (they call it until they are replaced); a later migration drops it.

-- Inserts the creates of one batch, as `meetings_create_batch` does (the same batch mode of the
-- slot trigger, the same parameters but the client's address and user agent, which only its
-- audit rows used), without recording anything: the caller records the `meeting_created`
-- events of the meetings it returns, in the same statement.
create function meetings_insert_batch(p_id uuid[], p_org uuid[], p_host uuid[], p_code text[],
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
