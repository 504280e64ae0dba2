//! OCPP chargers: the WebSocket link ([`OcppLink`], 1.6J or 2.0.1 as the bundle says), one
//! 1.6J charger played from a script ([`OcppCharger`]), and the bundle lines the server
//! issues for them ([`OcppBundle`]). Load runs play both versions.
//!
//! The link sends one CALL at a time and waits for its answer; the server's CALLs that
//! arrive meanwhile are answered at once (`Accepted`, or what the action needs), and a
//! remote start or stop is remembered for the charger to act on.

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use base64::Engine as _;
use charger_protocol::ocpp::Frame;
use futures_util::{SinkExt as _, StreamExt as _};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::Message;

/// An OCPP charger's credentials, as `charger-server provision --protocol ocpp1.6` writes
/// them (one JSON object a line).
#[derive(Debug, Clone, Deserialize)]
pub struct OcppBundle {
    pub device_id: String,
    pub owner: String,
    pub ocpp: OcppCredentials,
}

#[derive(Clone, Deserialize)]
pub struct OcppCredentials {
    pub path: String,
    /// The subprotocol to offer: `ocpp1.6` or `ocpp2.0.1`.
    #[serde(default = "ocpp16")]
    pub subprotocol: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for OcppCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OcppCredentials")
            .field("path", &self.path)
            .field("password", &"<redacted>")
            .finish()
    }
}

fn ocpp16() -> String {
    "ocpp1.6".to_owned()
}

/// Reads a JSON-lines file of OCPP charger credentials; an error names the line.
pub fn read_ocpp_bundles(reader: impl std::io::BufRead) -> anyhow::Result<Vec<OcppBundle>> {
    let mut out = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("line {}", n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let b: OcppBundle = serde_json::from_str(&line)
            .with_context(|| format!("line {}: not an OCPP charger's credentials", n + 1))?;
        out.push(b);
    }
    if out.is_empty() {
        bail!("no bundles in the file");
    }
    Ok(out)
}

/// A command the server asked for, for the charger to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Asked {
    Start { tag: String },
    Stop { transaction: i64 },
}

/// One charger's WebSocket.
pub struct OcppLink {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next: u64,
    /// Remote starts and stops the server asked for.
    pub asked: VecDeque<Asked>,
    /// Every server CALL taken, by action.
    pub served: Vec<String>,
    /// The socket failed (a load run reconnects).
    pub closed: bool,
    /// The server chose OCPP 2.0.1.
    pub v201: bool,
}

/// How long a CALL waits for its answer.
const ANSWER_WAIT: Duration = Duration::from_secs(30);

impl OcppLink {
    /// Opens `<server><path>` (e.g. `ws://127.0.0.1:8080` + `/ocpp/cp-1`) with the
    /// bundle's Basic credentials, offering the bundle's subprotocol.
    pub async fn connect(server: &str, bundle: &OcppBundle) -> anyhow::Result<OcppLink> {
        let url = format!("{}{}", server.trim_end_matches('/'), bundle.ocpp.path);
        let mut request = url
            .as_str()
            .into_client_request()
            .with_context(|| format!("{url}: not a WebSocket URL"))?;
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", bundle.ocpp.username, bundle.ocpp.password));
        let headers = request.headers_mut();
        headers.insert("Authorization", format!("Basic {token}").parse()?);
        headers.insert(
            "Sec-WebSocket-Protocol",
            bundle.ocpp.subprotocol.as_str().parse()?,
        );
        let (ws, response) = tokio::time::timeout(
            Duration::from_secs(10),
            tokio_tungstenite::connect_async(request),
        )
        .await
        .map_err(|_| anyhow!("{url}: no handshake in 10 s"))?
        .with_context(|| url.clone())?;
        let v201 = response
            .headers()
            .get("Sec-WebSocket-Protocol")
            .is_some_and(|p| p.as_bytes() == b"ocpp2.0.1");
        Ok(OcppLink {
            ws,
            next: 0,
            asked: VecDeque::new(),
            served: Vec::new(),
            closed: false,
            v201,
        })
    }

    /// Boots: 1.6 once; 2.0.1 once, and when its first boot is Pending, serves the
    /// server's configuration reads and boots again.
    pub async fn boot(&mut self) -> anyhow::Result<Value> {
        if !self.v201 {
            return self
                .call(
                    "BootNotification",
                    json!({"chargePointVendor": "Sim", "chargePointModel": "OCPP sim"}),
                )
                .await;
        }
        let boot = json!({"reason": "PowerUp",
                          "chargingStation": {"vendorName": "Sim", "model": "OCPP 2.0.1 sim",
                                              "firmwareVersion": "sim-1.0"}});
        let first = self.call("BootNotification", boot.clone()).await?;
        if first["status"] != "Pending" {
            return Ok(first);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !self.served.iter().any(|a| a == "GetBaseReport")
            && tokio::time::Instant::now() < deadline
        {
            self.serve_for(Duration::from_millis(100)).await?;
        }
        self.call("BootNotification", boot).await
    }

    /// Sends a CALL; its CALLRESULT payload, or an error naming the CALLERROR.
    pub async fn call(&mut self, action: &str, payload: Value) -> anyhow::Result<Value> {
        self.next += 1;
        let id = format!("sim-{}", self.next);
        let frame = Frame::Call {
            id: id.clone(),
            action: action.to_owned(),
            payload,
        };
        self.ws.send(Message::Text(frame.to_text().into())).await?;
        let deadline = tokio::time::Instant::now() + ANSWER_WAIT;
        loop {
            let message = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .map_err(|_| anyhow!("{action}: no answer"))?
                .ok_or_else(|| anyhow!("{action}: the server closed the socket"))??;
            let Message::Text(text) = message else {
                if let Message::Close(c) = message {
                    bail!("{action}: the server closed the socket ({c:?})");
                }
                continue;
            };
            match Frame::parse(text.as_str()) {
                Ok(Frame::CallResult { id: got, payload }) if got == id => return Ok(payload),
                Ok(Frame::CallError {
                    id: got,
                    code,
                    description,
                    ..
                }) if got == id => bail!("{action}: CALLERROR {code}: {description}"),
                Ok(Frame::Call {
                    id: call,
                    action: asked,
                    payload,
                }) => self.serve(call, &asked, &payload).await?,
                _ => {}
            }
        }
    }

    /// Answers the server's CALLs for `wait`.
    pub async fn serve_for(&mut self, wait: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(next) = tokio::time::timeout_at(deadline, self.ws.next()).await {
            let Some(message) = next else {
                bail!("the server closed the socket");
            };
            if let Message::Text(text) = message? {
                if let Ok(Frame::Call {
                    id,
                    action,
                    payload,
                }) = Frame::parse(text.as_str())
                {
                    self.serve(id, &action, &payload).await?;
                }
            }
        }
        Ok(())
    }

    async fn serve(&mut self, id: String, action: &str, payload: &Value) -> anyhow::Result<()> {
        self.served.push(action.to_owned());
        let answer = match action {
            "RemoteStartTransaction" => {
                if let Some(tag) = payload["idTag"].as_str() {
                    self.asked.push_back(Asked::Start {
                        tag: tag.to_owned(),
                    });
                }
                json!({"status": "Accepted"})
            }
            "RemoteStopTransaction" => {
                if let Some(t) = payload["transactionId"].as_i64() {
                    self.asked.push_back(Asked::Stop { transaction: t });
                }
                json!({"status": "Accepted"})
            }
            // 2.0.1 (load runs only answer; the scripted charger speaks 1.6).
            "GetBaseReport" | "RequestStartTransaction" | "RequestStopTransaction" => {
                json!({"status": "Accepted"})
            }
            "GetVariables" => json!({"getVariableResult": payload["getVariableData"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|d| json!({"attributeStatus": "UnknownVariable",
                                "component": d["component"], "variable": d["variable"]}))
                .collect::<Vec<_>>()}),
            "SetVariables" => json!({"setVariableResult": payload["setVariableData"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|d| json!({"attributeStatus": "Accepted",
                                "component": d["component"], "variable": d["variable"]}))
                .collect::<Vec<_>>()}),
            "GetLocalListVersion" if self.v201 => json!({"versionNumber": 0}),
            "UnlockConnector" => json!({"status": "Unlocked"}),
            "GetConfiguration" => json!({"configurationKey": [], "unknownKey": []}),
            "GetLocalListVersion" => json!({"listVersion": 0}),
            "GetCompositeSchedule" => json!({"status": "Rejected"}),
            "DataTransfer" => json!({"status": "UnknownVendorId"}),
            _ => json!({"status": "Accepted"}),
        };
        let frame = Frame::CallResult {
            id,
            payload: answer,
        };
        self.ws.send(Message::Text(frame.to_text().into())).await?;
        Ok(())
    }

    /// Closes the socket.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// One OCPP 1.6 charger with one connector, played step by step (the steps of
/// [`crate::script`]): `online` boots and reports Available; `tap` authorizes, or stops
/// its transaction; `plug` + an authorized tag start a transaction; `charge` sends meter
/// values; `unplug` stops; `commands` serves the server's remote start and stop. While
/// offline, transaction messages are queued and sent in order when it is back (a start
/// queued offline names its transaction `-1` until the server gives it an id).
pub struct OcppCharger {
    pub bundle: OcppBundle,
    server: String,
    link: Option<OcppLink>,
    transaction: Option<i64>,
    authorized: Option<String>,
    plugged: bool,
    pub meter_wh: i64,
    pub time_scale: f64,
    queue: VecDeque<(String, Value)>,
    pub events: Vec<String>,
    pub echo: bool,
}

impl OcppCharger {
    pub fn new(mut bundle: OcppBundle, server: String) -> Self {
        // The scripted charger speaks 1.6 (a 2.0.1 station may negotiate it).
        bundle.ocpp.subprotocol = ocpp16();
        OcppCharger {
            bundle,
            server,
            link: None,
            transaction: None,
            authorized: None,
            plugged: false,
            meter_wh: 0,
            time_scale: 1.0,
            queue: VecDeque::new(),
            events: Vec::new(),
            echo: false,
        }
    }

    fn say(&mut self, line: String) {
        if self.echo {
            println!("{}: {line}", self.bundle.device_id);
        }
        self.events.push(line);
    }

    /// The transaction in progress, when the server has numbered it.
    pub fn transaction(&self) -> Option<i64> {
        self.transaction.filter(|t| *t >= 0)
    }

    async fn call(&mut self, action: &str, payload: Value) -> anyhow::Result<Value> {
        let Some(link) = self.link.as_mut() else {
            bail!("offline");
        };
        let r = link.call(action, payload).await;
        match &r {
            Ok(v) => {
                let status = v["status"]
                    .as_str()
                    .or(v["idTagInfo"]["status"].as_str())
                    .unwrap_or("");
                self.say(format!("{action} -> {status}").trim_end().to_owned());
            }
            Err(e) => self.say(format!("{e:#}")),
        }
        r
    }

    /// Transaction messages go out now, or queue while offline.
    async fn send_or_queue(
        &mut self,
        action: &str,
        payload: Value,
    ) -> anyhow::Result<Option<Value>> {
        if self.link.is_some() {
            return self.call(action, payload).await.map(Some);
        }
        self.queue.push_back((action.to_owned(), payload));
        self.say(format!("{action} queued"));
        Ok(None)
    }

    pub async fn online(&mut self) -> anyhow::Result<()> {
        self.link = Some(OcppLink::connect(&self.server, &self.bundle).await?);
        self.say("online".into());
        self.call(
            "BootNotification",
            json!({"chargePointVendor": "Sim", "chargePointModel": "OCPP sim", "firmwareVersion": "sim-1.0"}),
        )
        .await?;
        let status = if self.transaction.is_some() {
            "Charging"
        } else {
            "Available"
        };
        self.status(status).await?;
        // What was queued offline, in order; a start gets its id, and the messages after
        // it name that id.
        while let Some((action, mut payload)) = self.queue.pop_front() {
            if payload["transactionId"] == -1 {
                if let Some(t) = self.transaction() {
                    payload["transactionId"] = t.into();
                }
            }
            let answer = self.call(&action, payload).await?;
            if action == "StartTransaction" {
                let id = answer["transactionId"].as_i64();
                if self.transaction == Some(-1) {
                    self.transaction = id;
                } else if let Some(id) = id {
                    // It stopped offline too: its stop (queued) names it.
                    for (a, p) in self.queue.iter_mut() {
                        if (a == "StopTransaction" || a == "MeterValues")
                            && p["transactionId"] == -1
                        {
                            p["transactionId"] = id.into();
                        }
                    }
                }
            }
        }
        Ok(())
    }

    pub async fn offline(&mut self) {
        if let Some(link) = self.link.take() {
            link.close().await;
        }
        self.say("offline".into());
    }

    async fn status(&mut self, status: &str) -> anyhow::Result<()> {
        if self.link.is_some() {
            self.call(
                "StatusNotification",
                json!({"connectorId": 1, "errorCode": "NoError", "status": status, "timestamp": now()}),
            )
            .await?;
        }
        Ok(())
    }

    pub async fn tap(&mut self, tag: &str) -> anyhow::Result<()> {
        let tag = tag.to_ascii_uppercase();
        if self.transaction.is_some() {
            return self.stop("Local", Some(tag)).await;
        }
        if self.link.is_some() {
            let a = self.call("Authorize", json!({"idTag": tag})).await?;
            if a["idTagInfo"]["status"] != "Accepted" {
                return Ok(());
            }
        }
        self.authorized = Some(tag);
        if self.plugged {
            self.start().await?;
        }
        Ok(())
    }

    pub async fn plug(&mut self) -> anyhow::Result<()> {
        self.plugged = true;
        if self.transaction.is_none() {
            self.status("Preparing").await?;
        }
        if self.authorized.is_some() && self.transaction.is_none() {
            self.start().await?;
        }
        Ok(())
    }

    async fn start(&mut self) -> anyhow::Result<()> {
        let Some(tag) = self.authorized.take() else {
            return Ok(());
        };
        let payload = json!({"connectorId": 1, "idTag": tag, "meterStart": self.meter_wh, "timestamp": now()});
        match self.send_or_queue("StartTransaction", payload).await? {
            Some(a) => {
                self.transaction = a["transactionId"].as_i64();
                if a["idTagInfo"]["status"] == "Accepted" {
                    self.status("Charging").await?;
                } else {
                    // Not accepted: the charger stops at once (StopTransactionOnInvalidId).
                    self.stop("DeAuthorized", None).await?;
                }
            }
            None => self.transaction = Some(-1),
        }
        Ok(())
    }

    pub async fn charge(&mut self, real: Duration, power_w: i64) -> anyhow::Result<()> {
        let Some(tx) = self.transaction else {
            bail!("no transaction to charge");
        };
        tokio::time::sleep(real).await;
        let hours = real.as_secs_f64() * self.time_scale / 3600.0;
        self.meter_wh += (power_w as f64 * hours).round() as i64;
        let payload = json!({"connectorId": 1, "transactionId": tx, "meterValue": [{
        "timestamp": now(),
        "sampledValue": [
            {"value": self.meter_wh.to_string(), "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
            {"value": power_w.to_string(), "measurand": "Power.Active.Import", "unit": "W"}
        ]}]});
        self.send_or_queue("MeterValues", payload).await?;
        Ok(())
    }

    pub async fn unplug(&mut self) -> anyhow::Result<()> {
        if self.transaction.is_some() {
            self.stop("EVDisconnected", None).await?;
        }
        self.plugged = false;
        self.status("Available").await
    }

    async fn stop(&mut self, reason: &str, tag: Option<String>) -> anyhow::Result<()> {
        let Some(tx) = self.transaction.take() else {
            return Ok(());
        };
        let mut payload = json!({"transactionId": tx, "meterStop": self.meter_wh, "timestamp": now(), "reason": reason});
        if let Some(tag) = tag {
            payload["idTag"] = tag.into();
        }
        self.send_or_queue("StopTransaction", payload).await?;
        Ok(())
    }

    /// Serves the server's CALLs for `wait`, acting on remote starts and stops.
    pub async fn serve_commands(&mut self, wait: Duration) -> anyhow::Result<()> {
        let Some(link) = self.link.as_mut() else {
            bail!("offline");
        };
        link.serve_for(wait).await?;
        let asked: Vec<Asked> = link.asked.drain(..).collect();
        for a in asked {
            match a {
                Asked::Start { tag } => {
                    self.say(format!("remote start for {tag}"));
                    self.authorized = Some(tag);
                    if self.plugged {
                        self.start().await?;
                    }
                }
                Asked::Stop { transaction } if self.transaction == Some(transaction) => {
                    self.say(format!("remote stop of {transaction}"));
                    self.stop("Remote", None).await?;
                }
                Asked::Stop { .. } => {}
            }
        }
        Ok(())
    }
}
