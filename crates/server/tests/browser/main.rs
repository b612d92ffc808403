//! The console in a real headless Chromium, driven over WebDriver (fantoccini) through a
//! chromedriver this test starts: what a user does with a mouse and a keyboard, with the
//! browser's own cookie handling, redirects and script.
//!
//! The only test that needs a browser (`chromium` and `chromium-driver`, which `.ci/run`
//! installs). Outside CI, when they are missing or the browser cannot start, each test says it
//! was skipped; under CI (`CI` set, as `.ci/run` does) that is a failure.
//!
//! `HOOKWARDEN_SCREENSHOT=docs/console.png cargo test -p hookwarden-server --test browser`
//! also saves the connectors page, as the README shows it (a relative path is from the
//! workspace's root).

#[path = "../common/mod.rs"]
mod common;

mod console;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

/// How long a page may take to show what a step waits for.
pub const PATIENCE: Duration = Duration::from_secs(15);

/// The window the pages are drawn in (and the screenshot's size).
const WINDOW: (u32, u32) = (1280, 800);

/// A headless Chromium under WebDriver, with the chromedriver it runs through.
pub struct Browser {
    pub client: Client,
    _driver: Driver,
}

/// A browser for this test, or `None` (and a line saying it was skipped) when none can start
/// outside CI. Under CI a browser that cannot start fails the test.
pub async fn browser() -> Option<Browser> {
    match Browser::start().await {
        Ok(b) => Some(b),
        Err(why) if under_ci() => panic!(
            "the browser test cannot start Chromium under CI: {why}. \
             .ci/run installs chromium and chromium-driver with apt-get."
        ),
        Err(why) => {
            eprintln!(
                "skipped: the console's browser test needs Chromium and chromedriver: {why} \
                 (apt-get install chromium chromium-driver, or run .ci/run)"
            );
            None
        }
    }
}

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The first of `names` found on PATH.
fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// A program named by `var`, or the first of `names` on PATH.
fn program(var: &str, names: &[&str]) -> Option<PathBuf> {
    std::env::var_os(var)
        .map(PathBuf::from)
        .or_else(|| on_path(names))
}

impl Browser {
    async fn start() -> Result<Self, String> {
        let chromedriver = program("HOOKWARDEN_CHROMEDRIVER", &["chromedriver"])
            .ok_or("no chromedriver on PATH (nor HOOKWARDEN_CHROMEDRIVER)")?;
        let chromium = program(
            "HOOKWARDEN_CHROMIUM",
            &["chromium", "chromium-browser", "google-chrome"],
        )
        .ok_or("no chromium on PATH (nor HOOKWARDEN_CHROMIUM)")?;
        let driver = Driver::start(&chromedriver).await?;
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                // Root in a container (CI) has no sandbox to give; /dev/shm there is small.
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-dev-shm-usage",
                    "--disable-gpu",
                    format!("--window-size={},{}", WINDOW.0, WINDOW.1),
                ],
            }),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&driver.url)
            .await
            .map_err(|e| format!("chromedriver could not start {}: {e}", chromium.display()))?;
        Ok(Browser {
            client,
            _driver: driver,
        })
    }

    /// Open `url` and wait until the element `css` is on the page.
    pub async fn open(&self, url: &str, css: &str) -> fantoccini::elements::Element {
        self.client.goto(url).await.unwrap();
        self.wait_for(css).await
    }

    /// The element `css`, once it is on the page.
    pub async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        match self
            .client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(e) => e,
            Err(e) => {
                let url = self.client.current_url().await.map(|u| u.to_string());
                let page = self.client.source().await.unwrap_or_default();
                panic!("no {css} on {url:?} ({e}):\n{page}");
            }
        }
    }

    /// The button whose text is `text`.
    pub async fn button(&self, text: &str) -> fantoccini::elements::Element {
        let xpath = format!("//button[normalize-space()='{text}']");
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::XPath(&xpath))
            .await
            .unwrap_or_else(|e| panic!("no button {text:?}: {e}"))
    }

    /// Log in through the form as a user would: type the key, press "Log in"; the connectors
    /// page comes up.
    pub async fn log_in(&self, base: &str, api_key: &str) {
        let field = self
            .open(&format!("{base}/console/login"), "input#api_key")
            .await;
        field.send_keys(api_key).await.unwrap();
        self.button("Log in").await.click().await.unwrap();
        self.wait_for("main h1").await;
        let at = self.client.current_url().await.unwrap();
        assert_eq!(at.path(), "/console/connectors", "after logging in");
    }

    /// Save the window as a PNG at `path` (relative: from the workspace's root).
    pub async fn screenshot(&self, path: &Path) {
        let png = self.client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let path = if path.is_relative() {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2);
            root.expect("crates/server is two levels down").join(path)
        } else {
            path.to_owned()
        };
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        eprintln!("screenshot saved to {}", path.display());
    }

    /// End the browser's session (Chromium quits), then chromedriver.
    pub async fn close(self) {
        self.client.close().await.unwrap();
    }
}

/// chromedriver on a free loopback port, in a process group of its own so the Chromium it
/// starts goes with it when the test ends (even by a panic).
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start(program: &Path) -> Result<Self, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let mut command = Command::new(program);
        command
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
        let mut driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let status = format!("{}/status", driver.url);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(exit)) = driver.child.try_wait() {
                return Err(format!("{} exited at start: {exit}", program.display()));
            }
            if reqwest::get(&status)
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(driver);
            }
            if Instant::now() > deadline {
                return Err(format!("{} did not answer on {status}", program.display()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Ok(group) = i32::try_from(self.child.id()) {
            // SAFETY: a signal to the process group this test started (chromedriver's).
            unsafe { libc::kill(-group, libc::SIGKILL) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
