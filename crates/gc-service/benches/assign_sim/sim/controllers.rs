//! The controllers' side of the simulation: registration, heartbeats, and failures with the
//! moves of the failed controllers' rooms.

use super::{Controller, Event, HEARTBEAT_PHASES, SECOND, Sim};

/// People whose reconnect attempts are simulated per room: the first attempt among more
/// comes no sooner in practice.
const RECONNECTING_PEOPLE: u32 = 16;

/// Controllers that failed at the same moment (one, or the mass failure), and how many of
/// their rooms still have no healthy owner.
pub(super) struct Failure {
    pub(super) at: u64,
    pub(super) mass: bool,
    pub(super) remaining: u64,
    pub(super) done_at: Option<u64>,
}

impl Sim {
    /// Registers a new controller (registering counts as a heartbeat).
    pub(super) fn register(&mut self) -> u32 {
        let id = self.controllers.len() as u32;
        self.controllers.push(Controller {
            alive: true,
            newcomer: self.now > 0,
            last_heartbeat: self.now,
            failure: None,
            herd_second: u64::MAX,
            herd_count: 0,
        });
        self.rooms.push(0);
        self.people.push(0);
        self.reported_rooms.push(0);
        self.reported_people.push(0);
        self.healthy.insert(id);
        self.by_rooms.insert((0, id));
        self.by_reported_rooms.insert((0, id));
        // The first controllers start spread over the interval; a newcomer's phase is its
        // registration time.
        let phase = if self.now == 0 {
            u64::from(id) % HEARTBEAT_PHASES
        } else {
            (self.now / (self.phase_us())) % HEARTBEAT_PHASES
        };
        self.phases[phase as usize].push(id);
        id
    }

    fn phase_us(&self) -> u64 {
        self.s.heartbeat_interval_secs * SECOND / HEARTBEAT_PHASES
    }

    /// One heartbeat phase: its live controllers report their rooms and people.
    pub(super) fn heartbeats(&mut self, tick: u64) {
        let phase = (tick % HEARTBEAT_PHASES) as usize;
        let members = std::mem::take(&mut self.phases[phase]);
        for &id in &members {
            let c = id as usize;
            if !self.controllers[c].alive {
                continue;
            }
            self.controllers[c].last_heartbeat = self.now;
            let (old, new) = (self.reported_rooms[c], self.rooms[c]);
            if self.healthy.contains(id) && old != new {
                self.by_reported_rooms.remove(&(old, id));
                self.by_reported_rooms.insert((new, id));
            }
            self.reported_rooms[c] = new;
            self.reported_people[c] = self.people[c];
        }
        self.phases[phase] = members;
        self.schedule(self.now + self.phase_us(), Event::Heartbeats(tick + 1));
    }

    pub(super) fn leave_healthy(&mut self, controller: u32) {
        let c = controller as usize;
        self.healthy.remove(controller);
        self.by_rooms.remove(&(self.rooms[c], controller));
        self.by_reported_rooms
            .remove(&(self.reported_rooms[c], controller));
    }

    /// Controllers stop at once: their sockets drop, their heartbeats stop; GC sees them
    /// unhealthy when their last heartbeat is older than the timeout. Each is replaced by a
    /// new controller 1–3 minutes later.
    pub(super) fn fail(&mut self, victims: &[u32], mass: bool) {
        let failure = self.failures.len();
        self.failures.push(Failure {
            at: self.now,
            mass,
            remaining: 0,
            done_at: None,
        });
        for &v in victims {
            let c = &mut self.controllers[v as usize];
            c.alive = false;
            c.failure = Some(failure);
            let at = c.last_heartbeat + self.s.heartbeat_timeout_secs * SECOND;
            self.schedule(at, Event::Timeout(v));
            let replace_in = self.faults.uniform(60.0, 180.0) * 1e6;
            self.schedule(self.now + replace_in as u64, Event::Register);
        }
        let mut calls = Vec::new();
        for (id, m) in self.meetings.iter().enumerate() {
            if m.ended {
                continue;
            }
            if let Some(owner) = m.owner
                && !self.controllers[owner as usize].alive
                && self.controllers[owner as usize].failure == Some(failure)
            {
                calls.push((id as u32, owner, m.size));
            }
        }
        self.failures[failure].remaining = calls.len() as u64;
        if mass && self.now >= self.s.measure_from() {
            self.out.mass_rooms = calls.len() as u64;
        }
        for (meeting, owner, size) in calls {
            let at = self.reconnect_call(owner, self.now, size);
            self.schedule(at, Event::Call(meeting));
        }
        if self.failures[failure].remaining == 0 {
            self.failures[failure].done_at = Some(self.now);
        }
    }

    /// When a room whose people lost their sockets at `dropped` next calls GC after its owner
    /// became unhealthy: each person's page asks GC again with backoff (0.5 s doubling to 4 s,
    /// each wait drawn in [½, 1] of its step, docs/web.md); the room moves at the first such
    /// call after the owner's heartbeat timed out.
    pub(super) fn reconnect_call(&mut self, owner: u32, dropped: u64, size: u32) -> u64 {
        let unhealthy_at = self.controllers[owner as usize].last_heartbeat
            + self.s.heartbeat_timeout_secs * SECOND;
        let mut first = u64::MAX;
        for _ in 0..size.clamp(1, RECONNECTING_PEOPLE) {
            let mut at = dropped;
            let mut step = 0.5;
            loop {
                at += (self.faults.uniform(0.5, 1.0) * step * 1e6) as u64;
                if at >= unhealthy_at {
                    break;
                }
                step = f64::min(step * 2.0, 4.0);
            }
            first = first.min(at);
        }
        first
    }

    pub(super) fn failure_room_gone(&mut self, failure: usize) {
        let f = &mut self.failures[failure];
        f.remaining = f.remaining.saturating_sub(1);
        if f.remaining == 0 {
            f.done_at = Some(self.now);
        }
    }
}
