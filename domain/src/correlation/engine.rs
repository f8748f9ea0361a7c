//! The rule's state machine: a reorder buffer for reports not yet final, and per key one
//! sighting per provider inside the window.
//!
//! Reports enter the reorder buffer (ordered by time, key, provider; an exact repeat merges).
//! The release frontier `final_before` only moves forward: every buffered report older than it
//! is applied in time order, so decisions are those of the time-ordered sequence. A report older
//! than the frontier when it arrives is a straggler.
//!
//! Memory: per key, one sighting per provider reported inside the window (24 bytes each) and the
//! time of its last emission; keys whose sightings and cooldown have both expired are swept.
//! The reorder buffer holds only the reports of the last `lateness` of event time.
//!
//! A withdrawal goes through the reorder buffer like a report, and when applied removes its
//! provider's sighting of the key: from then on the provider counts again only once it reports
//! the key again. It decides nothing itself, and an emission already made stands.

use std::collections::{BTreeMap, HashMap};

use super::emission::{Emission, Source};
use super::key::Key;
use super::rule::{Report, Rule};
use crate::Tlp;

/// What became of an observed report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    /// Older than what is already final: ignored (and counted).
    Straggler,
}

/// Gauges and counters of one engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Keys with state (sightings in the window or a running cooldown).
    pub keys: usize,
    /// Sightings held across all keys.
    pub sightings: usize,
    /// Reports waiting in the reorder buffer.
    pub pending: usize,
    pub accepted: u64,
    pub stragglers: u64,
    pub emissions: u64,
    /// Withdrawals applied that removed a provider's sighting.
    pub withdrawn: u64,
}

pub struct Engine {
    rule: Rule,
    window: i64,
    lateness: i64,
    idle: i64,
    /// Every report older than this has been applied; reports older than this are stragglers.
    final_before: i64,
    newest: Option<i64>,
    last_arrival: Option<i64>,
    pending: BTreeMap<(i64, Key, u32), Attributes>,
    keys: HashMap<Key, KeyState>,
    /// `final_before` at the last sweep of expired keys.
    swept_at: i64,
    providers: Interner<str>,
    tag_sets: Interner<[String]>,
    stats: EngineStats,
}

/// What a report carries besides its key, provider and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Attributes {
    /// Hundredths (confidence is kept to two decimals).
    confidence: u16,
    tlp: Tlp,
    tags: u32,
    /// A withdrawal, not a report.
    withdrawn: bool,
}

#[derive(Debug, Clone, Copy)]
struct Sighting {
    provider: u32,
    time: i64,
    attributes: Attributes,
}

#[derive(Debug, Default)]
struct KeyState {
    /// One per provider: its latest applied report.
    sightings: Vec<Sighting>,
    last_emission: Option<i64>,
}

impl Engine {
    pub fn new(rule: Rule) -> Engine {
        Engine {
            window: rule.window_us(),
            lateness: rule.lateness_us(),
            idle: rule.idle_us(),
            rule,
            final_before: i64::MIN,
            newest: None,
            last_arrival: None,
            pending: BTreeMap::new(),
            keys: HashMap::new(),
            swept_at: i64::MIN,
            providers: Interner::default(),
            tag_sets: Interner::default(),
            stats: EngineStats::default(),
        }
    }

    pub fn rule(&self) -> &Rule {
        &self.rule
    }

    /// Cheap: every figure is kept up to date as the state changes.
    pub fn stats(&self) -> EngineStats {
        EngineStats {
            keys: self.keys.len(),
            pending: self.pending.len(),
            ..self.stats
        }
    }

    /// Takes one considered report; decisions it makes final are pushed onto `out`.
    pub fn observe(&mut self, report: &Report<'_>, out: &mut Vec<Emission>) -> Outcome {
        // A quiet spell before this report moved the frontier by the clock (see `idle`).
        if let Some(previous) = self.last_arrival {
            if report.arrival.saturating_sub(previous) >= self.idle {
                self.release_by_clock(report.arrival, out);
            }
        }
        self.last_arrival = Some(
            self.last_arrival
                .map_or(report.arrival, |a| a.max(report.arrival)),
        );
        if report.time < self.final_before {
            self.stats.stragglers += 1;
            return Outcome::Straggler;
        }
        self.stats.accepted += 1;
        let provider = self.providers.intern(report.provider);
        let mut tags: Vec<String> = report.tags.to_vec();
        tags.sort_unstable();
        let attributes = Attributes {
            confidence: hundredths(report.confidence),
            tlp: report.tlp,
            tags: self.tag_sets.intern(&tags),
            withdrawn: report.withdrawn,
        };
        let slot = (report.time, report.key, provider);
        let merged = match self.pending.get(&slot) {
            Some(existing) => self.merge(*existing, attributes),
            None => attributes,
        };
        self.pending.insert(slot, merged);
        let newest = self.newest.map_or(report.time, |n| n.max(report.time));
        self.newest = Some(newest);
        self.release(newest.saturating_sub(self.lateness), out);
        Outcome::Accepted
    }

    /// The log's clock reads `clock` and every report appended before it has been observed.
    /// Once no report has arrived for `idle`, the frontier follows the clock instead of the
    /// newest report: reports older than `clock − lateness` become final (never beyond what
    /// was seen), so decisions do not wait for traffic that may not come. A replay makes the
    /// same move when it meets the next report's arrival, so it decides the same.
    pub fn idle(&mut self, clock: i64, out: &mut Vec<Emission>) {
        if self
            .last_arrival
            .is_some_and(|previous| clock.saturating_sub(previous) >= self.idle)
        {
            self.release_by_clock(clock, out);
        }
    }

    fn release_by_clock(&mut self, clock: i64, out: &mut Vec<Emission>) {
        if let Some(newest) = self.newest {
            let frontier = newest
                .saturating_add(1)
                .min(clock.saturating_sub(self.lateness));
            self.release(frontier, out);
        }
    }

    /// Everything observed becomes final now. For the end of a finite input (tests, benches);
    /// a running correlator relies on `idle` instead, which replays reproduce.
    pub fn finalise_all(&mut self, out: &mut Vec<Emission>) {
        if let Some(newest) = self.newest {
            self.release(newest.saturating_add(1), out);
        }
    }

    /// An emission of this rule found in the log (a replica's, or one from before a restart):
    /// the key's cooldown runs from it even if this engine's state could not reconstruct it.
    pub fn note_emission(&mut self, key: Key, time: i64) {
        let state = self.keys.entry(key).or_default();
        state.last_emission = Some(state.last_emission.map_or(time, |last| last.max(time)));
    }

    /// The log refused this engine's emission for `key` because the key's newest emission is
    /// at `newest` (a history retention shortened led it to decide too early): the cooldown
    /// runs from the log's emission, not from the refused one.
    pub fn refused(&mut self, key: Key, newest: i64) {
        self.keys.entry(key).or_default().last_emission = Some(newest);
    }

    fn merge(&mut self, a: Attributes, b: Attributes) -> Attributes {
        // A report and its withdrawal at the same time: the withdrawal is the provider's last
        // word.
        if a.withdrawn || b.withdrawn {
            return if a.withdrawn { a } else { b };
        }
        let tags = if a.tags == b.tags {
            a.tags
        } else {
            let mut union: Vec<String> = self.tag_sets.get(a.tags).to_vec();
            union.extend(self.tag_sets.get(b.tags).iter().cloned());
            union.sort_unstable();
            union.dedup();
            self.tag_sets.intern(&union)
        };
        Attributes {
            confidence: a.confidence.max(b.confidence),
            tlp: a.tlp.max(b.tlp),
            tags,
            withdrawn: false,
        }
    }

    /// Applies, in time order, every pending report older than `frontier`.
    fn release(&mut self, frontier: i64, out: &mut Vec<Emission>) {
        if frontier <= self.final_before {
            return;
        }
        self.final_before = frontier;
        while let Some(entry) = self.pending.first_entry() {
            let (time, key, _) = *entry.key();
            if time >= frontier {
                break;
            }
            // Every report of this key at this time, then one decision if any was a report.
            let mut reported = false;
            while let Some(entry) = self.pending.first_entry() {
                let &(t, k, provider) = entry.key();
                if t != time || k != key {
                    break;
                }
                let attributes = entry.remove();
                if attributes.withdrawn {
                    self.withdraw(key, provider);
                    continue;
                }
                reported = true;
                self.apply(
                    key,
                    Sighting {
                        provider,
                        time,
                        attributes,
                    },
                );
            }
            if reported {
                self.decide(key, time, out);
            }
        }
        if frontier.saturating_sub(self.swept_at) >= self.window / 8 {
            self.sweep();
        }
    }

    fn apply(&mut self, key: Key, sighting: Sighting) {
        let state = self.keys.entry(key).or_insert_with(|| KeyState {
            sightings: Vec::with_capacity(1),
            last_emission: None,
        });
        match state
            .sightings
            .iter_mut()
            .find(|s| s.provider == sighting.provider)
        {
            // Applied in time order, so this is the provider's latest report.
            Some(existing) => *existing = sighting,
            None => {
                state.sightings.push(sighting);
                self.stats.sightings += 1;
            }
        }
    }

    /// Removes `provider`'s sighting of `key` (applied in time order: it is older).
    fn withdraw(&mut self, key: Key, provider: u32) {
        let Some(state) = self.keys.get_mut(&key) else {
            return;
        };
        let before = state.sightings.len();
        state.sightings.retain(|s| s.provider != provider);
        let removed = before - state.sightings.len();
        self.stats.sightings -= removed;
        self.stats.withdrawn += removed as u64;
    }

    /// Evaluates the condition for `key` at `time`, a time it was reported at.
    fn decide(&mut self, key: Key, time: i64, out: &mut Vec<Emission>) {
        let Some(state) = self.keys.get_mut(&key) else {
            return;
        };
        let oldest = time.saturating_sub(self.window);
        let before = state.sightings.len();
        state.sightings.retain(|s| s.time >= oldest);
        self.stats.sightings -= before - state.sightings.len();
        let cooled = state
            .last_emission
            .is_none_or(|last| time >= last.saturating_add(self.window));
        if state.sightings.len() < self.rule.threshold || !cooled {
            return;
        }
        state.last_emission = Some(time);
        let mut sightings = state.sightings.clone();
        sightings.sort_by(|a, b| {
            (a.time, self.providers.get(a.provider)).cmp(&(b.time, self.providers.get(b.provider)))
        });
        let source_tags: Vec<&String> = sightings
            .iter()
            .flat_map(|s| self.tag_sets.get(s.attributes.tags).iter())
            .collect();
        let tags = emission_tags(&self.rule.tags, &source_tags);
        let first = sightings.first().map_or(time, |s| s.time);
        let last = sightings.last().map_or(time, |s| s.time);
        let count = sightings.len();
        let highest = sightings
            .iter()
            .map(|s| s.attributes.confidence)
            .max()
            .unwrap_or(0);
        self.stats.emissions += 1;
        out.push(Emission {
            rule: self.rule.name.clone(),
            key,
            time,
            count,
            first,
            last,
            // The most recent ones, when there are very many: the indicator stays within its
            // size limit, and `count` still says how many providers there were.
            sources: sightings[count.saturating_sub(MAX_SOURCES)..]
                .iter()
                .map(|s| Source {
                    provider: self.providers.get(s.provider).to_owned(),
                    time: s.time,
                })
                .collect(),
            confidence: (f64::from(highest) / 100.0).max(self.rule.confidence),
            tlp: sightings
                .iter()
                .map(|s| s.attributes.tlp)
                .max()
                .unwrap_or_default(),
            tags,
        });
    }

    /// Drops what can no longer matter: sightings older than any future decision's window, and
    /// keys left with none whose cooldown is over.
    fn sweep(&mut self) {
        self.swept_at = self.final_before;
        let oldest = self.final_before.saturating_sub(self.window);
        let mut sightings = 0;
        self.keys.retain(|_, state| {
            state.sightings.retain(|s| s.time >= oldest);
            sightings += state.sightings.len();
            !state.sightings.is_empty() || state.last_emission.is_some_and(|last| last > oldest)
        });
        self.stats.sightings = sightings;
        if self.providers.len() + self.tag_sets.len() > COMPACT_ABOVE {
            self.compact_interners();
        }
    }

    /// Rebuilds the interners from what is still referenced, so that providers and tag sets
    /// seen once, long ago, do not stay forever.
    fn compact_interners(&mut self) {
        let mut providers = Interner::<str>::default();
        let mut tag_sets = Interner::<[String]>::default();
        let mut remap = |provider: &mut u32, attributes: &mut Attributes| {
            *provider = providers.intern(self.providers.get(*provider));
            attributes.tags = tag_sets.intern(self.tag_sets.get(attributes.tags));
        };
        for state in self.keys.values_mut() {
            for sighting in &mut state.sightings {
                remap(&mut sighting.provider, &mut sighting.attributes);
            }
        }
        self.pending = std::mem::take(&mut self.pending)
            .into_iter()
            .map(|((time, key, mut provider), mut attributes)| {
                remap(&mut provider, &mut attributes);
                ((time, key, provider), attributes)
            })
            .collect();
        self.providers = providers;
        self.tag_sets = tag_sets;
    }
}

/// Sources an emission lists at most (about 100 bytes each against the 64 KiB indicator limit).
pub const MAX_SOURCES: usize = 100;

/// An emission's tags: `correlated`, the rule's tags that a source carried (in the rule's
/// order), then the sources' other tags sorted; at most [`crate::indicator::MAX_TAGS`].
pub(crate) fn emission_tags(rule_tags: &[String], source_tags: &[&String]) -> Vec<String> {
    let mut tags: Vec<String> = vec!["correlated".to_owned()];
    for tag in rule_tags {
        if source_tags.contains(&tag) && !tags.contains(tag) {
            tags.push(tag.clone());
        }
    }
    let mut others: Vec<&String> = source_tags
        .iter()
        .copied()
        .filter(|tag| !tags.contains(tag))
        .collect();
    others.sort_unstable();
    others.dedup();
    tags.extend(others.into_iter().cloned());
    tags.truncate(crate::indicator::MAX_TAGS);
    tags
}

/// Interned providers and tag sets beyond which a sweep rebuilds the interners.
const COMPACT_ABOVE: usize = 65_536;

fn hundredths(confidence: f64) -> u16 {
    // Confidence is validated to 0–10 with two decimals, so this is exact and in range.
    (confidence.clamp(0.0, 10.0) * 100.0).round() as u16
}

/// Values stored once and referred to by a `u32`: providers and tag sets repeat across millions
/// of sightings.
struct Interner<T: ?Sized> {
    ids: HashMap<Box<T>, u32>,
    values: Vec<Box<T>>,
}

impl<T: ?Sized> Default for Interner<T> {
    fn default() -> Self {
        Interner {
            ids: HashMap::new(),
            values: Vec::new(),
        }
    }
}

impl<T> Interner<T>
where
    T: ?Sized + Eq + std::hash::Hash,
    Box<T>: for<'a> From<&'a T> + Clone,
{
    fn intern(&mut self, value: &T) -> u32 {
        if let Some(&id) = self.ids.get(value) {
            return id;
        }
        let id = u32::try_from(self.values.len()).unwrap_or(u32::MAX);
        let boxed: Box<T> = Box::from(value);
        self.values.push(boxed.clone());
        self.ids.insert(boxed, id);
        id
    }

    fn get(&self, id: u32) -> &T {
        &self.values[id as usize]
    }

    fn len(&self) -> usize {
        self.values.len()
    }
}
