//! The discrete-event simulation of GC's controller choice, in virtual microseconds.
//!
//! A settle statement that starts at `t` sees what was committed by `t` and commits at
//! `t + statement latency`: statements that overlap (from any GC replica, or from one replica's
//! pool) do not see each other's picks, as under READ COMMITTED. Each replica runs at most
//! `statements_per_replica` at once; a call that finds them all busy waits for the first free.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};

use crate::dist::{self, Rng};
use crate::policy::{self, Healthy, Policy, View};

mod controllers;

use controllers::Failure;

const SECOND: u64 = 1_000_000;
/// Heartbeats are sent in 50 phases of 100 ms: each controller's heartbeat falls in one.
const HEARTBEAT_PHASES: u64 = 50;
/// A room refused (nobody with spare capacity) is asked for again by its people this later.
const RETRY_AFTER: u64 = 4 * SECOND;

/// Everything a run is made of (`main.rs` fills it from the command line).
#[derive(Clone, Debug)]
pub struct Scenario {
    pub policy: Policy,
    pub replicas: usize,
    pub statements_per_replica: usize,
    pub statement_us: u64,
    pub controllers: u32,
    pub capacity: u32,
    pub concurrent_meetings: f64,
    pub median_duration_mins: f64,
    pub duration_sigma: f64,
    pub burst_meetings: u32,
    pub burst_secs: u64,
    pub failures_per_hour: f64,
    pub mass_failure_fraction: f64,
    pub heartbeat_interval_secs: u64,
    pub heartbeat_timeout_secs: u64,
    pub warmup_mins: u64,
    pub measure_mins: u64,
    pub seed: u64,
}

impl Scenario {
    fn measure_from(&self) -> u64 {
        self.warmup_mins * 60 * SECOND
    }
    fn end(&self) -> u64 {
        (self.warmup_mins + self.measure_mins) * 60 * SECOND
    }
    /// The top-of-the-hour burst: ten minutes into the measured hour.
    pub fn burst_at(&self) -> u64 {
        self.measure_from() + 10 * 60 * SECOND
    }
    /// The mass failure: thirty minutes into the measured hour, with the burst's meetings on.
    pub fn mass_failure_at(&self) -> u64 {
        self.measure_from() + 30 * 60 * SECOND
    }
}

/// What a run measured (over the measured window only).
#[derive(Debug, Default)]
pub struct Outcome {
    /// max ÷ mean over live controllers, sampled once a virtual second.
    pub rooms_spread: Vec<f64>,
    pub people_spread: Vec<f64>,
    /// Most rooms one controller was given within one second: in the burst's minute (and the
    /// 10 s after it), in the minute after the mass failure (the moves), and at any other time
    /// (single failures and newcomers included).
    pub herd_burst: u32,
    pub herd_mass: u32,
    pub herd_rest: u32,
    /// The same, over controllers that registered during the run (replacements), at any time.
    pub herd_newcomer: u32,
    /// Per room on a failed controller: failure → owned by a healthy controller.
    pub room_outage_us: Vec<u64>,
    /// Per single failure: failure → the last of its rooms moved (or ended).
    pub single_all_moved_us: Vec<u64>,
    /// The mass failure: failure → the last room of all its controllers moved.
    pub mass_all_moved_us: Option<u64>,
    pub mass_rooms: u64,
    pub unfinished_failures: u32,
    pub rejected_new: u64,
    pub rejected_moves: u64,
    /// Commits that left a controller above its capacity.
    pub over_capacity: u64,
    pub max_rooms: u32,
    /// Settle start − call (a replica's statements all busy).
    pub wait_us: Vec<u64>,
    pub assignments: u64,
    pub moves: u64,
    pub meetings: u64,
    pub peak_rooms: u64,
    pub people_seen: u64,
    pub events: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Arrive,
    BurstArrive,
    /// A call that needs the meeting's room (a first join, or a reconnect after a failure).
    Call(u32),
    /// A settle statement starts: it picks from what is committed now.
    Start(u32),
    Commit {
        meeting: u32,
        controller: u32,
    },
    End(u32),
    Heartbeats(u64),
    RandomFailure,
    MassFailure,
    /// A failed controller's heartbeat is now older than the timeout.
    Timeout(u32),
    /// A new controller registers.
    Register,
    Sample,
}

struct Meeting {
    size: u32,
    owner: Option<u32>,
    /// A settle for it is in flight (GC's per-meeting lock: later calls use its outcome).
    settling: bool,
    ended: bool,
}

struct Controller {
    alive: bool,
    /// Registered during the run (a replacement), not at the start.
    newcomer: bool,
    last_heartbeat: u64,
    failure: Option<usize>,
    /// The second of the last assignment to it, and how many it got in that second.
    herd_second: u64,
    herd_count: u32,
}

struct Sim {
    s: Scenario,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64, Event)>>,
    arrivals: Rng,
    picks: Rng,
    faults: Rng,
    meetings: Vec<Meeting>,
    controllers: Vec<Controller>,
    rooms: Vec<u32>,
    people: Vec<u32>,
    reported_rooms: Vec<u32>,
    reported_people: Vec<u32>,
    healthy: Healthy,
    by_rooms: BTreeSet<(u32, u32)>,
    by_reported_rooms: BTreeSet<(u32, u32)>,
    /// Controllers by heartbeat phase.
    phases: Vec<Vec<u32>>,
    /// When each statement slot of each replica is free again.
    slots: Vec<Vec<u64>>,
    failures: Vec<Failure>,
    live_rooms: u64,
    out: Outcome,
}

/// Runs one scenario to its end.
pub fn run(s: &Scenario) -> Outcome {
    let mut root = Rng::new(s.seed);
    let mut sim = Sim {
        now: 0,
        seq: 0,
        queue: BinaryHeap::new(),
        arrivals: root.fork(),
        picks: root.fork(),
        faults: root.fork(),
        meetings: Vec::new(),
        controllers: Vec::new(),
        rooms: Vec::new(),
        people: Vec::new(),
        reported_rooms: Vec::new(),
        reported_people: Vec::new(),
        healthy: Healthy::default(),
        by_rooms: BTreeSet::new(),
        by_reported_rooms: BTreeSet::new(),
        phases: vec![Vec::new(); HEARTBEAT_PHASES as usize],
        slots: vec![vec![0; s.statements_per_replica.max(1)]; s.replicas.max(1)],
        failures: Vec::new(),
        live_rooms: 0,
        out: Outcome::default(),
        s: s.clone(),
    };
    for _ in 0..s.controllers {
        sim.register();
    }
    sim.schedule(0, Event::Arrive);
    sim.schedule(sim.s.burst_at(), Event::BurstArrive);
    sim.schedule(0, Event::Heartbeats(0));
    let first_failure = sim.failure_gap();
    sim.schedule(first_failure, Event::RandomFailure);
    sim.schedule(sim.s.mass_failure_at(), Event::MassFailure);
    sim.schedule(sim.s.measure_from(), Event::Sample);
    let end = sim.s.end();
    while let Some(Reverse((at, _, event))) = sim.queue.pop() {
        if at > end {
            break;
        }
        sim.now = at;
        sim.out.events += 1;
        sim.handle(event);
    }
    sim.finish()
}

impl Sim {
    fn schedule(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, event)));
    }

    fn measuring(&self) -> bool {
        self.now >= self.s.measure_from()
    }

    fn mean_duration_us(&self) -> f64 {
        dist::log_normal_mean(self.s.median_duration_mins, self.s.duration_sigma) * 60e6
    }

    fn failure_gap(&mut self) -> u64 {
        if self.s.failures_per_hour <= 0.0 {
            return u64::MAX / 2;
        }
        self.now + self.faults.exponential(3600e6 / self.s.failures_per_hour) as u64
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Arrive => {
                // Little's law: arrivals per µs = concurrent meetings / mean duration.
                let gap = self
                    .arrivals
                    .exponential(self.mean_duration_us() / self.s.concurrent_meetings);
                self.schedule(self.now + gap as u64, Event::Arrive);
                self.new_meeting();
            }
            Event::BurstArrive => {
                let end = self.s.burst_at() + self.s.burst_secs * SECOND;
                let mean_gap =
                    (self.s.burst_secs * SECOND) as f64 / f64::from(self.s.burst_meetings.max(1));
                let next = self.now + self.arrivals.exponential(mean_gap) as u64;
                if self.s.burst_meetings > 0 && next < end {
                    self.schedule(next, Event::BurstArrive);
                }
                if self.s.burst_meetings > 0 {
                    self.new_meeting();
                }
            }
            Event::Call(meeting) => self.call(meeting),
            Event::Start(meeting) => self.start(meeting),
            Event::Commit {
                meeting,
                controller,
            } => self.commit(meeting, controller),
            Event::End(meeting) => self.end_meeting(meeting),
            Event::Heartbeats(tick) => self.heartbeats(tick),
            Event::RandomFailure => {
                let next = self.failure_gap();
                self.schedule(next, Event::RandomFailure);
                let alive: Vec<u32> = self.alive_controllers();
                if !alive.is_empty() {
                    let victim = alive[self.faults.below(alive.len())];
                    self.fail(&[victim], false);
                }
            }
            Event::MassFailure => {
                let mut alive = self.alive_controllers();
                let count = (alive.len() as f64 * self.s.mass_failure_fraction).round() as usize;
                // A partial Fisher–Yates shuffle: the first `count` are a uniform sample.
                for i in 0..count.min(alive.len()) {
                    let j = i + self.faults.below(alive.len() - i);
                    alive.swap(i, j);
                }
                alive.truncate(count);
                if !alive.is_empty() {
                    self.fail(&alive, true);
                }
            }
            Event::Timeout(controller) => self.leave_healthy(controller),
            Event::Register => {
                self.register();
            }
            Event::Sample => {
                self.sample();
                self.schedule(self.now + SECOND, Event::Sample);
            }
        }
    }

    fn alive_controllers(&self) -> Vec<u32> {
        (0..self.controllers.len() as u32)
            .filter(|&c| self.controllers[c as usize].alive)
            .collect()
    }

    fn new_meeting(&mut self) {
        let id = self.meetings.len() as u32;
        let size = dist::meeting_size(&mut self.arrivals);
        let duration = self
            .arrivals
            .log_normal(self.s.median_duration_mins * 60e6, self.s.duration_sigma);
        self.meetings.push(Meeting {
            size,
            owner: None,
            settling: false,
            ended: false,
        });
        if self.measuring() {
            self.out.meetings += 1;
            self.out.people_seen += u64::from(size);
        }
        self.schedule(self.now, Event::Call(id));
        self.schedule(
            self.now + duration.max(SECOND as f64) as u64,
            Event::End(id),
        );
    }

    /// A call that needs the room: nothing to write while the owner is healthy (to GC), else a
    /// settle statement on a random replica, as soon as one of its slots is free.
    fn call(&mut self, meeting: u32) {
        let m = &self.meetings[meeting as usize];
        if m.ended || m.settling {
            return;
        }
        if let Some(owner) = m.owner
            && self.healthy.contains(owner)
        {
            return;
        }
        self.meetings[meeting as usize].settling = true;
        let replica = self.picks.below(self.slots.len());
        let slots = &mut self.slots[replica];
        let (slot, free_at) = slots
            .iter()
            .copied()
            .enumerate()
            .min_by_key(|&(_, free_at)| free_at)
            .unwrap_or((0, 0));
        let start = free_at.max(self.now);
        if let Some(free) = slots.get_mut(slot) {
            *free = start + self.s.statement_us;
        }
        if self.measuring() {
            self.out.wait_us.push(start - self.now);
        }
        self.schedule(start, Event::Start(meeting));
    }

    fn start(&mut self, meeting: u32) {
        let view = View {
            healthy: &self.healthy,
            capacity: self.s.capacity,
            rooms: &self.rooms,
            reported_rooms: &self.reported_rooms,
            reported_people: &self.reported_people,
            by_rooms: &self.by_rooms,
            by_reported_rooms: &self.by_reported_rooms,
        };
        match policy::pick(self.s.policy, &view, &mut self.picks) {
            Some(controller) => self.schedule(
                self.now + self.s.statement_us,
                Event::Commit {
                    meeting,
                    controller,
                },
            ),
            None => {
                let measuring = self.measuring();
                let m = &mut self.meetings[meeting as usize];
                m.settling = false;
                if m.owner.is_none() {
                    // The first join is refused (503): the meeting does not happen here.
                    m.ended = true;
                    if measuring {
                        self.out.rejected_new += 1;
                    }
                } else {
                    if measuring {
                        self.out.rejected_moves += 1;
                    }
                    self.schedule(self.now + RETRY_AFTER, Event::Call(meeting));
                }
            }
        }
    }

    fn commit(&mut self, meeting: u32, controller: u32) {
        let measuring = self.measuring();
        let m = &mut self.meetings[meeting as usize];
        m.settling = false;
        if m.ended {
            return;
        }
        let size = m.size;
        let previous = m.owner.replace(controller);
        match previous {
            Some(old) => {
                self.remove_room(old, size);
                if let Some(failure) = self.controllers[old as usize].failure {
                    let at = self.failures[failure].at;
                    if at >= self.s.measure_from() {
                        self.out.room_outage_us.push(self.now - at);
                    }
                    self.failure_room_gone(failure);
                }
                if measuring {
                    self.out.moves += 1;
                }
            }
            None => self.live_rooms += 1,
        }
        self.add_room(controller, size);
        if measuring {
            self.out.assignments += 1;
            self.out.peak_rooms = self.out.peak_rooms.max(self.live_rooms);
            let rooms = self.rooms[controller as usize];
            self.out.max_rooms = self.out.max_rooms.max(rooms);
            if rooms > self.s.capacity {
                self.out.over_capacity += 1;
            }
            self.herd(controller);
        }
        // A controller that died but is not yet timed out got the room: its people cannot
        // reach it, and it moves like the failed controller's other rooms.
        if !self.controllers[controller as usize].alive
            && let Some(failure) = self.controllers[controller as usize].failure
        {
            self.failures[failure].remaining += 1;
            self.failures[failure].done_at = None;
            let at = self.reconnect_call(controller, self.now, size);
            self.schedule(at, Event::Call(meeting));
        }
    }

    fn herd(&mut self, controller: u32) {
        let second = self.now / SECOND;
        let c = &mut self.controllers[controller as usize];
        if c.herd_second != second {
            c.herd_second = second;
            c.herd_count = 0;
        }
        c.herd_count += 1;
        let count = c.herd_count;
        if c.newcomer {
            self.out.herd_newcomer = self.out.herd_newcomer.max(count);
        }
        let burst = self.s.burst_at();
        let mass = self.s.mass_failure_at();
        if self.now >= burst && self.now < burst + (self.s.burst_secs + 10) * SECOND {
            self.out.herd_burst = self.out.herd_burst.max(count);
        } else if self.now >= mass && self.now < mass + 60 * SECOND {
            self.out.herd_mass = self.out.herd_mass.max(count);
        } else {
            self.out.herd_rest = self.out.herd_rest.max(count);
        }
    }

    fn end_meeting(&mut self, meeting: u32) {
        let m = &mut self.meetings[meeting as usize];
        if m.ended {
            return;
        }
        m.ended = true;
        let size = m.size;
        // The end deletes the assignment, in the same transaction.
        if let Some(owner) = m.owner.take() {
            self.live_rooms -= 1;
            self.remove_room(owner, size);
            if let Some(failure) = self.controllers[owner as usize].failure {
                self.failure_room_gone(failure);
            }
        }
    }

    fn add_room(&mut self, controller: u32, size: u32) {
        let c = controller as usize;
        let rooms = self.rooms[c];
        if self.healthy.contains(controller) {
            self.by_rooms.remove(&(rooms, controller));
            self.by_rooms.insert((rooms + 1, controller));
        }
        self.rooms[c] = rooms + 1;
        self.people[c] += size;
    }

    fn remove_room(&mut self, controller: u32, size: u32) {
        let c = controller as usize;
        let rooms = self.rooms[c];
        if self.healthy.contains(controller) {
            self.by_rooms.remove(&(rooms, controller));
            self.by_rooms.insert((rooms - 1, controller));
        }
        self.rooms[c] = rooms - 1;
        self.people[c] -= size;
    }

    fn sample(&mut self) {
        let mut live = 0u64;
        let (mut rooms_sum, mut rooms_max) = (0u64, 0u32);
        let (mut people_sum, mut people_max) = (0u64, 0u32);
        for (c, controller) in self.controllers.iter().enumerate() {
            if !controller.alive {
                continue;
            }
            live += 1;
            rooms_sum += u64::from(self.rooms[c]);
            rooms_max = rooms_max.max(self.rooms[c]);
            people_sum += u64::from(self.people[c]);
            people_max = people_max.max(self.people[c]);
        }
        if live > 0 && rooms_sum > 0 {
            let mean = rooms_sum as f64 / live as f64;
            self.out.rooms_spread.push(f64::from(rooms_max) / mean);
            let mean = people_sum as f64 / live as f64;
            self.out.people_spread.push(f64::from(people_max) / mean);
        }
    }

    fn finish(mut self) -> Outcome {
        for f in &self.failures {
            if f.at < self.s.measure_from() {
                continue;
            }
            match (f.done_at, f.mass) {
                (Some(done), true) => self.out.mass_all_moved_us = Some(done - f.at),
                (Some(done), false) => self.out.single_all_moved_us.push(done - f.at),
                (None, _) => self.out.unfinished_failures += 1,
            }
        }
        let out = &mut self.out;
        out.rooms_spread.sort_by(f64::total_cmp);
        out.people_spread.sort_by(f64::total_cmp);
        out.room_outage_us.sort_unstable();
        out.single_all_moved_us.sort_unstable();
        out.wait_us.sort_unstable();
        self.out
    }
}
