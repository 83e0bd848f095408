//! A real browser for the report's tests: Debian's chromium, headless,
//! driven by chromedriver over the W3C WebDriver protocol, spoken here
//! over a plain TcpStream with serde_json (HTTP/1.1, one request per
//! connection). A WebDriver crate would bring an async runtime and a
//! hundred crates to say the same few requests; the DevTools protocol would
//! need a WebSocket client.
//!
//! Chromium is started with the flags that keep it from reaching for the
//! network (this machine has none, and it hangs waiting otherwise) and a
//! fresh profile directory. Missing chromium or chromedriver fails the test
//! with how to install them: `.ci/run` does.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The key under which WebDriver names an element.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver and one browser session, ended on drop.
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
}

impl Browser {
    /// Starts chromedriver and a headless chromium with a fresh profile in
    /// `scratch`.
    pub fn start(scratch: &Path) -> Browser {
        let chromium = ["/usr/bin/chromium", "/usr/lib/chromium/chromium"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or_else(|| {
                panic!("no chromium: install it (Debian: apt-get install chromium chromium-driver); .ci/run does")
            });
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run chromedriver ({e}): install it (Debian: apt-get install chromium-driver); .ci/run does")
            });
        let mut browser = Browser {
            driver,
            port,
            session: String::new(),
        };
        let started = Instant::now();
        while browser.request("GET", "/status", None).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not answer on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = scratch.join("chromium-profile");
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,2400",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        }}});
        let session = browser
            .request("POST", "/session", Some(&capabilities))
            .expect("a chromium session");
        browser.session = session["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {session}"))
            .to_owned();
        browser
    }

    /// Opens `page` (a file).
    pub fn open(&self, page: &Path) {
        let url = format!("file://{}", page.canonicalize().unwrap().display());
        self.command("POST", "url", json!({ "url": url }));
    }

    /// The value of `script` (a function body: `return ...;`) in the page.
    pub fn eval(&self, script: &str) -> Value {
        self.command(
            "POST",
            "execute/sync",
            json!({"script": script, "args": []}),
        )
    }

    /// Clicks the element `css` selects, as a user would: the browser
    /// scrolls to it and clicks what is at its centre.
    pub fn click(&self, css: &str) {
        let found = self.command(
            "POST",
            "element",
            json!({"using": "css selector", "value": css}),
        );
        let id = found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {found}"));
        self.command("POST", &format!("element/{id}/click"), json!({}));
    }

    /// Saves a screenshot of the window as PNG at `path`.
    pub fn screenshot(&self, path: &Path) {
        let png = self.command("GET", "screenshot", Value::Null);
        let bytes = decode_base64(png.as_str().expect("base64 PNG"));
        std::fs::write(path, bytes).unwrap();
    }

    /// A command of the session; its `value`, panicking on an error.
    fn command(&self, method: &str, what: &str, body: Value) -> Value {
        let path = format!("/session/{}/{what}", self.session);
        let body = (method == "POST").then_some(&body);
        match self.request(method, &path, body) {
            Ok(value) => value,
            Err(e) => panic!("WebDriver {method} {what}: {e}"),
        }
    }

    /// One HTTP request to chromedriver; the response's `value`.
    fn request(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| e.to_string())?;
        let body = body.map_or(String::new(), Value::to_string);
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .map_err(|e| e.to_string())?;
        // chromedriver keeps the connection open whatever the request
        // says: the response ends where its Content-Length says.
        let mut response = Vec::new();
        let mut buffer = [0u8; 64 << 10];
        let (head, body) = loop {
            let read = stream.read(&mut buffer).map_err(|e| e.to_string())?;
            if read == 0 {
                return Err("connection closed mid-response".to_owned());
            }
            response.extend_from_slice(&buffer[..read]);
            let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|l| l.trim().parse::<usize>().ok())
                .ok_or_else(|| format!("no Content-Length in {head}"))?;
            if response.len() >= end + 4 + length {
                let body = String::from_utf8_lossy(&response[end + 4..end + 4 + length]);
                break (head, body.into_owned());
            }
        };
        let json: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
        let status_ok = head.starts_with("http/1.1 200") || head.starts_with("http/1.0 200");
        if !status_ok {
            return Err(format!("{}: {}", head.lines().next().unwrap_or(""), json));
        }
        Ok(json["value"].clone())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let path = format!("/session/{}", self.session);
            let _ = self.request("DELETE", &path, None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Standard base64 (RFC 4648), as WebDriver sends screenshots.
fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let sextets: Vec<u8> = text.bytes().filter_map(value).collect();
    let mut bytes = Vec::with_capacity(sextets.len() * 3 / 4);
    for chunk in sextets.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &s)| n | u32::from(s) << (18 - 6 * i));
        let [_, a, b, c] = n.to_be_bytes();
        bytes.extend(&[a, b, c][..chunk.len().saturating_sub(1)]);
    }
    bytes
}

#[test]
fn base64_decodes_what_it_pads() {
    assert_eq!(decode_base64("Zm9vYmFy"), b"foobar");
    assert_eq!(decode_base64("Zm8="), b"fo");
    assert_eq!(decode_base64("Zg=="), b"f");
}
