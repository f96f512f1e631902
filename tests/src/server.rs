//! A running `ocigate` process on 127.0.0.1, with a port chosen by the OS at run time.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use crate::http::Client;

/// A server process; killed when dropped.
pub struct Server {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<String>>,
    root: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Server {
    /// `ocigate registry serve` on a fresh temporary root.
    pub fn registry() -> Server {
        let tmp = tempfile::tempdir().expect("temp dir");
        let root = tmp.path().join("root");
        let mut s = Server::registry_at(&root, &[]);
        s._tmp = Some(tmp);
        s
    }

    /// `ocigate registry serve` on `root`, with extra flags.
    pub fn registry_at(root: &Path, extra: &[&str]) -> Server {
        let mut cmd = Command::new(crate::bin::ocigate());
        cmd.args(["registry", "serve", "--listen", "127.0.0.1:0", "--root"]).arg(root).args(extra);
        Server::spawn(cmd, root.to_path_buf())
    }

    fn spawn(mut cmd: Command, root: PathBuf) -> Server {
        cmd.env("RUST_LOG", "info").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start ocigate");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("addr=").nth(1).and_then(|a| a.split_whitespace().next())
                    && let Ok(addr) = addr.trim_matches('"').parse::<SocketAddr>()
                {
                    let _ = tx.send(addr);
                }
                let mut l = sink.lock().expect("log lock");
                l.push_str(&line);
                l.push('\n');
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("ocigate did not report its address; log:\n{}", log.lock().expect("log lock"));
            }
        };
        Server { child, addr, log, root, _tmp: None }
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `127.0.0.1:<port>`, as image references want it.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The storage root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A client for it.
    pub fn client(&self) -> Client {
        Client::new(self.url())
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits (bounded) for a clean exit; returns the exit code.
    pub fn terminate(mut self) -> Option<i32> {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        for _ in 0..100 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
