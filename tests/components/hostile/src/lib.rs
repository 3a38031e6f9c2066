//! A hostile component for the sandbox tests: each export misbehaves in one way (runaway
//! loop, memory bomb, deep recursion, panic, output flood, file and environment snooping,
//! requests outside its grants or shaped to fool a proxy, an import no host provides, long sleeps,
//! oversized results, terminal escapes in its logs). `echo` and `add` behave, to
//! show the host keeps working after each failure.

use std::hint::black_box;
use std::io::Write as _;

wit_bindgen::generate!({
    path: "../../../wit/since_v0.1.0",
    inline: r#"
        package test:hostile;

        /// Something no host provides: calling it must end in `denied`.
        interface exfiltrate {
            send: func(data: string);
        }

        world hostile {
            import exfiltrate;
            import operator:core/http@0.1.0;
            import operator:core/log@0.1.0;
            use operator:core/http@0.1.0.{http-error};

            export spin: func() -> u64;
            export allocate: func(megabytes: u32) -> u32;
            export recurse: func(depth: u64) -> u64;
            export recurse-with-locals: func(depth: u64) -> u64;
            export panic: func(message: string);
            export flood-stdout: func(megabytes: u32) -> u32;
            export read-file: func(path: string) -> result<string, string>;
            export read-env: func() -> list<tuple<string, string>>;
            export fetch: func(endpoint: string, method: string, path: string) -> result<u32, http-error>;
            /// `header` is `Name: value`.
            export fetch-with-header: func(endpoint: string, path: string, header: string) -> result<u32, http-error>;
            export fetch-with-query: func(endpoint: string, path: string, megabytes: u32) -> result<u32, http-error>;
            export log-message: func(text: string);
            export sleep: func(ms: u64);
            export large-output: func(megabytes: u32) -> string;
            export log-flood: func(count: u32);
            export exfiltrate-secrets: func();
            export echo: func(text: string) -> string;
            export add: func(a: u32, b: u32) -> u32;
        }
    "#,
    generate_all,
});

use operator::core::http::{self, Method};
use operator::core::log::{self, Level};

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct Hostile;

impl Guest for Hostile {
    fn spin() -> u64 {
        let mut n: u64 = 0;
        loop {
            n = black_box(n.wrapping_add(1));
            if n == u64::MAX {
                return n;
            }
        }
    }

    fn allocate(megabytes: u32) -> u32 {
        let v = vec![1u8; (megabytes as usize) << 20];
        black_box(&v);
        (v.len() >> 20) as u32
    }

    fn recurse(depth: u64) -> u64 {
        // Plain call depth (no stack arrays, which would live in linear memory): this
        // exhausts the wasm stack itself.
        fn go(n: u64) -> u64 {
            if n == 0 { 0 } else { black_box(go(black_box(n - 1))).wrapping_add(n) }
        }
        go(depth)
    }

    fn recurse_with_locals(depth: u64) -> u64 {
        // Each frame keeps a 4 KiB array, which lives on the shadow stack in linear memory:
        // this overflows that stack (1 MiB, below address 1 MiB) into address 0xffff_xxxx.
        fn go(n: u64) -> u64 {
            let mut frame = [0u8; 4096];
            frame[(n % 4096) as usize] = n as u8;
            let frame = black_box(frame);
            if n == 0 { 0 } else { black_box(go(black_box(n - 1))).wrapping_add(u64::from(frame[0])) }
        }
        go(depth)
    }

    fn panic(message: String) {
        panic!("{message}");
    }

    fn flood_stdout(megabytes: u32) -> u32 {
        let chunk = vec![b'x'; 1 << 20];
        let mut out = std::io::stdout();
        for _ in 0..megabytes {
            out.write_all(&chunk).expect("stdout accepts writes");
        }
        out.write_all(b"\nflood done\n").expect("stdout accepts writes");
        megabytes
    }

    fn read_file(path: String) -> Result<String, String> {
        std::fs::read_to_string(&path).map_err(|e| e.to_string())
    }

    fn read_env() -> Vec<(String, String)> {
        std::env::vars().collect()
    }

    fn fetch(endpoint: String, method: String, path: String) -> Result<u32, http::HttpError> {
        let method = match method.to_ascii_uppercase().as_str() {
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "HEAD" => Method::Head,
            "PATCH" => Method::Patch,
            _ => Method::Get,
        };
        let request =
            http::Request { endpoint, method, path, query: vec![], headers: vec![], body: None, timeout_ms: None };
        http::send(&request).map(|r| r.body.len() as u32)
    }

    fn fetch_with_header(endpoint: String, path: String, header: String) -> Result<u32, http::HttpError> {
        let (name, value) = header.split_once(": ").unwrap_or((&header, ""));
        let headers = vec![http::Header { name: name.into(), value: value.into() }];
        let request =
            http::Request { endpoint, method: Method::Get, path, query: vec![], headers, body: None, timeout_ms: None };
        http::send(&request).map(|r| r.body.len() as u32)
    }

    fn fetch_with_query(endpoint: String, path: String, megabytes: u32) -> Result<u32, http::HttpError> {
        let query = vec![("q".to_string(), "x".repeat((megabytes as usize) << 20))];
        let request =
            http::Request { endpoint, method: Method::Get, path, query, headers: vec![], body: None, timeout_ms: None };
        http::send(&request).map(|r| r.body.len() as u32)
    }

    fn log_message(text: String) {
        log::log(Level::Warn, &text);
    }

    fn sleep(ms: u64) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }

    fn large_output(megabytes: u32) -> String {
        "x".repeat((megabytes as usize) << 20)
    }

    fn log_flood(count: u32) {
        for i in 0..count {
            log::log(Level::Info, &format!("message {i}"));
        }
    }

    fn exfiltrate_secrets() {
        test::hostile::exfiltrate::send("secrets");
    }

    fn echo(text: String) -> String {
        text
    }

    fn add(a: u32, b: u32) -> u32 {
        a.wrapping_add(b)
    }
}

// Only the wasm build exports (export symbol names cannot go into a native shared library).
#[cfg(target_arch = "wasm32")]
export!(Hostile);
