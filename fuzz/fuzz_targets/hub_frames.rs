//! The hub's connection handler fed arbitrary bytes: it never panics, and
//! everything it writes back is well-formed frames of JSON objects.
#![no_main]
use std::sync::Arc;

use accord_net::frame::{self, MAX_FRAME};
use accord_net::hub::{HubCore, Limits, serve_connection};
use libfuzzer_sys::fuzz_target;
use tokio::io::AsyncWriteExt;

fuzz_target!(|data: &[u8]| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let core = Arc::new(HubCore::open(None, Limits::default()).expect("in-memory hub"));
        let (mut client, server) = tokio::io::duplex(4 * MAX_FRAME);
        let task = tokio::spawn(serve_connection(core, server));
        client.write_all(data).await.expect("write");
        client.shutdown().await.expect("shutdown");
        loop {
            match frame::read_frame(&mut client, MAX_FRAME).await {
                Ok(Some(body)) => {
                    let v: serde_json::Value =
                        serde_json::from_slice(&body).expect("reply is JSON");
                    assert!(v.is_object());
                }
                Ok(None) => break,
                Err(e) => panic!("malformed reply stream: {e}"),
            }
        }
        task.await.expect("handler did not panic");
    });
});
