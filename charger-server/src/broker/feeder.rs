//! The one thread that hands packets to rumqttd's router.
//!
//! `LinkTx::send` is a blocking channel send into the router (capacity 1,000) and must
//! not run on async worker threads. So every `LinkTx` lives here, on a thread of its
//! own. Connection tasks and in-process consumers send [`Feed`] commands through an async
//! channel, and the router sees each connection's packets in the order they were sent.

use std::collections::HashMap;

use rumqttd::local::LinkTx;
use rumqttd::protocol::{Disconnect, DisconnectReasonCode, Packet};
use rumqttd::ConnectionId;
use tokio::sync::{mpsc, oneshot};

/// A command for the feeder thread.
pub enum Feed {
    /// Takes ownership of a connection's `LinkTx`.
    Register(ConnectionId, LinkTx),
    /// Forwards a packet to the router for that connection.
    Packet(ConnectionId, Box<Packet>),
    /// Forwards `last` (a will, if any), then a DISCONNECT, so the router frees the slot;
    /// drops the `LinkTx`; then answers `done`. With `tell_router` false (the router
    /// already dropped the connection) only the `LinkTx` is dropped.
    Close {
        id: ConnectionId,
        last: Vec<Packet>,
        tell_router: bool,
        done: oneshot::Sender<()>,
    },
}

/// The sending side, cheap to clone.
#[derive(Clone)]
pub struct Feeder {
    tx: mpsc::Sender<Feed>,
}

impl Feeder {
    /// Starts the feeder thread.
    pub fn start() -> std::io::Result<Feeder> {
        let (tx, mut rx) = mpsc::channel::<Feed>(16_384);
        let runtime = tokio::runtime::Builder::new_current_thread().build()?;
        std::thread::Builder::new()
            .name("mqtt-feeder".into())
            .spawn(move || {
                let mut links: HashMap<ConnectionId, LinkTx> = HashMap::new();
                runtime.block_on(async move {
                    while let Some(cmd) = rx.recv().await {
                        feed(&mut links, cmd).await;
                    }
                });
            })?;
        Ok(Feeder { tx })
    }

    /// Sends a command; false when the feeder is gone (the server is stopping).
    pub async fn send(&self, cmd: Feed) -> bool {
        self.tx.send(cmd).await.is_ok()
    }

    /// Closes a link and waits until the router has been told.
    pub async fn close(&self, id: ConnectionId, last: Vec<Packet>, tell_router: bool) {
        let (done, wait) = oneshot::channel();
        if self
            .send(Feed::Close {
                id,
                last,
                tell_router,
                done,
            })
            .await
        {
            let _ = wait.await;
        }
    }
}

async fn feed(links: &mut HashMap<ConnectionId, LinkTx>, cmd: Feed) {
    match cmd {
        Feed::Register(id, link) => {
            links.insert(id, link);
        }
        Feed::Packet(id, packet) => {
            if let Some(link) = links.get_mut(&id) {
                if let Err(e) = link.send(*packet).await {
                    tracing::warn!(connection = id, error = %e, "router refused a packet");
                }
            }
        }
        Feed::Close {
            id,
            last,
            tell_router,
            done,
        } => {
            if let Some(mut link) = links.remove(&id) {
                if tell_router {
                    let disconnect = Packet::Disconnect(
                        Disconnect {
                            reason_code: DisconnectReasonCode::NormalDisconnection,
                        },
                        None,
                    );
                    for packet in last.into_iter().chain([disconnect]) {
                        if let Err(e) = link.send(packet).await {
                            tracing::warn!(connection = id, error = %e, "router refused a packet");
                        }
                    }
                }
            }
            let _ = done.send(());
        }
    }
}
