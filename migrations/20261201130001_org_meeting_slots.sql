-- The org concurrent-meeting limit, split into slots so that one org's creates commit in
-- parallel.
--
-- Until now one counter on the org row (`organizations.live_meeting_count`) was checked and
-- bumped by every create, so every create of an org held that row's lock until its commit
-- reached the disk: a busy org's creates committed one at a time while the CPU sat idle.
--
-- Now the limit L of an org is split into up to 32 slots (`org_meeting_slots`), each with a
-- cap; the caps sum to L. A create takes a slot that has room, skipping slots other creates
-- hold (`for update skip locked`), so up to 32 creates of one org commit side by side. The
-- meeting remembers its slot, and its end (or deletion) gives that slot's place back. Because
-- no slot ever holds more than its cap, an org never has more than L live meetings, whatever
-- the concurrency: the limit stays exact. Only when every slot with room is held by another
-- create does a create wait: holding no slot, it then locks all the org's slots in slot order
-- (so waiting creates cannot deadlock) and decides on the committed counts.
--
-- When L changes (or the org is created), `org_meeting_slots_rebalance` locks every slot and
-- sets the caps again: each slot keeps room for the meetings it holds, and the spare room
-- (L minus the live meetings) is spread evenly. If an org holds more live meetings than its
-- new, lower limit, every cap equals its slot's count (no create fits) and the difference is
-- kept in `organizations.meeting_slot_excess`: each meeting that ends then also lowers its
-- slot's cap, until the org is back within its limit.

create table org_meeting_slots
(
    org_id uuid     not null references organizations (id) on delete cascade,
    slot   smallint not null check (slot between 0 and 31),
    -- How many live meetings this slot may hold, and how many it holds.
    cap    int      not null check (cap >= 0),
    used   int      not null default 0 check (used >= 0),
    -- The invariant the limit rests on: the caps of an org sum to at most its limit (or to
    -- its live meetings while it is over a lowered limit), and no slot exceeds its cap.
    check (used <= cap),
    primary key (org_id, slot)
);

-- Every create and every end updates one slot row; free space on each page keeps those updates
-- HOT (no new index entry), so the table does not bloat between vacuums.
alter table org_meeting_slots set (fillfactor = 50);

alter table meetings
    add column slot smallint;

comment on column meetings.slot is
    'The org_meeting_slots slot this meeting took while live (kept after it ends).';

alter table organizations
    add column meeting_slot_excess int not null default 0
        constraint organizations_meeting_slot_excess_non_negative check (meeting_slot_excess >= 0);

-- How many slots an org with limit L gets: one per allowed meeting up to 32, so small limits
-- (1, 2, 5) have a slot of one for each meeting, and large ones 32 slots.
create function org_meeting_slot_count(p_limit int) returns int
    language sql immutable as
$$
select least(greatest(p_limit, 1), 32)
$$;

-- Sets the caps of an org's slots for its current limit (see the top of this file). Locks every
-- slot of the org first, so creates in flight finish before the caps change and creates that
-- arrive meanwhile wait.
create function org_meeting_slots_rebalance(p_org uuid) returns void
    language plpgsql as
$$
declare
    v_limit int;
    v_slots int;
    v_used  int;
    v_spare int;
begin
    select max_concurrent_meetings into v_limit from organizations where id = p_org;
    if not found then
        return;
    end if;
    v_slots := org_meeting_slot_count(v_limit);
    insert into org_meeting_slots (org_id, slot, cap, used)
    select p_org, s, 0, 0
    from generate_series(0, v_slots - 1) as s
    on conflict do nothing;
    perform 1 from org_meeting_slots where org_id = p_org order by slot for update;
    select coalesce(sum(used), 0) into v_used from org_meeting_slots where org_id = p_org;
    v_spare := greatest(v_limit - v_used, 0);
    -- Slots beyond the current count (the limit was lowered) keep only what they hold.
    update org_meeting_slots
    set cap = used
            + case when slot < v_slots
                   then v_spare / v_slots + case when slot < v_spare % v_slots then 1 else 0 end
                   else 0 end
    where org_id = p_org;
    update organizations
    set meeting_slot_excess = greatest(v_used - v_limit, 0)
    where id = p_org and meeting_slot_excess <> greatest(v_used - v_limit, 0);
end;
$$;

-- Existing live meetings take slots round-robin; then every org's caps are set.
with live as (select m.id,
                     (row_number() over (partition by m.org_id order by m.created_at, m.id) - 1)
                         % org_meeting_slot_count(o.max_concurrent_meetings) as slot
              from meetings m
                       join organizations o on o.id = m.org_id
              where m.status <> 'ended')
update meetings m
set slot = live.slot
from live
where m.id = live.id;

insert into org_meeting_slots (org_id, slot, cap, used)
select org_id, slot, count(*), count(*)
from meetings
where status <> 'ended'
group by org_id, slot;

select org_meeting_slots_rebalance(id) from organizations;

create function organizations_rebalance_meeting_slots() returns trigger
    language plpgsql as
$$
begin
    perform org_meeting_slots_rebalance(new.id);
    return null;
end;
$$;

create trigger organizations_rebalance_meeting_slots
    after insert or update of max_concurrent_meetings
    on organizations
    for each row
execute function organizations_rebalance_meeting_slots();

-- Takes a slot for a new live meeting. Custom SQLSTATEs as before:
--   CV403  the org has reached `max_concurrent_meetings`   → 403 ORG_MEETING_LIMIT_REACHED
--   CV410  the org does not exist or is not active         → 403 FORBIDDEN
create or replace function meetings_reserve_live_slot() returns trigger
    language plpgsql as
$$
declare
    v_slot smallint;
begin
    if not exists (select 1 from organizations where id = new.org_id and is_active) then
        raise exception 'organization % does not exist or is not active', new.org_id
            using errcode = 'CV410';
    end if;
    -- The fast path: the first slot with room that no other create holds. It runs in a
    -- subtransaction because a row whose room vanished while it was being locked stays locked
    -- even though it is skipped; if no slot is found, rolling the subtransaction back drops those
    -- locks, so the slow path below starts holding nothing and only ever waits in slot order
    -- (which is what keeps waiting creates from deadlocking).
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
        -- Every slot with room is held by another create, or none has room: wait for all of
        -- them, in slot order, and decide on what committed.
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
    update org_meeting_slots set used = used + 1 where org_id = new.org_id and slot = v_slot;
    new.slot := v_slot;
    return new;
end;
$$;

-- Gives the slot back when a live meeting ends or is deleted (and, while the org is over a
-- lowered limit, takes that place away for good), and refuses the transitions that would make
-- the counts lie: reopening an ended meeting and moving a meeting to another org.
create or replace function meetings_release_live_slot() returns trigger
    language plpgsql as
$$
declare
    v_shrink int := 0;
begin
    if tg_op = 'UPDATE' then
        if new.org_id <> old.org_id then
            raise exception 'a meeting cannot move to another organization'
                using errcode = 'check_violation';
        end if;
        if old.status = 'ended' and new.status <> 'ended' then
            raise exception 'an ended meeting cannot be reopened'
                using errcode = 'check_violation';
        end if;
        if not (old.status <> 'ended' and new.status = 'ended') then
            return null;
        end if;
    elsif old.status = 'ended' then -- DELETE of an ended meeting: nothing to give back
        return null;
    end if;
    if old.slot is null then
        return null;
    end if;
    -- Locks the org row only while it is over its limit (a rare state): otherwise the row
    -- matches nothing and stays unlocked.
    update organizations
    set meeting_slot_excess = meeting_slot_excess - 1
    where id = old.org_id and meeting_slot_excess > 0;
    if found then
        v_shrink := 1;
    end if;
    update org_meeting_slots
    set used = used - 1,
        cap  = cap - v_shrink
    where org_id = old.org_id and slot = old.slot;
    return null;
end;
$$;

alter table organizations
    drop column live_meeting_count;
