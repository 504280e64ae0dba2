//! A real browser for the console's tests: Debian's Chromium, headless, driven through
//! chromedriver (WebDriver) on a free loopback port. In CI (`CI=true`) a missing
//! `chromium` or `chromedriver` fails the test; elsewhere the test is skipped.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};

/// chromedriver and one browser session; both ended on drop.
pub struct Browser {
    pub client: Client,
    driver: Child,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session (None: skipped outside CI).
    pub async fn start() -> Option<Browser> {
        Self::start_in("UTC").await
    }

    /// As [`Browser::start`], with the browser in time zone `tz` (an IANA name).
    pub async fn start_in(tz: &str) -> Option<Browser> {
        let found = |p: &str| std::path::Path::new(p).exists();
        if !found("/usr/bin/chromium") || !found("/usr/bin/chromedriver") {
            assert!(
                !std::env::var("CI").is_ok_and(|v| v == "true"),
                "CI=true but chromium or chromedriver is missing"
            );
            eprintln!("chromium/chromedriver not installed: skipping a browser test");
            return None;
        }
        let port = crate::cluster::free_port();
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .env("TZ", tz)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".to_owned(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1000"]
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a browser session");
        Some(Browser { client, driver })
    }

    /// Waits (up to `within`) until the page's source satisfies `check`; its source.
    pub async fn wait_for_source(&self, within: Duration, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + within;
        loop {
            let source = self.client.source().await.expect("page source");
            if check(&source) {
                return source;
            }
            assert!(
                Instant::now() < deadline,
                "the page never matched:\n{source}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Saves a screenshot as `<dir>/<name>.png` when `CONSOLE_SCREENSHOTS=<dir>` is set.
    pub async fn screenshot(&self, name: &str) {
        if let Some(dir) = std::env::var_os("CONSOLE_SCREENSHOTS") {
            let png = self.client.screenshot().await.expect("screenshot");
            let path = std::path::Path::new(&dir).join(format!("{name}.png"));
            std::fs::write(&path, png).expect("write the screenshot");
        }
    }
}
