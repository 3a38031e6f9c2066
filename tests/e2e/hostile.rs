//! The hostile-component suite: every way a component can misbehave ends with its named error,
//! in bounded time, and the host carries on.

use std::time::Duration;

use operator_host::capability::http::HttpGrants;
use operator_host::dynamic;
use operator_host::limits::Limits;
use operator_host::{Budget, CallError, Policy, Runtime, RuntimeOptions};
use url::Url;

use crate::harness::{Behaviour, hostile, http_server, manifest, operator, python_test_component, run};

fn call(args: &[&str]) -> crate::harness::Run {
    let h = hostile();
    let mut cmd = operator();
    cmd.arg("call").arg(&h).args(args);
    run(&mut cmd)
}

#[test]
fn a_runaway_loop_ends_with_deadline_exceeded_on_guest_time() {
    call(&["spin", "--deadline", "1s"])
        .expect_code(1)
        .stderr_has("error: deadline-exceeded: the component ran for 1.")
        .stderr_has("of guest time; the deadline is 1s");
}

#[test]
fn a_memory_bomb_ends_with_memory_exceeded() {
    call(&["allocate", "1000", "--memory", "64MiB"])
        .expect_code(1)
        .stderr_has("error: memory-exceeded: the component asked for 1001.1MiB of linear memory; the limit is 64MiB");
}

#[test]
fn a_stack_overflow_is_a_named_trap() {
    call(&["recurse", "100000000"]).expect_code(1).stderr_has("error: trap: stack overflow");
}

#[test]
fn a_stack_overflow_in_linear_memory_is_named_not_an_out_of_bounds_access() {
    call(&["recurse-with-locals", "100000"])
        .expect_code(1)
        .stderr_has("error: trap: stack overflow: the component's stack in linear memory grew past its end");
}

#[test]
fn a_panic_message_reaches_the_user() {
    call(&["panic", "the cluster is on fire"])
        .expect_code(1)
        .stderr_has("error: trap: wasm `unreachable` executed (the component panicked or aborted)")
        .stderr_has("panicked at")
        .stderr_has("the cluster is on fire");
}

#[test]
fn a_stdout_flood_is_cut_not_fatal() {
    call(&["flood-stdout", "100"])
        .expect_code(0)
        .stdout_has("100")
        .stderr_has("output-too-large: hostile wrote 100.0MiB to stdout");
}

#[test]
fn files_and_environment_variables_are_invisible() {
    call(&["read-file", "/etc/passwd"]).expect_code(1).stdout_has("err(").stdout_has("No such file or directory");
    call(&["read-file", "."]).expect_code(1).stdout_has("err(");
    let r = call(&["read-env", "--output", "json"]);
    r.expect_code(0);
    assert_eq!(r.stdout.trim(), "[]", "the guest saw environment variables: {}", r.stdout);
}

#[test]
fn an_import_the_host_does_not_provide_is_denied() {
    call(&["exfiltrate-secrets"]).expect_code(1).stderr_has(
        "error: denied: the component called `test:hostile/exfiltrate#send`, which this host does not provide",
    );
}

#[test]
fn a_request_to_an_endpoint_not_granted_is_denied_with_a_hint() {
    call(&["fetch", "pd", "GET", "/pd/api/v1/stores"])
        .expect_code(1)
        .stdout_has("err(denied(")
        .stderr_has("denied: endpoint `pd` is not granted")
        .stderr_has("hint: pass --endpoint pd=URL");
}

#[test]
fn a_method_or_path_not_granted_is_denied_naming_the_manifest_line() {
    let addr = http_server(Behaviour::Ok("{}"));
    let (_dir, path) = manifest(&format!(
        "[endpoints.pd]\nurl = \"http://{addr}\"\nallow = [\n  {{ methods = [\"GET\"], paths = [\"/pd/api/v1/stores\"] }},\n]\n"
    ));
    let path = path.to_string_lossy().to_string();
    call(&["fetch", "pd", "GET", "/pd/api/v1/stores", "--manifest", &path]).expect_code(0).stdout_has("ok(2)");
    call(&["fetch", "pd", "POST", "/pd/api/v1/stores", "--manifest", &path])
        .expect_code(1)
        .stderr_has("denied: POST is not granted on `/pd/api/v1/stores` of endpoint `pd`")
        .stderr_has(&format!(
            "add {{ methods = [\"POST\"], paths = [\"/pd/api/v1/stores\"] }} to endpoints.pd.allow in {path}:3"
        ));
    call(&["fetch", "pd", "GET", "/pd/api/v1/config", "--manifest", &path])
        .expect_code(1)
        .stderr_has("denied: path `/pd/api/v1/config` of endpoint `pd` is not granted");
    for trick in [
        "/pd/api/v1/stores/../config",
        "/pd/api/v1/stores/%2e%2e/config",
        "//evil.example/pd/api/v1/stores",
        "http://evil.example/pd/api/v1/stores",
        "/pd/api/v1/stores/..;/config",
    ] {
        call(&["fetch", "pd", "GET", trick, "--manifest", &path]).expect_code(1).stdout_has("err(invalid-request(");
    }
    // A GET-only grant cannot become a DELETE, or another path, behind a proxy that honours
    // method-override or routing headers.
    for (name, value) in [
        ("X-HTTP-Method-Override", "DELETE"),
        ("X-Original-URL", "/pd/api/v1/config"),
        ("X-Rewrite-URL", "/pd/api/v1/config"),
        ("X-Forwarded-Host", "internal"),
        ("Forwarded", "for=127.0.0.1"),
    ] {
        call(&["fetch-with-header", "pd", "/pd/api/v1/stores", &format!("{name}: {value}"), "--manifest", &path])
            .expect_code(1)
            .stdout_has("err(invalid-request(")
            .stdout_has("is set by the host");
    }
    // A 50 MiB query parameter is refused before any URL is built.
    call(&["fetch-with-query", "pd", "/pd/api/v1/stores", "50", "--manifest", &path])
        .expect_code(1)
        .stdout_has("err(invalid-request(")
        .stdout_has("at most 256 and 16384 are sent");
}

#[test]
fn a_components_log_cannot_drive_the_terminal() {
    let r = call(&["log-message", "\u{1b}[2K\rall good\u{9b}31m\u{202e}"]);
    r.expect_code(0).stderr_has("\\x1b[2K\\x0dall good\\u{9b}31m\\u{202e}");
    assert!(!r.stderr.contains('\u{1b}') && !r.stderr.contains('\u{9b}'), "{}", r.stderr);
    // Nor can a name it makes up, shown in a denial and in debug logs.
    let r = run(operator().arg("-vv").arg("call").arg(hostile()).args([
        "fetch",
        "ok\rFAKE\u{202e}\u{1b}[31m",
        "GET",
        "/x",
    ]));
    r.expect_code(1).stderr_has("endpoint `ok\\x0dFAKE\\u{202e}\\x1b[31m` is not granted");
    for raw in ['\r', '\u{202e}', '\u{1b}'] {
        assert!(!r.stderr.contains(raw) && !r.stdout.contains(raw), "{raw:?} reached the terminal:\n{}", r.stderr);
    }
}

#[test]
fn a_granted_server_that_never_answers_exhausts_host_time() {
    let addr = http_server(Behaviour::Silent);
    let endpoint = format!("pd=http://{addr}");
    call(&["fetch", "pd", "GET", "/", "--endpoint", &endpoint, "--host-time", "1s"])
        .expect_code(1)
        .stderr_has("error: deadline-exceeded: the component spent 1")
        .stderr_has("waiting in host calls; the host-time budget is 1s");
}

#[test]
fn a_gigabyte_response_is_refused_as_too_large() {
    for behaviour in [Behaviour::GigabyteWithLength, Behaviour::GigabyteChunked] {
        let addr = http_server(behaviour);
        let endpoint = format!("pd=http://{addr}");
        call(&["fetch", "pd", "GET", "/", "--endpoint", &endpoint, "--response-limit", "16MiB"])
            .expect_code(1)
            .stdout_has("err(too-large(16777216))");
    }
}

#[test]
fn a_guest_sleeping_in_wasi_is_stopped_when_host_time_runs_out() {
    // Waiting in WASI is waiting, not computing: it counts as host time.
    call(&["sleep", "600000", "--host-time", "500ms"])
        .expect_code(1)
        .stderr_has("error: deadline-exceeded: the component spent")
        .stderr_has("waiting in host calls; the host-time budget is 500ms");
}

#[test]
fn an_oversized_result_is_output_too_large() {
    call(&["large-output", "20"])
        .expect_code(1)
        .stderr_has("error: output-too-large: the result is 20.0MiB long; the limit is 16MiB");
}

#[test]
fn a_log_flood_is_capped() {
    call(&["log-flood", "5000"]).expect_code(0).stderr_has("messages were dropped");
}

/// The same process runs every hostile call, then a well-behaved one, normally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_survives_every_hostile_call_and_then_serves_a_normal_one() {
    let silent = http_server(Behaviour::Silent);
    let huge = http_server(Behaviour::GigabyteChunked);
    let cache = tempfile::tempdir().expect("tempdir");
    let runtime =
        Runtime::new(RuntimeOptions { cache_dir: Some(cache.path().into()), ..Default::default() }).expect("runtime");
    let bytes = std::fs::read(hostile()).expect("read hostile.wasm");
    let component = runtime.load("hostile", &bytes).expect("load");
    let funcs = dynamic::exported_functions(&runtime, &component);

    let mut http = HttpGrants::default();
    http.override_url("silent", Url::parse(&format!("http://{silent}")).expect("url"));
    http.override_url("huge", Url::parse(&format!("http://{huge}")).expect("url"));
    // Host time covers every host call, stdout writes included: leave room for a 50 MB flood
    // on a loaded machine.
    let limits = Limits {
        deadline: Duration::from_millis(500),
        host_time: Duration::from_secs(3),
        memory: 64 << 20,
        response_size: 1 << 20,
        ..Limits::default()
    };
    let policy = Policy { http, limits, ..Policy::default() };

    let attempt = |name: &'static str, args: &'static [&'static str]| {
        let func = dynamic::find_function(&funcs, name).expect("export").clone();
        let values = dynamic::parse_args(&func, &args.iter().map(|a| a.to_string()).collect::<Vec<_>>()).expect("args");
        let (runtime, component, policy) = (&runtime, &component, &policy);
        async move { dynamic::call(runtime, component, policy, &func, values).await }
    };

    let e = attempt("spin", &[]).await.expect_err("spin").error;
    assert!(matches!(e, CallError::DeadlineExceeded { budget: Budget::Guest, .. }), "{e}");
    let e = attempt("allocate", &["1000"]).await.expect_err("allocate").error;
    assert!(matches!(e, CallError::MemoryExceeded { .. }), "{e}");
    let e = attempt("recurse", &["100000000"]).await.expect_err("recurse").error;
    assert!(matches!(&e, CallError::Trap { message, .. } if message.contains("stack overflow")), "{e}");
    let e = attempt("panic", &["\"oops\""]).await.expect_err("panic").error;
    assert!(matches!(&e, CallError::Trap { stderr_tail, .. } if stderr_tail.contains("oops")), "{e}");
    let e = attempt("exfiltrate-secrets", &[]).await.expect_err("exfiltrate").error;
    assert!(matches!(e, CallError::Denied { .. }), "{e}");
    let e = attempt("fetch", &["silent", "GET", "/"]).await.expect_err("silent server").error;
    assert!(matches!(e, CallError::DeadlineExceeded { budget: Budget::Host, .. }), "{e}");
    let e = attempt("sleep", &["600000"]).await.expect_err("sleep").error;
    assert!(matches!(e, CallError::DeadlineExceeded { budget: Budget::Host, .. }), "{e}");

    let flood = attempt("flood-stdout", &["50"]).await.expect("a flood is cut, not fatal");
    assert_eq!(flood.report.stdout.total, (50 << 20) + "\nflood done\n".len() as u64);
    assert!(flood.report.stdout.text.ends_with("flood done\n"));
    let huge = attempt("fetch", &["huge", "GET", "/"]).await.expect("the guest gets an error value");
    assert!(dynamic::to_wave(&huge.value.0[0]).contains("too-large(1048576)"), "{:?}", huge.value);
    let denied = attempt("fetch", &["pd", "GET", "/"]).await.expect("the guest gets an error value");
    assert_eq!(denied.report.denials.len(), 1);

    let ok = attempt("echo", &["still here"]).await.expect("a normal call works after all that");
    assert_eq!(dynamic::to_wave(&ok.value.0[0]), "\"still here\"");
}

/// A Python component (componentize-py, carrying its interpreter and WASI imports) is held by
/// exactly the same sandbox: no files, no environment, no sockets, the same deadline and memory
/// cap, and an uncaught exception reaches the user with its traceback.
#[test]
fn a_python_component_is_contained_like_any_other() {
    let component = python_test_component("hostile-python");
    let py = |args: &[&str]| run(operator().arg("call").arg(&component).args(args));
    py(&["read-file", "/etc/passwd"]).expect_code(1).stdout_has("FileNotFoundError");
    let env = py(&["environment"]);
    env.expect_code(0);
    assert_eq!(env.stdout.trim(), "[]", "the environment is empty");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port().to_string();
    py(&["connect", "127.0.0.1", &port]).expect_code(1).stdout_has("PermissionError");
    py(&["spin", "--deadline", "1s"])
        .expect_code(1)
        .stderr_has("error: deadline-exceeded: the component ran for 1.")
        .stderr_has("of guest time");
    py(&["bomb", "--memory", "128MiB"])
        .expect_code(1)
        .stderr_has("error: memory-exceeded")
        .stderr_has("the limit is 128MiB");
    py(&["fail", "boom from python"])
        .expect_code(1)
        .stderr_has("error: trap:")
        .stderr_has("RuntimeError: boom from python")
        .stderr_has("Traceback");
    py(&["add", "2", "3"]).expect_code(0).stdout_has("5");
}
