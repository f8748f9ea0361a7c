//! A real browser for tests: Debian's `chromium`, headless, driven through `chromedriver` on a
//! free port with `fantoccini`. Each [`Browser`] has its own chromedriver process and a fresh
//! profile directory; dropping it ends both.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use axum::http::Method;
use fantoccini::elements::Element;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use tokio::process::{Child, Command};

use crate::harness::{free_port, WAIT};

const CHROMIUM: &str = "/usr/bin/chromium";
/// The password the tests sign up with.
/// Times an element replaced under the test is looked up again.
const STALE_RETRIES: usize = 10;

fn is_stale(error: &fantoccini::error::CmdError) -> bool {
    matches!(
        error,
        fantoccini::error::CmdError::Standard(error)
            if error.error == fantoccini::error::ErrorStatus::StaleElementReference
    )
}

pub const PASSWORD: &str = "correct horse battery staple";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A headless chromium session.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    artifacts: PathBuf,
}

impl Browser {
    /// Starts chromedriver and a chromium session; screenshots go to
    /// `target/test-artifacts/browser/<name>/`.
    pub async fn start(name: &str) -> Browser {
        for program in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(program).exists(),
                "{program} is missing: run scripts/test (it installs Debian's chromium and \
                 chromium-driver), or `apt-get install chromium chromium-driver`"
            );
        }
        let port = free_port();
        let mut driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("cannot start chromedriver");
        let profile = tempfile::tempdir().unwrap();
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1400,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        });
        let capabilities = match capabilities {
            Value::Object(map) => map,
            _ => unreachable!(),
        };
        let deadline = tokio::time::Instant::now() + WAIT;
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(client) => break client,
                Err(error) => {
                    if let Ok(Some(status)) = driver.try_wait() {
                        panic!("chromedriver exited ({status})");
                    }
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "no chromium session: {error}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("target/test-artifacts/browser")
            .join(name);
        std::fs::create_dir_all(&artifacts).unwrap();
        let browser = Browser {
            client,
            driver,
            _profile: profile,
            artifacts,
        };
        // The console check must be able to see an error at all: log one and expect it back.
        browser
            .client
            .execute("console.error('sluice console probe')", vec![])
            .await
            .unwrap();
        let probe = browser.console_errors().await;
        assert!(
            probe
                .iter()
                .any(|message| message.contains("sluice console probe")),
            "chromedriver's log does not show console errors: {probe:?}"
        );
        browser
    }

    /// The element with `data-testid="<id>"`, waiting for it to exist.
    pub async fn testid(&self, id: &str) -> Element {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(&format!(r#"[data-testid="{id}"]"#)))
            .await
            .unwrap_or_else(|error| panic!("no element data-testid={id}: {error}"))
    }

    /// Every element with `data-testid="<id>"` now.
    pub async fn all(&self, id: &str) -> Vec<Element> {
        self.client
            .find_all(Locator::Css(&format!(r#"[data-testid="{id}"]"#)))
            .await
            .unwrap()
    }

    /// Clicks `id`. Lists that refresh themselves can replace the element between finding and
    /// using it: then it is found again (here and in [`Browser::text`]).
    pub async fn click(&self, id: &str) {
        for _ in 0..STALE_RETRIES {
            match self.testid(id).await.click().await {
                Err(error) if is_stale(&error) => continue,
                done => return done.unwrap(),
            }
        }
        panic!("data-testid={id} kept being replaced");
    }

    pub async fn type_into(&self, id: &str, text: &str) {
        let element = self.testid(id).await;
        element.clear().await.unwrap();
        element.send_keys(text).await.unwrap();
    }

    pub async fn text(&self, id: &str) -> String {
        for _ in 0..STALE_RETRIES {
            match self.testid(id).await.text().await {
                Err(error) if is_stale(&error) => continue,
                text => return text.unwrap(),
            }
        }
        panic!("data-testid={id} kept being replaced");
    }

    /// Waits until `id`'s text satisfies `done`; returns it.
    pub async fn wait_text(&self, id: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let text = self.text(id).await;
            if done(&text) {
                return text;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "data-testid={id} still reads {text:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until at least `n` elements have `data-testid="<id>"`; returns them.
    pub async fn wait_count(&self, id: &str, n: usize) -> Vec<Element> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let found = self.all(id).await;
            if found.len() >= n {
                return found;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} of {n} data-testid={id}",
                found.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for the page's alert (`.error`, shown) and returns its text.
    pub async fn alert_text(&self) -> String {
        self.client
            .wait()
            .for_element(fantoccini::Locator::Css(".error:not([hidden])"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Waits until no element has `data-testid="<id>"`.
    pub async fn wait_none(&self, id: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !self.all(id).await.is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "data-testid={id} is still there"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the page's path is `path`.
    pub async fn wait_path(&self, path: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let url = self.client.current_url().await.unwrap();
            if url.path() == path {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "still at {url}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Fills the sign-up form of the page shown (email, [`PASSWORD`], and `account` when
    /// given), submits it, and waits for the Plans page it leads to.
    pub async fn sign_up(&self, email: &str, account: Option<&str>) {
        self.type_into("signup-email", email).await;
        self.type_into("signup-password", PASSWORD).await;
        if let Some(account) = account {
            self.type_into("signup-account", account).await;
        }
        self.click("signup-submit").await;
        self.wait_path("/plans").await;
    }

    /// On the Plans page: flicks `plan`'s switch and waits until it is the current plan.
    pub async fn switch_plan(&self, plan: &str) {
        self.click(&format!("plan-select-{plan}")).await;
        self.wait_text("plan-current", |text| text == plan).await;
    }

    /// Goes to the Firehose viewer and waits until its stream is live.
    pub async fn open_viewer(&self) {
        self.click("nav-firehose").await;
        self.wait_text("stream-state", |text| text == "live").await;
    }

    /// Saves a screenshot as `<name>.png` among the test's artifacts; returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.unwrap();
        let path = self.artifacts.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// The browser's console messages at level SEVERE since the last call: errors logged by
    /// scripts, failed loads, CSP violations.
    pub async fn console_errors(&self) -> Vec<String> {
        let entries = self.client.issue_cmd(BrowserLog).await.unwrap();
        entries
            .as_array()
            .unwrap_or_else(|| panic!("the browser log is not a list: {entries}"))
            .iter()
            .filter(|entry| entry["level"] == "SEVERE")
            .map(|entry| entry["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    pub async fn close(mut self) {
        self.client.clone().close().await.ok();
        self.driver.kill().await.ok();
    }
}

/// ChromeDriver's log endpoint (not in W3C WebDriver): `POST /session/{id}/se/log`.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (Method, Option<String>) {
        (Method::POST, Some(json!({"type": "browser"}).to_string()))
    }
}
