-- How many rooms GC has given each controller, kept exact by triggers, so that choosing a
-- controller reads two counters instead of counting every controller's assignments
-- (docs/capacity.md: the count cost 26 × a plain insert at 100,000 assignments and grew with
-- them). A table of its own rather than a column of meeting_controllers: the heartbeats
-- rewrite those rows every few seconds, and the counter's updates would queue behind them.
create table controller_rooms
(
    controller_id text primary key references meeting_controllers (id) on delete cascade,
    rooms         int not null default 0 check (rooms >= 0)
);

insert into controller_rooms (controller_id, rooms)
select c.id, (select count(*) from meeting_assignments a where a.controller_id = c.id)
from meeting_controllers c;

-- Every controller has its counter from its registration on.
create function controller_rooms_register() returns trigger
    language plpgsql as
$$
begin
    insert into controller_rooms (controller_id) values (new.id) on conflict do nothing;
    return null;
end
$$;

create trigger meeting_controllers_rooms
    after insert
    on meeting_controllers
    for each row
execute function controller_rooms_register();

-- Whatever writes meeting_assignments (GC's settle, a meeting's end, a cascade from a deleted
-- meeting or controller, housekeeping) moves the counters in the same transaction. Once per
-- statement, one update per controller whose count changed, in the order of their ids: two
-- statements that change the same controllers lock their counters in the same order, so they
-- queue instead of deadlocking.
create function controller_rooms_count() returns trigger
    language plpgsql as
$$
declare
    ids text[];
    deltas int[];
begin
    -- Each branch names only the transition tables its event has.
    if tg_op = 'INSERT' then
        select array_agg(d.controller_id order by d.controller_id),
               array_agg(d.n order by d.controller_id)
        into ids, deltas
        from (select controller_id, count(*)::int as n from assignments_added
              group by controller_id) d;
    elsif tg_op = 'DELETE' then
        select array_agg(d.controller_id order by d.controller_id),
               array_agg(d.n order by d.controller_id)
        into ids, deltas
        from (select controller_id, -count(*)::int as n from assignments_removed
              group by controller_id) d;
    else
        select array_agg(d.controller_id order by d.controller_id),
               array_agg(d.n order by d.controller_id)
        into ids, deltas
        from (select controller_id, sum(n)::int as n
              from (select controller_id, 1 as n from assignments_added
                    union all
                    select controller_id, -1 from assignments_removed) moves
              group by controller_id
              having sum(n) <> 0) d;
    end if;
    for i in 1 .. coalesce(array_length(ids, 1), 0)
        loop
            update controller_rooms set rooms = rooms + deltas[i] where controller_id = ids[i];
        end loop;
    return null;
end
$$;

create trigger meeting_assignments_rooms_insert
    after insert
    on meeting_assignments
    referencing new table as assignments_added
    for each statement
execute function controller_rooms_count();

create trigger meeting_assignments_rooms_update
    after update
    on meeting_assignments
    referencing new table as assignments_added old table as assignments_removed
    for each statement
execute function controller_rooms_count();

create trigger meeting_assignments_rooms_delete
    after delete
    on meeting_assignments
    referencing old table as assignments_removed
    for each statement
execute function controller_rooms_count();
