//! Shared helpers: building the test components from source, running the real `operator`
//! binary, and small local HTTP servers that misbehave on purpose.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).expect("runtime/cli/ lies in the workspace").to_path_buf()
}

pub fn target_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is <target>/tmp.
    Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("target dir").to_path_buf()
}

/// Builds the test components under `tests/components/` for wasm32-wasip2 (once per test
/// process, with the one component builder) and returns the path of `package`'s `.wasm`.
pub fn test_component(package: &str) -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let dirs = std::fs::read_dir(root().join("tests").join("components")).map_err(|e| e.to_string())?;
        let packages: Vec<_> =
            dirs.flatten().filter(|d| d.path().join("Cargo.toml").is_file()).map(|d| d.file_name()).collect();
        operator_builder::build_rust(&root(), &target_dir(), &packages, false).map_err(|e| e.to_string())
    });
    if let Err(e) = built {
        panic!("building the test components failed:\n{e}");
    }
    operator_builder::rust_output(&target_dir(), package)
}

/// The hostile test component.
pub fn hostile() -> PathBuf {
    test_component("hostile")
}

/// A compile cache shared by the tests of this process (so most runs hit it).
pub fn shared_cache() -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("tempdir")).path().to_path_buf()
}

/// `operator` with an isolated environment: a private cache, no user component or subject
/// directories, plain output.
pub fn operator() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_operator"));
    cmd.env("OPERATOR_CACHE_DIR", shared_cache())
        .env_remove("OPERATOR_COMPONENTS_DIR")
        .env_remove("OPERATOR_SUBJECTS_DIR")
        .env_remove("OPERATOR_LOG")
        .env_remove("OPERATOR_PERFMAP")
        .env("XDG_DATA_HOME", shared_cache().join("data"))
        .env("XDG_CONFIG_HOME", shared_cache().join("config"));
    cmd
}

/// The outcome of a run, with helpers for assertions.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts the exit code, showing the output when it differs.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "unexpected exit code\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }

    /// Asserts stderr contains `needle`.
    pub fn stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Asserts stdout contains `needle`.
    pub fn stdout_has(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Runs a command to completion; a run that hangs for two minutes fails the test (a liveness
/// guard, not a speed assertion).
pub fn run(cmd: &mut Command) -> Run {
    let child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn operator");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out: Output = match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(out) => out.expect("wait for operator"),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("operator did not finish within 120 s: {cmd:?}");
        }
    };
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// How a test HTTP server answers.
#[derive(Clone, Copy)]
pub enum Behaviour {
    /// A fixed response.
    Ok(&'static str),
    /// A fixed status and body.
    Status(u16, &'static str),
    /// Accepts, reads the request, and never answers.
    Silent,
    /// Announces a 1 GiB body with Content-Length and starts sending it.
    GigabyteWithLength,
    /// Streams a 1 GiB body chunked, with no length announced.
    GigabyteChunked,
}

/// Starts a loopback HTTP server in a thread; returns its address.
pub fn http_server(behaviour: Behaviour) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve(stream, behaviour));
        }
    });
    addr
}

fn serve(mut stream: TcpStream, behaviour: Behaviour) {
    let mut buf = [0u8; 8192];
    let _ = stream.read(&mut buf);
    let chunk = vec![b'0'; 1 << 20];
    match behaviour {
        Behaviour::Ok(body) => {
            let _ =
                write!(stream, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        }
        Behaviour::Status(code, body) => {
            let _ = write!(
                stream,
                "HTTP/1.1 {code} Whatever\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
        Behaviour::Silent => std::thread::sleep(Duration::from_secs(600)),
        Behaviour::GigabyteWithLength => {
            let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", 1u64 << 30);
            for _ in 0..1024 {
                if stream.write_all(&chunk).is_err() {
                    return;
                }
            }
        }
        Behaviour::GigabyteChunked => {
            let _ = write!(stream, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
            for _ in 0..1024 {
                if write!(stream, "{:x}\r\n", chunk.len()).is_err()
                    || stream.write_all(&chunk).is_err()
                    || stream.write_all(b"\r\n").is_err()
                {
                    return;
                }
            }
            let _ = stream.write_all(b"0\r\n\r\n");
        }
    }
}

/// Writes a grant manifest into a fresh directory and returns (dir, manifest path).
pub fn manifest(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("operator.toml");
    std::fs::write(&path, text).expect("write manifest");
    (dir, path)
}

/// An in-process TiKV simulator on ephemeral loopback ports, with its own async runtime.
pub struct Sim {
    pub sim: tikv_simulator::Simulator,
    _runtime: tokio::runtime::Runtime,
}

impl Sim {
    /// Starts a simulator with `config` (PD and Prometheus on separate ports).
    pub fn start(config: tikv_simulator::Config) -> Sim {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
        let loopback: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let sim = runtime
            .block_on(tikv_simulator::Simulator::start(config, loopback, Some(loopback)))
            .expect("start simulator");
        Sim { sim, _runtime: runtime }
    }

    /// `--endpoint` flags pointing the tikv subject at this simulator.
    pub fn endpoints(&self) -> Vec<String> {
        vec![
            "--endpoint".into(),
            format!("pd=http://{}", self.sim.pd),
            "--endpoint".into(),
            format!("prometheus=http://{}", self.sim.prometheus),
        ]
    }

    /// Runs `operator subject tikv <args> --output json` against the simulator.
    pub fn subject_json(&self, args: &[&str]) -> serde_json::Value {
        let r = run(operator().args(["subject", "tikv"]).args(args).args(["--output", "json"]).args(self.endpoints()));
        r.expect_code(0);
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", r.stdout))
    }
}

/// A plain GET over loopback, for checking a server directly.
pub fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

/// Builds the Python etcd adapter (`components/etcd/build`, once per test process) into the
/// `<target>/components` folder where `operator` finds components by name, and compiles it into
/// the shared cache once, so that tests running side by side do not all compile it at once.
pub fn etcd_component() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        // The build compiles the component into the cache the tests' `operator` uses.
        let out = Command::new(root().join("components/etcd/build"))
            .env("CARGO_TARGET_DIR", target_dir())
            .env("OPERATOR", env!("CARGO_BIN_EXE_operator"))
            .env("OPERATOR_CACHE_DIR", shared_cache())
            .output()
            .map_err(|e| format!("cannot run components/etcd/build: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        let warm = run(operator().args(["call", "etcd", "describe"]));
        if warm.code != 0 { Err(format!("operator call etcd describe failed:\n{}", warm.stderr)) } else { Ok(()) }
    });
    if let Err(e) = built {
        panic!("building the etcd component failed:\n{e}");
    }
}

/// Builds the Python policy `evict-leader` (`components/evict-leader/build`, once per test
/// process) into `<target>/components`, where `operator run --policy evict-leader` finds it, and
/// compiles it into the shared cache.
pub fn evict_leader_component() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let out = Command::new(root().join("components/evict-leader/build"))
            .env("CARGO_TARGET_DIR", target_dir())
            .env("OPERATOR", env!("CARGO_BIN_EXE_operator"))
            .env("OPERATOR_CACHE_DIR", shared_cache())
            .output()
            .map_err(|e| format!("cannot run components/evict-leader/build: {e}"))?;
        if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).into_owned()) }
    });
    if let Err(e) = built {
        panic!("building the evict-leader policy failed:\n{e}");
    }
}

/// Builds the Python test component `tests/components/<name>` (its `wit/` and `app.py`) with
/// componentize-py, once per test process, and returns its path.
pub fn python_test_component(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let out = target_dir().join("wasm-python").join(format!("{name}.wasm"));
    let src = root().join("tests").join("components").join(name);
    let built = BUILT.get_or_init(|| {
        operator_builder::build_python(&root(), &target_dir(), &src.join("wit"), name, &src, &out)
            .map_err(|e| e.to_string())
    });
    if let Err(e) = built {
        panic!("building the Python test component {name} failed:\n{e}");
    }
    out
}

/// The folder holding Debian's etcd, etcdctl and prometheus binaries (`usr/bin`), fetched once.
pub fn etcd_binaries() -> PathBuf {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let out = Command::new(root().join("subjects/etcd/fetch-binaries"))
            .output()
            .map_err(|e| format!("cannot run subjects/etcd/fetch-binaries: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("usr").join("bin"))
    });
    match dir {
        Ok(d) => d.clone(),
        Err(e) => panic!("fetching the etcd binaries failed:\n{e}"),
    }
}

/// `n` distinct free loopback ports (bound together, then released).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n).map(|_| TcpListener::bind("127.0.0.1:0").expect("bind")).collect();
    listeners.iter().map(|l| l.local_addr().expect("addr").port()).collect()
}

/// A POST with a JSON body over loopback; returns (status, body).
pub fn http_post(port: u16, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// A component that `components/<name>/build` put in `<target>/components`.
#[allow(dead_code)] // used by the benches
pub fn built_component(name: &str) -> PathBuf {
    target_dir().join("components").join(format!("{name}.wasm"))
}
