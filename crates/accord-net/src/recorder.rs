//! Records messages in the agent's chain from a dedicated thread, in
//! batches (one transaction and one fsync per batch), so proof of every
//! message costs little per message.

use std::sync::mpsc;
use std::thread::JoinHandle;

use accord_core::{Map, Value};

use crate::NetError;

/// Most events appended in one transaction.
const MAX_BATCH: usize = 4096;

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
                        && let Err(e) = agent.stamp_batch(items)
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
            .map_err(|e| NetError::Io(format!("cannot start the recorder thread: {e}")))?;
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

impl Drop for Recorder {
    fn drop(&mut self) {
        // Closing the queue lets the thread write what is left and end.
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
