//! Server-side active-speaker detection (DESIGN §4): a pure domain type, fed the `audio_level`
//! samples of one room with the time the server received each, answering when the active
//! speaker changes. It reads no clock and does no I/O: the time is injected with every call
//! (the socket code passes its receive time; tests pass any times they like), and the caller
//! stores and broadcasts the change.
//!
//! The rule, in full:
//! - a participant's *run* starts with a sample at or above the threshold (default −40 dBFS);
//! - it breaks at a sample below the threshold, or when the next sample comes
//!   [`SpeakerSettings::silence_gap`] (default 150 ms) or more after the previous one (that
//!   sample, if loud, starts a new run);
//! - at the sample that makes a run last [`SpeakerSettings::min_duration`] (default 300 ms), its
//!   participant becomes the active speaker unless they are already. A run does this at most
//!   once: a participant who was displaced while still talking must pause and start a new run
//!   to become the speaker again. So two people talking at once for a long time give at most
//!   one change each, at the start, and never a back-and-forth;
//! - the speaker leaving clears the speaker.
//!
//! Each call costs one hash-map lookup: O(1) per sample, memory O(participants sending).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// The lowest level a client may send, in dBFS (DESIGN §4).
pub const MIN_LEVEL_DBFS: f64 = -127.0;
/// The highest level, in dBFS: full scale.
pub const MAX_LEVEL_DBFS: f64 = 0.0;

/// The detector's three parameters (environment `ACTIVE_SPEAKER_*`, see `config.rs`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SpeakerSettings {
    /// A sample at or above this level (dBFS) counts as speech.
    pub threshold_dbfs: f64,
    /// How long a run must last before its participant becomes the speaker.
    pub min_duration: Duration,
    /// A pause between two samples this long or longer breaks a run.
    pub silence_gap: Duration,
}

impl Default for SpeakerSettings {
    fn default() -> Self {
        Self {
            threshold_dbfs: -40.0,
            min_duration: Duration::from_millis(300),
            silence_gap: Duration::from_millis(150),
        }
    }
}

/// A change of the active speaker, to store and broadcast once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpeakerChange<U> {
    /// The new speaker; `None` when the speaker left and nobody replaced them.
    pub speaker: Option<U>,
    pub previous: Option<U>,
}

#[derive(Clone, Copy, Debug)]
struct Run {
    started: Instant,
    last: Instant,
    /// This run has reached the minimum duration (and made its participant the speaker if
    /// they were not already): it never switches again.
    spent: bool,
}

/// The active-speaker state of one room. `U` identifies a participant (a user id).
#[derive(Debug)]
pub struct ActiveSpeakerDetector<U> {
    settings: SpeakerSettings,
    runs: HashMap<U, Run>,
    speaker: Option<U>,
}

impl<U: Clone + Eq + Hash> ActiveSpeakerDetector<U> {
    pub fn new(settings: SpeakerSettings) -> Self {
        Self {
            settings,
            runs: HashMap::new(),
            speaker: None,
        }
    }

    pub fn speaker(&self) -> Option<&U> {
        self.speaker.as_ref()
    }

    pub fn settings(&self) -> &SpeakerSettings {
        &self.settings
    }

    /// One sample of `user`'s level, received at `at`. Returns the change it causes, if any.
    /// A level that is not a number counts as silence. Samples must come in the order they
    /// were received; one stamped earlier than the previous sample of the same user is taken
    /// as arriving at the same time.
    ///
    /// `user` may be borrowed (`&str` for `String` ids): a sample of a run in progress
    /// allocates nothing.
    pub fn observe<Q>(&mut self, user: &Q, level_dbfs: f64, at: Instant) -> Option<SpeakerChange<U>>
    where
        U: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = U> + ?Sized,
    {
        // NaN compares as neither, so it is silence too.
        let loud = level_dbfs
            .partial_cmp(&self.settings.threshold_dbfs)
            .is_some_and(std::cmp::Ordering::is_ge);
        if !loud {
            self.runs.remove(user);
            return None;
        }
        let gap = self.settings.silence_gap;
        let min_duration = self.settings.min_duration;
        match self.runs.get_mut(user) {
            Some(run) if at.saturating_duration_since(run.last) >= gap => *run = Run::starting(at),
            Some(run) => run.last = run.last.max(at),
            None => {
                self.runs.insert(user.to_owned(), Run::starting(at));
            }
        }
        let run = self.runs.get_mut(user)?;
        if run.spent || run.last.saturating_duration_since(run.started) < min_duration {
            return None;
        }
        run.spent = true;
        if self.speaker.as_ref().map(Borrow::borrow) == Some(user) {
            return None;
        }
        let previous = self.speaker.replace(user.to_owned());
        Some(SpeakerChange {
            speaker: Some(user.to_owned()),
            previous,
        })
    }

    /// `user` left the room (or their seat): their run ends, and if they were the speaker
    /// nobody is until the next completed run.
    pub fn remove<Q>(&mut self, user: &Q) -> Option<SpeakerChange<U>>
    where
        U: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.runs.remove(user);
        if self.speaker.as_ref().map(Borrow::borrow) != Some(user) {
            return None;
        }
        Some(SpeakerChange {
            speaker: None,
            previous: self.speaker.take(),
        })
    }

    /// Participants with a run in progress (for tests and for bounding memory: at most one
    /// entry per participant that sends samples).
    pub fn runs_in_progress(&self) -> usize {
        self.runs.len()
    }
}

impl Run {
    fn starting(at: Instant) -> Self {
        Self {
            started: at,
            last: at,
            spent: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: Duration = Duration::from_millis(20);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A controllable clock: every sample is stamped with an offset from one origin.
    struct Trace {
        origin: Instant,
        detector: ActiveSpeakerDetector<&'static str>,
        /// (time since origin, change) in order.
        changes: Vec<(Duration, SpeakerChange<&'static str>)>,
    }

    impl Trace {
        fn new() -> Self {
            Self {
                origin: Instant::now(),
                detector: ActiveSpeakerDetector::new(SpeakerSettings::default()),
                changes: Vec::new(),
            }
        }

        fn sample(&mut self, user: &'static str, level: f64, at: Duration) {
            if let Some(change) = self.detector.observe(&user, level, self.origin + at) {
                self.changes.push((at, change));
            }
        }

        /// `user` sends `level` every `SAMPLE` from `from` (inclusive) to `to` (exclusive).
        fn talk(&mut self, user: &'static str, level: f64, from: Duration, to: Duration) {
            let mut at = from;
            while at < to {
                self.sample(user, level, at);
                at += SAMPLE;
            }
        }

        fn speakers(&self) -> Vec<Option<&'static str>> {
            self.changes.iter().map(|(_, c)| c.speaker).collect()
        }
    }

    #[test]
    fn a_one_second_utterance_switches_once_after_300_ms() {
        let mut t = Trace::new();
        t.talk("ann", -20.0, ms(1000), ms(2000));
        assert_eq!(t.speakers(), vec![Some("ann")]);
        let (at, change) = &t.changes[0];
        assert!(
            *at >= ms(1300) && *at <= ms(1300) + SAMPLE,
            "switched {at:?} after the start"
        );
        assert_eq!(change.previous, None);
    }

    #[test]
    fn a_250_ms_cough_never_switches() {
        let mut t = Trace::new();
        t.talk("ann", -10.0, ms(0), ms(250));
        t.talk("ann", -90.0, ms(250), ms(1000));
        // And again, many times over: a run never adds up across breaks.
        for start in (1000..5000).step_by(400) {
            t.talk("ann", -10.0, ms(start), ms(start + 250));
            t.sample("ann", -80.0, ms(start + 260));
        }
        assert!(t.changes.is_empty(), "{:?}", t.changes);
    }

    #[test]
    fn the_threshold_is_inclusive_and_just_below_never_switches() {
        let mut t = Trace::new();
        t.talk("ann", -41.0, ms(0), ms(3000));
        assert!(t.changes.is_empty());
        t.talk("bob", -40.0, ms(3000), ms(3400));
        assert_eq!(t.speakers(), vec![Some("bob")]);
    }

    #[test]
    fn two_people_talking_over_each_other_do_not_flicker() {
        let mut t = Trace::new();
        // Interleaved samples, Bob 10 ms behind Ann, both loud for five seconds.
        let mut at = ms(0);
        while at < ms(5000) {
            t.sample("ann", -15.0, at);
            t.sample("bob", -12.0, at + ms(10));
            at += SAMPLE;
        }
        // Each run switches at most once: Ann first, then Bob, whose run completes 10 ms
        // later, and nothing more for the rest of the five seconds.
        assert_eq!(t.speakers(), vec![Some("ann"), Some("bob")]);
        assert!(t.changes[1].0 < ms(400));
    }

    #[test]
    fn a_speaker_who_keeps_talking_keeps_it_against_a_later_interruption() {
        let mut t = Trace::new();
        t.talk("ann", -15.0, ms(0), ms(5000));
        // Bob talks for 250 ms at a time: never long enough.
        for start in (1000..4000).step_by(500) {
            t.talk("bob", -5.0, ms(start), ms(start + 250));
            t.sample("bob", -100.0, ms(start + 260));
        }
        assert_eq!(t.speakers(), vec![Some("ann")]);
    }

    #[test]
    fn a_200_ms_gap_in_the_samples_breaks_a_run() {
        let mut t = Trace::new();
        t.talk("ann", -20.0, ms(0), ms(200));
        // Nothing from 180 to 380 ms: the run restarts at 380 and needs its own 300 ms.
        t.talk("ann", -20.0, ms(380), ms(660));
        assert!(t.changes.is_empty(), "{:?}", t.changes);
        t.talk("ann", -20.0, ms(660), ms(700));
        assert_eq!(t.speakers(), vec![Some("ann")]);
        assert_eq!(t.changes[0].0, ms(680));
    }

    #[test]
    fn a_gap_shorter_than_the_silence_gap_does_not_break_a_run() {
        let mut t = Trace::new();
        t.sample("ann", -20.0, ms(0));
        t.sample("ann", -20.0, ms(149));
        t.sample("ann", -20.0, ms(298));
        assert!(t.changes.is_empty());
        t.sample("ann", -20.0, ms(300));
        assert_eq!(t.speakers(), vec![Some("ann")]);
    }

    #[test]
    fn a_quiet_sample_breaks_a_run() {
        let mut t = Trace::new();
        t.talk("ann", -20.0, ms(0), ms(200));
        t.sample("ann", -60.0, ms(200));
        t.talk("ann", -20.0, ms(220), ms(500));
        assert!(t.changes.is_empty());
    }

    #[test]
    fn the_speaker_leaving_clears_it_and_a_stranger_leaving_does_not() {
        let mut t = Trace::new();
        t.talk("ann", -20.0, ms(0), ms(400));
        assert_eq!(t.detector.remove(&"bob"), None);
        assert_eq!(
            t.detector.remove(&"ann"),
            Some(SpeakerChange {
                speaker: None,
                previous: Some("ann")
            })
        );
        assert_eq!(t.detector.speaker(), None);
        assert_eq!(t.detector.runs_in_progress(), 0);
        assert_eq!(t.detector.remove(&"ann"), None);
    }

    #[test]
    fn a_new_speaker_names_the_previous_one() {
        let mut t = Trace::new();
        t.talk("ann", -20.0, ms(0), ms(400));
        t.talk("bob", -20.0, ms(1000), ms(1400));
        assert_eq!(t.speakers(), vec![Some("ann"), Some("bob")]);
        assert_eq!(t.changes[1].1.previous, Some("ann"));
        // Ann pauses and talks again: she takes it back, once.
        t.talk("ann", -20.0, ms(2000), ms(3000));
        assert_eq!(t.speakers(), vec![Some("ann"), Some("bob"), Some("ann")]);
    }

    #[test]
    fn the_current_speaker_talking_again_changes_nothing() {
        let mut t = Trace::new();
        t.talk("ann", -20.0, ms(0), ms(400));
        t.talk("ann", -20.0, ms(1000), ms(2000));
        assert_eq!(t.speakers(), vec![Some("ann")]);
    }

    #[test]
    fn not_a_number_is_silence_and_out_of_order_samples_do_not_go_back_in_time() {
        let mut t = Trace::new();
        t.talk("ann", -20.0, ms(0), ms(200));
        t.sample("ann", f64::NAN, ms(200));
        t.talk("ann", -20.0, ms(220), ms(500));
        assert!(t.changes.is_empty());
        // A late-stamped sample neither breaks nor lengthens the run.
        t.sample("ann", -20.0, ms(100));
        t.talk("ann", -20.0, ms(500), ms(540));
        assert_eq!(t.speakers(), vec![Some("ann")]);
        assert_eq!(t.changes[0].0, ms(520));
    }

    #[test]
    fn settings_from_the_environment_are_used() {
        let settings = SpeakerSettings {
            threshold_dbfs: -60.0,
            min_duration: ms(100),
            silence_gap: ms(50),
        };
        let origin = Instant::now();
        let mut d = ActiveSpeakerDetector::new(settings);
        for i in 0..5 {
            assert_eq!(d.observe(&"ann", -55.0, origin + SAMPLE * i), None);
        }
        assert!(d.observe(&"ann", -55.0, origin + SAMPLE * 5).is_some());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// One sample: who (of three), how long after the previous sample of anyone, and the
        /// level. Gaps and levels lean towards the interesting region (runs that nearly last,
        /// levels around the threshold).
        fn step() -> impl Strategy<Value = (usize, u64, f64)> {
            let gap = prop_oneof![3 => 0u64..=40, 1 => 0u64..=250];
            let level = prop_oneof![2 => -45.0f64..=-35.0, 1 => -127.0f64..=0.0];
            (0usize..3, gap, level)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(400))]

            /// Every switch names a new speaker whose samples, walking back from the switch,
            /// are all at or above the threshold, with no pause of the silence gap, for at least
            /// the minimum duration; and each change names the previous speaker correctly.
            #[test]
            fn no_switch_without_300_ms_of_continuous_qualifying_samples(
                steps in proptest::collection::vec(step(), 1..600)
            ) {
                let settings = SpeakerSettings::default();
                let sustain = settings.min_duration.as_millis() as u64;
                let gap = settings.silence_gap.as_millis() as u64;
                let origin = Instant::now();
                let mut detector = ActiveSpeakerDetector::new(settings);
                let mut history: Vec<Vec<(u64, f64)>> = vec![Vec::new(); 3];
                let mut now = 0u64;
                let mut speaker: Option<usize> = None;
                for (user, pause, level) in steps {
                    now += pause;
                    history[user].push((now, level));
                    let at = origin + Duration::from_millis(now);
                    let Some(change) = detector.observe(&user, level, at) else { continue };
                    prop_assert_eq!(change.speaker, Some(user));
                    prop_assert_eq!(change.previous, speaker);
                    let samples = &history[user];
                    let mut i = samples.len() - 1;
                    loop {
                        let (t, l) = samples[i];
                        prop_assert!(l >= settings.threshold_dbfs, "a quiet sample inside the run");
                        if now - t >= sustain {
                            break;
                        }
                        prop_assert!(i > 0, "switched after only {} ms", now - t);
                        prop_assert!(t - samples[i - 1].0 < gap, "a gap inside the run");
                        i -= 1;
                    }
                    speaker = Some(user);
                }
                prop_assert_eq!(detector.speaker().copied(), speaker);
                prop_assert!(detector.runs_in_progress() <= 3);
            }
        }
    }
}
