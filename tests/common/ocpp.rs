//! The OCPP test tools: PyPI's `ocpp` package (2.1.0) in a virtualenv that `.ci/run`
//! installs (`OCPP_VENV`, by default `~/.cache/charger-ci/ocpp-2.1.0`). Its `ChargePoint`
//! classes are the test chargers, and its JSON schemas the reference for our wire types.
//! In CI (`CI=true`) a missing virtualenv fails the test; elsewhere the test is skipped.

use std::path::PathBuf;

/// The virtualenv's python, or None (skipped; never in CI).
pub fn python() -> Option<PathBuf> {
    let venv = std::env::var_os("OCPP_VENV")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/charger-ci/ocpp-2.1.0"))
        });
    let python = venv.map(|v| v.join("bin/python"));
    let ok = python.as_ref().is_some_and(|p| {
        std::process::Command::new(p)
            .args(["-c", "import ocpp, websockets, jsonschema"])
            .status()
            .is_ok_and(|s| s.success())
    });
    if ok {
        return python;
    }
    assert!(
        !std::env::var("CI").is_ok_and(|v| v == "true"),
        "CI=true but the ocpp virtualenv (OCPP_VENV) is missing: .ci/run installs it"
    );
    eprintln!("the ocpp virtualenv is not installed: skipping an OCPP test");
    None
}

/// A script of `tests/ocpp/`.
pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("ocpp")
        .join(name)
}

/// An OCPP 1.6J charger: `tests/ocpp/agent.py` (PyPI `ocpp`'s `v16.ChargePoint`), driven
/// line by line.
pub struct Agent {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    /// CALLs the server sent, not yet taken by [`Agent::received`].
    received: std::collections::VecDeque<serde_json::Value>,
    /// The close the server sent, once the socket closed.
    pub closed: Option<serde_json::Value>,
}

/// How a connection attempt ended when it did not connect: the HTTP status (0: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused(pub u16);

const AGENT_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

impl Agent {
    /// Connects `id` with `password` (None: no Authorization header) offering
    /// `subprotocol`.
    pub async fn connect_with(
        python: &std::path::Path,
        url: &str,
        id: &str,
        password: Option<&str>,
        subprotocol: &str,
    ) -> Result<Agent, Refused> {
        Self::connect_trusting(python, url, id, password, subprotocol, None).await
    }

    /// [`Agent::connect_with`] over wss:// trusting the CA certificate `ca`.
    pub async fn connect_trusting(
        python: &std::path::Path,
        url: &str,
        id: &str,
        password: Option<&str>,
        subprotocol: &str,
        ca: Option<&std::path::Path>,
    ) -> Result<Agent, Refused> {
        use tokio::io::AsyncBufReadExt as _;
        let mut args = vec![
            url.to_owned(),
            id.to_owned(),
            password.unwrap_or("-").to_owned(),
            subprotocol.to_owned(),
        ];
        if let Some(ca) = ca {
            args.push(ca.display().to_string());
        }
        let mut child = tokio::process::Command::new(python)
            .arg(script("agent.py"))
            .args(&args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the OCPP agent starts");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let mut agent = Agent {
            child,
            stdin,
            lines: tokio::io::BufReader::new(stdout).lines(),
            received: Default::default(),
            closed: None,
        };
        let first = agent
            .next_line()
            .await
            .expect("the agent says how it connected");
        match first["op"].as_str() {
            Some("connected") => Ok(agent),
            _ => Err(Refused(first["status"].as_u64().unwrap_or(0) as u16)),
        }
    }

    /// Connects `id` with its password, offering `ocpp1.6`.
    pub async fn connect(python: &std::path::Path, base: &str, id: &str, password: &str) -> Agent {
        let url = format!("{}/ocpp/{id}", base.replace("http", "ws"));
        Self::connect_with(python, &url, id, Some(password), "ocpp1.6")
            .await
            .expect("the charger connects")
    }

    async fn next_line(&mut self) -> Option<serde_json::Value> {
        let line = tokio::time::timeout(AGENT_WAIT, self.lines.next_line())
            .await
            .expect("the agent answers in time")
            .expect("the agent's stdout")?;
        Some(serde_json::from_str(&line).expect("the agent writes JSON lines"))
    }

    async fn send(&mut self, cmd: serde_json::Value) {
        use tokio::io::AsyncWriteExt as _;
        let mut line = cmd.to_string();
        line.push('\n');
        self.stdin
            .write_all(line.as_bytes())
            .await
            .expect("the agent takes commands");
    }

    /// The next line that is not a server CALL (those are kept for [`Agent::received`]).
    async fn reply(&mut self) -> serde_json::Value {
        loop {
            let line = self.next_line().await.expect("the agent is running");
            match line["op"].as_str() {
                Some("received") => self.received.push_back(line),
                Some("closed") => {
                    self.closed = Some(line.clone());
                    return line;
                }
                _ => return line,
            }
        }
    }

    /// Sends a CALL; its CALLRESULT payload, or the CALLERROR's (code, description).
    pub async fn call(
        &mut self,
        action: &str,
        payload: serde_json::Value,
    ) -> Result<serde_json::Value, (String, String)> {
        self.send(serde_json::json!({"op": "call", "action": action, "payload": payload}))
            .await;
        let r = self.reply().await;
        match r["op"].as_str() {
            Some("result") => Ok(r["payload"].clone()),
            _ => Err((
                r["code"].as_str().unwrap_or("closed").to_owned(),
                r["description"].as_str().unwrap_or_default().to_owned(),
            )),
        }
    }

    /// Sends a frame as it is (ids must be unique); the answer frame, parsed.
    pub async fn raw(&mut self, id: &str, text: &str) -> Option<serde_json::Value> {
        self.send(serde_json::json!({"op": "raw", "id": id, "text": text}))
            .await;
        let r = self.reply().await;
        r["text"]
            .as_str()
            .map(|t| serde_json::from_str(t).expect("a frame is JSON"))
    }

    /// Sets the answer to the server's next CALLs of `action`.
    pub async fn respond(&mut self, action: &str, payload: serde_json::Value) {
        self.send(serde_json::json!({"op": "respond", "action": action, "payload": payload}))
            .await;
        let r = self.reply().await;
        assert_eq!(r["op"], "ok", "{r}");
    }

    /// The next CALL of `action` the server sent (waiting for it); its payload.
    pub async fn received(&mut self, action: &str) -> serde_json::Value {
        self.received_line(action).await["payload"].take()
    }

    /// The next CALL of `action` the server sent within `wait`, if one came, with when the
    /// charger took it (seconds since 1970, the charger's clock: one machine's in tests).
    pub async fn received_at_within(
        &mut self,
        action: &str,
        wait: std::time::Duration,
    ) -> Option<(f64, serde_json::Value)> {
        let mut line = tokio::time::timeout(wait, self.received_line(action))
            .await
            .ok()?;
        let at = line["at"].as_f64().expect("a time");
        Some((at, line["payload"].take()))
    }

    async fn received_line(&mut self, action: &str) -> serde_json::Value {
        loop {
            if let Some(i) = self.received.iter().position(|r| r["action"] == action) {
                return self.received.remove(i).expect("found");
            }
            let line = self.next_line().await.expect("the agent is running");
            match line["op"].as_str() {
                Some("received") => self.received.push_back(line),
                Some("closed") => panic!("the socket closed while waiting for {action}: {line}"),
                other => panic!("unexpected agent line {other:?}: {line}"),
            }
        }
    }

    /// The next CALL of `action` the server sent within `wait`, if one came.
    pub async fn received_within(
        &mut self,
        action: &str,
        wait: std::time::Duration,
    ) -> Option<serde_json::Value> {
        // `received` keeps what it read before it is cut short (lines are read whole).
        tokio::time::timeout(wait, self.received(action)).await.ok()
    }

    /// Waits until the server closes the socket; the close's code.
    pub async fn wait_closed(&mut self) -> Option<u64> {
        if self.closed.is_none() {
            loop {
                match self.next_line().await {
                    Some(line) if line["op"] == "closed" => {
                        self.closed = Some(line);
                        break;
                    }
                    Some(line) if line["op"] == "received" => self.received.push_back(line),
                    Some(_) => {}
                    None => break,
                }
            }
        }
        self.closed.as_ref().and_then(|c| c["code"].as_u64())
    }

    /// Closes the socket and ends the agent.
    pub async fn close(mut self) {
        self.send(serde_json::json!({"op": "close"})).await;
        let _ = tokio::time::timeout(AGENT_WAIT, self.child.wait()).await;
    }
}

/// Provisions `count` OCPP chargers of `owner` (ids `<prefix>00000`, ...) that speak
/// `protocol`, in one bulk call; their credentials as the simulator reads them.
pub async fn bulk_bundles(
    rest: &crate::Rest,
    owner: &str,
    prefix: &str,
    count: usize,
    protocol: &str,
) -> Vec<charger_firmware_sim::ocpp::OcppBundle> {
    let a = rest
        .post(
            "/api/v1/devices/bulk",
            crate::ADMIN_TOKEN,
            serde_json::json!({"owner": owner, "prefix": prefix, "count": count,
                               "protocol": protocol}),
        )
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    let lines: Vec<String> = a.body["devices"]
        .as_array()
        .expect("bundles")
        .iter()
        .map(serde_json::Value::to_string)
        .collect();
    charger_firmware_sim::ocpp::read_ocpp_bundles(lines.join("\n").as_bytes())
        .expect("OCPP bundles")
}

/// Sends a REST command to `device` in the background, so that the test's charger can
/// answer meanwhile: the status and body of its answer.
pub fn spawn_command(
    rest: &crate::Rest,
    device: &str,
    command: &str,
    data: serde_json::Value,
) -> tokio::task::JoinHandle<(u16, serde_json::Value)> {
    let url = format!("{}/api/v1/devices/{device}/commands/{command}", rest.base);
    let http = rest.http.clone();
    tokio::spawn(async move {
        let r = http
            .post(url)
            .bearer_auth(crate::ADMIN_TOKEN)
            .json(&data)
            .send()
            .await
            .expect("REST");
        (
            r.status().as_u16(),
            r.json::<serde_json::Value>().await.unwrap_or_default(),
        )
    })
}
