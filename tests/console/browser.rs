//! One headless Chromium, driven over WebDriver (chromedriver), and what the
//! scenarios do with it: wait for the page, read it, type, take screenshots at
//! a width, run axe-core.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// axe-core 4.14.1 (MPL-2.0, see `fixtures/axe-LICENSE.txt`), injected into
/// each page it checks.
const AXE: &str = include_str!("fixtures/axe.min.js");

/// The widths every page is looked at: a desktop and a phone.
pub const DESKTOP: (u32, u32) = (1280, 800);
pub const PHONE: (u32, u32) = (390, 844);

/// Where the browser and its driver are.
#[derive(Debug, Clone)]
pub struct Tools {
    pub chromium: PathBuf,
    pub chromedriver: PathBuf,
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

impl Tools {
    /// `CHROMIUM` / `CHROMEDRIVER`, else `chromium` / `chromedriver` on PATH.
    pub fn find() -> Option<Tools> {
        let pick = |var: &str, name: &str| {
            std::env::var_os(var)
                .map(PathBuf::from)
                .filter(|p| p.is_file())
                .or_else(|| on_path(name))
        };
        Some(Tools {
            chromium: pick("CHROMIUM", "chromium")?,
            chromedriver: pick("CHROMEDRIVER", "chromedriver")?,
        })
    }
}

/// The driver process and its one session.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    shots: PathBuf,
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Browser {
    pub async fn start(tools: &Tools, shots: &Path) -> Result<Browser> {
        let port = free_port()?;
        let mut driver = Command::new(&tools.chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting chromedriver")?;
        let profile = tempfile::tempdir()?;
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": tools.chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--lang=en-US", "--force-device-scale-factor=1",
                    format!("--user-data-dir={}", profile.path().display()),
                    format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
                ]
            }
        });
        let Value::Object(caps) = caps else {
            bail!("capabilities are an object")
        };
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(e) if started.elapsed() < Duration::from_secs(20) => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => {
                    let _ = driver.kill();
                    return Err(e).context("no WebDriver session");
                }
            }
        };
        std::fs::create_dir_all(shots)?;
        Ok(Browser {
            client,
            driver,
            _profile: profile,
            shots: shots.to_owned(),
        })
    }

    pub async fn stop(self) {
        let Browser {
            client, mut driver, ..
        } = self;
        let _ = client.close().await;
        let _ = driver.kill();
        let _ = driver.wait();
    }

    pub async fn goto(&self, url: &str) -> Result<()> {
        self.client.goto(url).await?;
        Ok(())
    }

    /// The first element matching `css`, waiting up to 10 s for it.
    pub async fn find(&self, css: &str) -> Result<Element> {
        self.wait_for(css, Duration::from_secs(10)).await
    }

    pub async fn wait_for(&self, css: &str, timeout: Duration) -> Result<Element> {
        let until = Instant::now() + timeout;
        loop {
            if let Ok(e) = self.client.find(Locator::Css(css)).await {
                return Ok(e);
            }
            if Instant::now() > until {
                bail!("no element {css} on {}", self.url().await);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the text of `css` contains `text`; returns the text.
    pub async fn wait_text(&self, css: &str, text: &str, timeout: Duration) -> Result<String> {
        let until = Instant::now() + timeout;
        loop {
            let now = match self.client.find(Locator::Css(css)).await {
                Ok(e) => e.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if now.contains(text) {
                return Ok(now);
            }
            if Instant::now() > until {
                bail!(
                    "{css} never said {text:?}; it says {now:?} on {}",
                    self.url().await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `script` (an expression) is truthy.
    pub async fn wait_until(&self, script: &str, timeout: Duration) -> Result<()> {
        let until = Instant::now() + timeout;
        loop {
            let v = self
                .js(&format!("return Boolean({script});"), vec![])
                .await?;
            if v == json!(true) {
                return Ok(());
            }
            if Instant::now() > until {
                bail!("never true: {script} on {}", self.url().await);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn js(&self, script: &str, args: Vec<Value>) -> Result<Value> {
        Ok(self.client.execute(script, args).await?)
    }

    pub async fn url(&self) -> String {
        self.client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default()
    }

    /// Whether `css` is rendered (present and not hidden).
    pub async fn visible(&self, css: &str) -> Result<bool> {
        match self.client.find(Locator::Css(css)).await {
            Ok(e) => Ok(e.is_displayed().await?),
            Err(_) => Ok(false),
        }
    }

    pub async fn type_into(&self, css: &str, text: &str) -> Result<()> {
        let e = self.interactable(css).await?;
        e.clear().await?;
        e.send_keys(text).await?;
        Ok(())
    }

    pub async fn click(&self, css: &str) -> Result<()> {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            // A page that has just rendered an element may still be showing it
            // (a dialog opening, a form revealed after a fetch): a click that lands
            // before it can take input is tried again, as a person would.
            match self.interactable(css).await?.click().await {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() < until && retryable(&e) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The first element matching `css` once it is displayed and enabled,
    /// waiting up to 10 s.
    async fn interactable(&self, css: &str) -> Result<Element> {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let e = self.find(css).await?;
            if e.is_displayed().await.unwrap_or(false) && e.is_enabled().await.unwrap_or(false) {
                return Ok(e);
            }
            if Instant::now() > until {
                bail!(
                    "{css} never became visible and enabled on {}",
                    self.url().await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Resizes the window so the viewport is `width` x `height`.
    pub async fn viewport(&self, (width, height): (u32, u32)) -> Result<()> {
        self.client.set_window_size(width, height).await?;
        // Headless windows have no frame, but make sure of it.
        let inner = self
            .js("return [window.innerWidth, window.innerHeight];", vec![])
            .await?;
        let (w, h) = (
            inner[0].as_u64().unwrap_or(0) as u32,
            inner[1].as_u64().unwrap_or(0) as u32,
        );
        if (w, h) != (width, height) && w > 0 {
            self.client
                .set_window_size(2 * width - w, 2 * height - h)
                .await?;
        }
        Ok(())
    }

    /// A screenshot of the whole page (the window made as tall as the page) at
    /// `size`'s width, saved as `<name>.png`; the window is back at `size` after.
    pub async fn screenshot(&self, name: &str, size: (u32, u32)) -> Result<PathBuf> {
        self.viewport(size).await?;
        let height = self
            .js(
                "return Math.max(document.documentElement.scrollHeight, document.body.scrollHeight);",
                vec![],
            )
            .await?
            .as_u64()
            .unwrap_or(u64::from(size.1)) as u32;
        let tall = height.clamp(size.1, 4000);
        if tall > size.1 {
            self.viewport((size.0, tall)).await?;
        }
        let png = self.client.screenshot().await?;
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png)?;
        self.viewport(size).await?;
        Ok(path)
    }

    /// axe-core's violations on the current page (WCAG 2.1 A and AA, and best
    /// practices), one line each.
    pub async fn axe(&self) -> Result<Vec<String>> {
        let loaded = self
            .js("return typeof window.axe === 'object';", vec![])
            .await?;
        if loaded != json!(true) {
            self.js(&format!("{AXE}\n;return true;"), vec![]).await?;
        }
        let found = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, {runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']})
                   .then(r => done(r.violations.map(v =>
                     `${v.id} (${v.impact}): ${v.help} at ${v.nodes.slice(0, 4).map(n => n.target.join(' ')).join(', ')}`)))
                   .catch(e => done(['axe failed: ' + e]));",
                vec![],
            )
            .await?;
        Ok(found
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Screenshots at both widths and axe at both; returns the violations.
    pub async fn look(&self, name: &str) -> Result<Vec<String>> {
        let mut problems = Vec::new();
        for (size, label) in [(DESKTOP, "desktop"), (PHONE, "phone")] {
            self.screenshot(&format!("{name}-{label}"), size).await?;
            for v in self.axe().await? {
                problems.push(format!("{name} at {label} width: {v}"));
            }
        }
        self.viewport(DESKTOP).await?;
        Ok(problems)
    }

    /// Keeps the API key in the tab, as the sign-in page does (`origin` loaded).
    pub async fn use_key(&self, origin: &str, key: Option<&str>) -> Result<()> {
        self.goto(&format!("{origin}/console/sign-in")).await?;
        match key {
            Some(k) => {
                self.js(
                    "sessionStorage.setItem('ivr-gateway.api-key', arguments[0]);",
                    vec![json!(k)],
                )
                .await?
            }
            None => self.js("sessionStorage.clear();", vec![]).await?,
        };
        Ok(())
    }
}

/// A WebDriver error that a moment later may not happen: the element was not yet
/// interactable, was covered by another, or was replaced by a re-render.
fn retryable(e: &fantoccini::error::CmdError) -> bool {
    let text = e.to_string();
    ["not interactable", "click intercepted", "stale element"]
        .iter()
        .any(|s| text.contains(s))
}
