//! The client side of the hub protocol: requests with ids, replies routed
//! back to their callers, pushed deliveries on a separate queue.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use accord_core::channel::{Bundle, Envelope};
use accord_core::{Keypair, Map, Value, jcs};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};

use crate::NetError;
use crate::frame::{self, MAX_FRAME};
use crate::hub::auth_message;

/// How long a request waits for its reply.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// An envelope the hub pushed: acknowledge `qid` once it is handled.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Queue id, for [`HubClient::ack`].
    pub qid: u64,
    /// The envelope as JSON.
    pub envelope: Value,
}

/// A submitted request whose reply is still to come.
#[derive(Debug)]
pub struct PendingReply {
    id: u64,
    rx: oneshot::Receiver<Result<Value, NetError>>,
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, NetError>>>>>;

/// A connection to a hub.
pub struct HubClient {
    tx: mpsc::Sender<Vec<u8>>,
    pending: Pending,
    closed: Arc<Mutex<Option<String>>>,
    next_id: AtomicU64,
    deliveries: Mutex<Option<mpsc::Receiver<Delivery>>>,
    label: String,
    reader: tokio::task::AbortHandle,
}

impl std::fmt::Debug for HubClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HubClient({})", self.label)
    }
}

impl Drop for HubClient {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl HubClient {
    /// Connects to a TCP hub at `addr` (`host:port`).
    pub async fn connect_tcp(addr: &str) -> Result<HubClient, NetError> {
        let stream = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        .map_err(|_| NetError::Disconnected(format!("connecting to {addr} timed out")))?
        .map_err(|e| NetError::Disconnected(format!("cannot connect to hub at {addr}: {e}")))?;
        let _ = stream.set_nodelay(true);
        Ok(Self::over_stream(stream, addr))
    }

    /// Speaks the protocol over any byte stream. Needs a tokio runtime.
    pub fn over_stream<S>(stream: S, label: &str) -> HubClient
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (mut rd, wr) = tokio::io::split(stream);
        let (tx, rx) = mpsc::channel::<Vec<u8>>(1024);
        tokio::spawn(frame::write_loop(wr, rx, None));
        let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
        let closed = Arc::new(Mutex::new(None));
        let (dtx, drx) = mpsc::channel::<Delivery>(4096);
        let (p2, c2) = (pending.clone(), closed.clone());
        let reader = tokio::spawn(async move {
            let reason = loop {
                match frame::read_frame(&mut rd, MAX_FRAME).await {
                    Ok(Some(body)) => {
                        let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(&body) else {
                            break "the hub sent a frame that is not a JSON object".to_owned();
                        };
                        if m.get("push").and_then(Value::as_str) == Some("deliver") {
                            let (Some(qid), Some(envelope)) =
                                (m.get("qid").and_then(Value::as_u64), m.get("envelope"))
                            else {
                                break "malformed delivery from the hub".to_owned();
                            };
                            let d = Delivery {
                                qid,
                                envelope: envelope.clone(),
                            };
                            if dtx.send(d).await.is_err() {
                                // Nobody listens for deliveries; keep serving replies.
                            }
                            continue;
                        }
                        let result = if m.get("ok") == Some(&Value::Bool(true)) {
                            Ok(m.get("result").cloned().unwrap_or(Value::Null))
                        } else {
                            let err = m.get("error");
                            let code = err
                                .and_then(|e| e.get("code"))
                                .and_then(Value::as_str)
                                .unwrap_or("unknown")
                                .to_owned();
                            let message = err
                                .and_then(|e| e.get("message"))
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_owned();
                            Err(hub_error(code, message))
                        };
                        match m.get("id").and_then(Value::as_u64) {
                            Some(id) => {
                                let waiter =
                                    p2.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                                if let Some(w) = waiter {
                                    let _ = w.send(result);
                                }
                            }
                            // An error without an id (frame too large, too many
                            // connections): the hub closes after it.
                            None => {
                                if let Err(e) = result {
                                    break e.to_string();
                                }
                            }
                        }
                    }
                    Ok(None) => break "the hub closed the connection".to_owned(),
                    Err(e) => break format!("reading from the hub: {e}"),
                }
            };
            *c2.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.clone());
            let waiters: Vec<_> = p2
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .drain()
                .collect();
            for (_, w) in waiters {
                let _ = w.send(Err(NetError::Disconnected(reason.clone())));
            }
        });
        HubClient {
            tx,
            pending,
            closed,
            next_id: AtomicU64::new(1),
            deliveries: Mutex::new(Some(drx)),
            label: label.to_owned(),
            reader: reader.abort_handle(),
        }
    }

    /// Where this client is connected (address or "in-process hub").
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The queue of pushed deliveries; can be taken once.
    pub fn take_deliveries(&self) -> Option<mpsc::Receiver<Delivery>> {
        self.deliveries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// Sends `cmd` with `args` and waits for the reply's `result`.
    pub async fn request(&self, cmd: &str, args: Map<String, Value>) -> Result<Value, NetError> {
        let pending = self.submit(cmd, args).await?;
        self.wait(pending).await
    }

    /// Hands a request to the connection without waiting for its reply:
    /// requests submitted one after another reach the hub in that order,
    /// while their replies are awaited concurrently ([`HubClient::wait`]).
    pub async fn submit(
        &self,
        cmd: &str,
        args: Map<String, Value>,
    ) -> Result<PendingReply, NetError> {
        if let Some(reason) = self
            .closed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return Err(NetError::Disconnected(reason));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut body = args;
        body.insert("id".into(), id.into());
        body.insert("cmd".into(), cmd.into());
        let bytes = jcs::to_vec(&Value::Object(body));
        if bytes.len() > MAX_FRAME {
            return Err(NetError::Input(format!(
                "request of {} bytes exceeds the hub's frame limit of {MAX_FRAME}",
                bytes.len()
            )));
        }
        let (wtx, wrx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, wtx);
        if self.tx.send(frame::encode(&bytes)).await.is_err() {
            self.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            return Err(NetError::Disconnected("the connection is closed".into()));
        }
        Ok(PendingReply { id, rx: wrx })
    }

    /// Waits for the reply to a submitted request.
    pub async fn wait(&self, pending: PendingReply) -> Result<Value, NetError> {
        match tokio::time::timeout(REQUEST_TIMEOUT, pending.rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(NetError::Disconnected(
                self.closed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone()
                    .unwrap_or_else(|| "the connection is closed".into()),
            )),
            Err(_) => {
                self.pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&pending.id);
                Err(NetError::Timeout(REQUEST_TIMEOUT.as_secs()))
            }
        }
    }

    /// `hello` then `register`: proves possession of `key` by signing the
    /// connection's challenge and publishes `bundle`. Returns how many
    /// envelopes wait in the queue.
    pub async fn register(&self, key: &Keypair, bundle: &Bundle) -> Result<u64, NetError> {
        let hello = self.request("hello", Map::new()).await?;
        let challenge = hello
            .get("challenge")
            .and_then(Value::as_str)
            .ok_or_else(|| NetError::Protocol("hello reply without a challenge".into()))?;
        let proof = key.sign(&auth_message(key.agent_id(), challenge));
        let mut args = Map::new();
        args.insert("bundle".into(), bundle.to_value());
        args.insert("proof".into(), b64(&proof.to_bytes()).into());
        let r = self.request("register", args).await?;
        Ok(r.get("queued").and_then(Value::as_u64).unwrap_or(0))
    }

    /// Fetches the bundle of `agent_id` (unverified JSON bytes; the caller
    /// verifies and pins).
    pub async fn get_bundle(&self, agent_id: &str) -> Result<Vec<u8>, NetError> {
        let mut args = Map::new();
        args.insert("agent_id".into(), agent_id.into());
        let r = self
            .request("get_bundle", args)
            .await
            .map_err(|e| match e {
                NetError::Hub { code, .. } if code == "peer_not_found" => {
                    NetError::PeerNotFound(agent_id.to_owned())
                }
                other => other,
            })?;
        r.get("bundle")
            .map(jcs::to_vec)
            .ok_or_else(|| NetError::Protocol("get_bundle reply without a bundle".into()))
    }

    /// Registered agents.
    pub async fn list_agents(&self) -> Result<Vec<String>, NetError> {
        let r = self.request("list_agents", Map::new()).await?;
        Ok(r.get("agents")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Hands an envelope to the hub. Returns the queue id and whether the
    /// recipient was online.
    pub async fn send(&self, envelope: &Envelope) -> Result<(u64, bool), NetError> {
        let pending = self.submit_send(envelope).await?;
        self.finish_send(pending, envelope.to.as_str()).await
    }

    /// The first half of [`HubClient::send`]: the envelope is on its way,
    /// in order with other submissions.
    pub async fn submit_send(&self, envelope: &Envelope) -> Result<PendingReply, NetError> {
        let mut args = Map::new();
        args.insert("envelope".into(), envelope.to_value());
        self.submit("send", args).await
    }

    /// The second half of [`HubClient::send`]: the hub's verdict.
    pub async fn finish_send(
        &self,
        pending: PendingReply,
        to: &str,
    ) -> Result<(u64, bool), NetError> {
        let r = self.wait(pending).await.map_err(|e| match e {
            NetError::Hub { code, .. } if code == "peer_not_found" => {
                NetError::PeerNotFound(to.to_owned())
            }
            other => other,
        })?;
        if r.get("accepted") != Some(&Value::Bool(true)) {
            return Err(NetError::Protocol(
                "the hub did not accept the envelope".into(),
            ));
        }
        Ok((
            r.get("qid").and_then(Value::as_u64).unwrap_or(0),
            r.get("online").and_then(Value::as_bool).unwrap_or(false),
        ))
    }

    /// Acknowledges handled deliveries (the hub deletes them).
    pub async fn ack(&self, qids: &[u64]) -> Result<u64, NetError> {
        let mut args = Map::new();
        args.insert(
            "qids".into(),
            Value::Array(qids.iter().map(|q| Value::from(*q)).collect()),
        );
        let r = self.request("ack", args).await?;
        Ok(r.get("acked").and_then(Value::as_u64).unwrap_or(0))
    }

    /// The hub's counters.
    pub async fn stats(&self) -> Result<Value, NetError> {
        self.request("stats", Map::new()).await
    }
}

fn hub_error(code: String, message: String) -> NetError {
    NetError::Hub { code, message }
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
