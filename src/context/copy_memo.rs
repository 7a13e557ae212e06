//! Resolved context copies kept for the length of one build, each with the destination
//! answers it was made from.
//!
//! The pipeline makes a build's recipe more than once (before the bases are known, then
//! for every platform); a `COPY . /app` of a 20,000-file context costs as much to resolve
//! again as the walk it reads. A resolution depends on the spec, the context (the same
//! within a build: the walks are memoized too) and what the destination answered, so it
//! is reused when every recorded [`Probe`] answers the same again, and the `needs` it
//! said are said again.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::copy::Resolved;
use super::destfs::{DestFs, Probe};

/// What a resolution asked of its destination, in order.
#[derive(Clone, Debug, PartialEq)]
enum Asked {
    Probe(String, Probe),
    Needs(String),
}

#[derive(Clone, Debug)]
struct Entry {
    asked: Vec<Asked>,
    resolved: Arc<Resolved>,
}

/// Resolutions of one build, by a key naming the copy's whole input but the destination.
#[derive(Clone, Debug, Default)]
pub struct CopyMemo {
    entries: Arc<Mutex<HashMap<String, Vec<Entry>>>>,
}

impl CopyMemo {
    /// A resolution made for `key` whose recorded answers `dest` gives again; its
    /// `needs` are replayed on `dest`.
    pub(super) fn lookup(&self, key: &str, dest: &dyn DestFs) -> Option<Resolved> {
        let candidates = self.entries.lock().ok()?.get(key)?.clone();
        let hit = candidates.into_iter().find(|e| {
            e.asked.iter().all(|a| match a {
                Asked::Probe(path, answer) => dest.probe(path) == *answer,
                Asked::Needs(_) => true,
            })
        })?;
        for a in &hit.asked {
            if let Asked::Needs(path) = a {
                dest.needs(path);
            }
        }
        Some((*hit.resolved).clone())
    }

    pub(super) fn store(&self, key: String, recorder: Recorder<'_>, resolved: &Resolved) {
        if let Ok(mut map) = self.entries.lock() {
            map.entry(key).or_default().push(Entry {
                asked: recorder.asked.into_inner(),
                resolved: Arc::new(resolved.clone()),
            });
        }
    }
}

/// A [`DestFs`] passing every question on to `inner` and noting it with the answer.
pub(super) struct Recorder<'a> {
    inner: &'a dyn DestFs,
    asked: RefCell<Vec<Asked>>,
}

impl<'a> Recorder<'a> {
    pub(super) fn new(inner: &'a dyn DestFs) -> Recorder<'a> {
        Recorder {
            inner,
            asked: RefCell::new(Vec::new()),
        }
    }
}

impl DestFs for Recorder<'_> {
    fn probe(&self, path: &str) -> Probe {
        let answer = self.inner.probe(path);
        self.asked
            .borrow_mut()
            .push(Asked::Probe(path.to_string(), answer));
        answer
    }

    fn needs(&self, path: &str) {
        self.inner.needs(path);
        self.asked.borrow_mut().push(Asked::Needs(path.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::LayerSpec;

    /// Answers from a fixed table; counts the `needs` it is told.
    struct Table(Vec<(&'static str, Probe)>, RefCell<Vec<String>>);

    impl DestFs for Table {
        fn probe(&self, path: &str) -> Probe {
            self.0
                .iter()
                .find(|(p, _)| *p == path)
                .map_or(Probe::Unknown, |(_, a)| *a)
        }
        fn needs(&self, path: &str) {
            self.1.borrow_mut().push(path.to_string());
        }
    }

    #[test]
    fn reused_only_when_the_destination_answers_the_same() {
        let memo = CopyMemo::default();
        let first = Table(vec![("app", Probe::Missing)], RefCell::default());
        let rec = Recorder::new(&first);
        assert_eq!(rec.probe("app"), Probe::Missing);
        rec.needs("app/x");
        let resolved = Resolved {
            layer: LayerSpec {
                entries: Default::default(),
                created_by: "COPY . /app".into(),
            },
            tentative: vec!["app".into()],
        };
        memo.store("k".into(), rec, &resolved);

        let same = Table(vec![("app", Probe::Missing)], RefCell::default());
        let hit = memo.lookup("k", &same).expect("same answers: reused");
        assert_eq!(hit.layer.created_by, "COPY . /app");
        assert_eq!(same.1.borrow().as_slice(), ["app/x"], "needs replayed");

        let other = Table(vec![("app", Probe::Dir)], RefCell::default());
        assert!(
            memo.lookup("k", &other).is_none(),
            "another answer: resolved again"
        );
        assert!(memo.lookup("other key", &same).is_none());
    }
}
