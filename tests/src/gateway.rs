//! A running `ocigate serve` on 127.0.0.1: the test writes the configuration (listeners on port 0, so the
//! system picks free ports) and the gateway's log says which ports it got.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::http::Client;

/// Standard base64 of a string (for Basic credentials in tests).
pub fn base64(s: &str) -> String {
    base64_bytes(s.as_bytes())
}

/// Standard base64, padded.
pub fn base64_bytes(b: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &x)| acc | (u32::from(x) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(T[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// An htpasswd line for `user` (bcrypt, low cost to keep tests fast), made by `ocigate htpasswd`.
pub fn htpasswd_line(user: &str, password: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(crate::bin::ocigate())
        .args(["htpasswd", "--cost", "4", user])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run ocigate htpasswd");
    child.stdin.take().expect("stdin").write_all(format!("{password}\n").as_bytes()).expect("write password");
    let out = child.wait_with_output().expect("ocigate htpasswd");
    assert!(out.status.success(), "ocigate htpasswd failed");
    String::from_utf8(out.stdout).expect("utf-8").trim().to_owned()
}

/// A gateway process; killed when dropped.
pub struct Gateway {
    child: Option<Child>,
    addrs: Vec<SocketAddr>,
    admin: Option<SocketAddr>,
    stderr: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
    dir: PathBuf,
}

impl Gateway {
    /// Writes `config` to `<dir>/config.yaml` (files it names are relative to `dir`) and starts
    /// `ocigate serve` on it; returns once every listener accepts connections.
    pub fn start(dir: &Path, config: &str) -> Gateway {
        match Gateway::try_start(dir, config) {
            Ok(g) => g,
            Err(log) => panic!("ocigate serve did not start; log:\n{log}"),
        }
    }

    /// Like [`Gateway::start`], but returns the log when the gateway exits or does not come up.
    pub fn try_start(dir: &Path, config: &str) -> Result<Gateway, String> {
        let path = dir.join("config.yaml");
        std::fs::write(&path, config).expect("write config");
        let mut child = Command::new(crate::bin::ocigate())
            .args(["serve", "--config"])
            .arg(&path)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ocigate serve");
        let stderr = Arc::new(Mutex::new(String::new()));
        let stdout = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel::<Option<(bool, SocketAddr)>>();
        {
            let pipe = child.stderr.take().expect("stderr");
            let sink = stderr.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let addr = |key: &str| {
                        line.split(key)
                            .nth(1)
                            .and_then(|a| a.split_whitespace().next())
                            .and_then(|a| a.parse().ok())
                    };
                    if line.contains("admin listening")
                        && let Some(a) = addr("admin=")
                    {
                        let _ = tx.send(Some((true, a)));
                    } else if line.contains(" listening")
                        && let Some(a) = addr("addr=")
                    {
                        let _ = tx.send(Some((false, a)));
                    }
                    if line.contains("ocigate serving") {
                        let _ = tx.send(None);
                    }
                    let mut l = sink.lock().expect("log lock");
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        {
            let pipe = child.stdout.take().expect("stdout");
            let sink = stdout.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut l = sink.lock().expect("log lock");
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        let mut g = Gateway {
            child: Some(child),
            addrs: Vec::new(),
            admin: None,
            stderr,
            stdout,
            dir: dir.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(Some((true, a))) => g.admin = Some(a),
                Ok(Some((false, a))) => g.addrs.push(a),
                Ok(None) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if g.exited() || Instant::now() > deadline {
                        return Err(g.stop_with_log());
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err(g.stop_with_log()),
            }
        }
        // Pingora binds its listeners as its services start, just after the line above.
        let all: Vec<SocketAddr> = g.addrs.iter().chain(g.admin.iter()).copied().collect();
        for a in &all {
            while std::net::TcpStream::connect_timeout(a, Duration::from_millis(200)).is_err() {
                if g.exited() || Instant::now() > deadline {
                    return Err(g.stop_with_log());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(g)
    }

    fn exited(&mut self) -> bool {
        self.child.as_mut().is_none_or(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    fn stop_with_log(&mut self) -> String {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        std::thread::sleep(Duration::from_millis(100));
        self.log()
    }

    /// The `i`-th client listener.
    pub fn addr(&self, i: usize) -> SocketAddr {
        self.addrs[i]
    }

    /// `http://<first listener>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addrs[0])
    }

    /// `127.0.0.1:<port>` of the first listener, as image references want it.
    pub fn host(&self) -> String {
        self.addrs[0].to_string()
    }

    /// A plain HTTP client for the first listener.
    pub fn client(&self) -> Client {
        Client::new(self.url())
    }

    /// A client for the admin listener.
    pub fn admin(&self) -> Client {
        Client::new(format!("http://{}", self.admin.expect("an admin listener is configured")))
    }

    /// The configuration folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Everything the gateway logged on stderr so far.
    pub fn log(&self) -> String {
        self.stderr.lock().expect("log lock").clone()
    }

    /// Decision log lines (stdout) so far, parsed.
    pub fn decisions(&self) -> Vec<Value> {
        let text = self.stdout.lock().expect("log lock").clone();
        text.lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("decision line is not JSON ({e}): {l}"))
            })
            .collect()
    }

    /// Waits (bounded) for a decision line matching `pred`.
    pub fn wait_decision(&self, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(d) = self.decisions().into_iter().find(&pred) {
                return d;
            }
            assert!(Instant::now() < deadline, "no matching decision line; got:\n{:#?}", self.decisions());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (bounded) until at least `n` decision lines match `pred` (the log is written in batches), and
    /// returns them.
    pub fn wait_decisions(&self, n: usize, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found: Vec<Value> = self.decisions().into_iter().filter(&pred).collect();
            if found.len() >= n {
                return found;
            }
            assert!(Instant::now() < deadline, "only {} of {n} matching decision lines", found.len());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (bounded) until the log contains `text`.
    pub fn wait_log(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !self.log().contains(text) {
            assert!(Instant::now() < deadline, "the log never said {text:?}; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Sends a signal (`HUP`, `TERM`...).
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill").arg(format!("-{sig}")).arg(self.pid().to_string()).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{sig} failed");
    }

    /// Waits (bounded by `within`) for the process to exit; returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A free port on 127.0.0.1 right now (for processes that cannot take port 0).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// `docker-registry` (CNCF distribution, Debian's package) on a free loopback port, storing under a
/// temporary folder. Killed when dropped.
pub struct Distribution {
    child: Child,
    addr: SocketAddr,
    root: PathBuf,
    log: Arc<Mutex<String>>,
    _tmp: tempfile::TempDir,
}

impl Distribution {
    /// Starts it with `auth` as the `auth:` section of its configuration (YAML, indented by two), or none.
    pub fn start(auth: Option<&str>) -> Distribution {
        Distribution::start_on(free_port(), auth)
    }

    /// Starts it on a given port (to restart it where a gateway expects it).
    pub fn start_on(port: u16, auth: Option<&str>) -> Distribution {
        let tmp = tempfile::tempdir().expect("temp dir");
        let root = tmp.path().join("storage");
        std::fs::create_dir_all(&root).expect("storage dir");
        Distribution::start_with(tmp, root, port, auth)
    }

    fn start_with(tmp: tempfile::TempDir, root: PathBuf, port: u16, auth: Option<&str>) -> Distribution {
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{}",
            root.display(),
            auth.map(|a| format!("auth:\n{a}\n")).unwrap_or_default()
        );
        let config_path = tmp.path().join("config.yml");
        std::fs::write(&config_path, config).expect("write distribution config");
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start docker-registry");
        let log = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().expect("stderr");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut l = sink.lock().expect("log lock");
                l.push_str(&line);
                l.push('\n');
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if matches!(child.try_wait(), Ok(Some(_))) || Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("docker-registry did not start; log:\n{}", log.lock().expect("log lock"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Distribution { child, addr, root, log, _tmp: tmp }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Its storage folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Its log (access log included).
    pub fn log(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    /// Requests it received whose access log line mentions `needle`.
    pub fn requests_mentioning(&self, needle: &str) -> usize {
        self.log()
            .lines()
            .filter(|l| {
                l.contains("\"GET ")
                    || l.contains("\"PUT ")
                    || l.contains("\"POST ")
                    || l.contains("\"PATCH ")
                    || l.contains("\"HEAD ")
                    || l.contains("\"DELETE ")
            })
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Stops it.
    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
