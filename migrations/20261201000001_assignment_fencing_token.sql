-- The fencing token of a meeting's assignment (DESIGN §5; `fencing_token` in
-- `AssignMeetingRequest` of proto/convene/internal/v1/meeting_controller.proto).
--
-- Every reassignment of a meeting to another meeting controller takes a larger token. GC hands
-- it to the new owner, which writes it into the room's Redis state; the room's scripts refuse
-- writes carrying an older token, so a controller that lost the meeting (it stopped
-- heartbeating, then came back) can no longer change the room.
alter table meeting_assignments
    add column fencing_token bigint not null default 1
        constraint meeting_assignments_fencing_token_positive check (fencing_token > 0);
