//! Records messages in the agent's chain from a dedicated thread. Records
//! that queue up while the thread is busy are written together: one event
//! per type listing up to [`MAX_PER_EVENT`] messages, all events in one
//! transaction (one fsync), so the proof of every message costs little per
//! message even under load (one signature per event, not per message).

use std::sync::mpsc;
use std::thread::JoinHandle;

use accord_core::{Map, Value};

use crate::NetError;

/// Most records taken from the queue for one transaction.
const MAX_BATCH: usize = 4096;
/// Most messages listed in one event (an entry is ~250 bytes, far below
/// the 1 MiB event limit).
pub(crate) const MAX_PER_EVENT: usize = 512;

enum Job {
    Record(String, Map<String, Value>),
    Flush(tokio::sync::oneshot::Sender<Result<(), String>>),
}

pub(crate) struct Recorder {
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Recorder {
    pub(crate) fn start(mut agent: accord_store::Agent) -> Result<Recorder, NetError> {
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("accord-recorder".into())
            .spawn(move || {
                let mut failure: Option<String> = None;
                while let Ok(first) = rx.recv() {
                    let mut items = Vec::new();
                    let mut flushes = Vec::new();
                    let mut next = Some(first);
                    while let Some(job) = next.take() {
                        match job {
                            Job::Record(t, p) => items.push((t, p)),
                            Job::Flush(f) => flushes.push(f),
                        }
                        if items.len() < MAX_BATCH {
                            next = rx.try_recv().ok();
                        }
                    }
                    if !items.is_empty()
                        && let Err(e) = agent.stamp_batch(group(items))
                    {
                        failure = Some(e.to_string());
                    }
                    for f in flushes {
                        let _ = f.send(match failure.take() {
                            Some(e) => Err(e),
                            None => Ok(()),
                        });
                    }
                }
            })
            .map_err(|source| NetError::System {
                what: "cannot start the recorder thread".into(),
                source,
            })?;
        Ok(Recorder {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    pub(crate) fn record(&self, event_type: &str, payload: Map<String, Value>) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Job::Record(event_type.to_owned(), payload));
        }
    }

    /// Waits until everything recorded so far is in the chain; reports a
    /// failed append since the last flush.
    pub(crate) async fn flush(&self) -> Result<(), NetError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if let Some(q) = &self.tx {
            q.send(Job::Flush(tx))
                .map_err(|_| NetError::Io("the recorder thread stopped".into()))?;
        }
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(NetError::Io(format!(
                "recording messages in the chain failed: {e}"
            ))),
            Err(_) => Err(NetError::Io("the recorder thread stopped".into())),
        }
    }
}

/// One event per type and up to [`MAX_PER_EVENT`] records:
/// `{"messages": [record, …]}`, records in the order they were made.
fn group(items: Vec<(String, Map<String, Value>)>) -> Vec<(String, Map<String, Value>)> {
    let mut by_type: Vec<(String, Vec<Value>)> = Vec::new();
    for (t, entry) in items {
        match by_type.iter_mut().find(|(k, _)| *k == t) {
            Some((_, list)) => list.push(Value::Object(entry)),
            None => by_type.push((t, vec![Value::Object(entry)])),
        }
    }
    let mut events = Vec::new();
    for (t, list) in by_type {
        for chunk in list.chunks(MAX_PER_EVENT) {
            let mut payload = Map::new();
            payload.insert("messages".into(), Value::Array(chunk.to_vec()));
            events.push((t.clone(), payload));
        }
    }
    events
}

impl Drop for Recorder {
    fn drop(&mut self) {
        // Closing the queue lets the thread write what is left and end.
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_grouped_by_type_in_order_and_chunked() {
        let rec = |t: &str, n: u64| {
            let mut m = Map::new();
            m.insert("seq".into(), n.into());
            (t.to_owned(), m)
        };
        let mut items = vec![rec("message_sent", 0), rec("message_received", 0)];
        items.extend((1..=MAX_PER_EVENT as u64).map(|n| rec("message_sent", n)));
        let events = group(items);
        let summary: Vec<(String, usize)> = events
            .iter()
            .map(|(t, p)| (t.clone(), p["messages"].as_array().unwrap().len()))
            .collect();
        assert_eq!(
            summary,
            [
                ("message_sent".to_owned(), MAX_PER_EVENT),
                ("message_sent".to_owned(), 1),
                ("message_received".to_owned(), 1),
            ]
        );
        // Order within a type is kept.
        assert_eq!(events[0].1["messages"][0]["seq"], 0);
        assert_eq!(events[1].1["messages"][0]["seq"], MAX_PER_EVENT as u64);
    }
}
