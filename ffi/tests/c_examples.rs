//! The C examples, built with `-Wall -Wextra -Werror -pedantic` against the library
//! this test run built (shared and static), run as real programs; what they print,
//! and what a Rust node on the other side of the link receives, is checked.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use smslink_core::link::LinkConfig;
use smslink_core::message::Message;
use smslink_core::ring::{Outcome, SlotState};
use smslink_core::runtime::{LinkSpec, Node, NodeConfig, NodeEvent, Transport};

/// Where cargo put libsmslink.so / libsmslink.a for this run (target/<profile>).
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/c_examples-<hash>
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .to_path_buf()
}

/// Build the C library for this profile. Cargo does not build a cdylib/staticlib for
/// integration tests (they link only rlibs, and this crate has none: its name would
/// collide with the core crate's rlib), so the test asks cargo for it, in the same
/// target directory and profile (nested cargo is fine: the lock is free by now).
fn build_library(lib: &Path) {
    let target_dir = lib.parent().expect("target directory");
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .args(["build", "-p", "smslink-ffi", "--target-dir"])
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if lib.file_name().is_some_and(|n| n == "release") {
        cargo.arg("--release");
    }
    let out = cargo.output().expect("run cargo build");
    assert!(
        out.status.success(),
        "cargo build -p smslink-ffi failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Build the library and every example once per test run, into the target directory.
fn build_dir() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let lib = lib_dir();
        build_library(&lib);
        assert!(
            lib.join("libsmslink.so").exists() && lib.join("libsmslink.a").exists(),
            "libsmslink.so / libsmslink.a missing in {}",
            lib.display()
        );
        let build = lib.join("c-examples");
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../c-examples");
        let out = Command::new("make")
            .arg("-C")
            .arg(&examples)
            .arg(format!("LIBDIR={}", lib.display()))
            .arg(format!("BUILD={}", build.display()))
            .arg("all")
            .output()
            .expect("run make");
        assert!(
            out.status.success(),
            "make failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        build
    })
}

/// Run a built example (`kind`: "shared" or "static") to completion, with a limit.
fn run(kind: &str, program: &str, args: &[&str]) -> String {
    let path = build_dir().join(kind).join(program);
    let child = Command::new(&path)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", path.display()));
    let pid = child.id() as libc::pid_t;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    let out: Output = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(out) => out.expect("collect output"),
        Err(_) => {
            // SAFETY: kill(2) on the pid of our own child, which has not been reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("{program} ({kind}) did not finish within 60 s");
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{program} ({kind}) failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn assert_has(output: &str, line: &str) {
    assert!(
        output.lines().any(|l| l.trim() == line),
        "expected the line {line:?} in:\n{output}"
    );
}

/// Run a binutils tool on the built shared library and return what it prints.
fn inspect_shared_library(tool: &str, args: &[&str]) -> String {
    build_dir();
    let so = lib_dir().join("libsmslink.so");
    let out = Command::new(tool)
        .args(args)
        .arg(&so)
        .output()
        .unwrap_or_else(|e| panic!("run {tool}: {e}"));
    assert!(
        out.status.success(),
        "{tool} {}: {}",
        so.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("tool output is UTF-8")
}

/// The library exports exactly the committed list (`ffi/exported-symbols.txt`), so an
/// ABI change never goes unnoticed: adding or removing a function means updating the
/// list, with `SMSLINK_UPDATE_SYMBOLS=1 cargo test -p smslink-ffi --test c_examples
/// exported_symbols`, and following the ABI policy in c-examples/README.md.
#[test]
fn exported_symbols_match_the_committed_list() {
    let nm = inspect_shared_library("nm", &["-D", "--defined-only", "--format=posix"]);
    let mut exported: Vec<&str> = nm
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    exported.sort_unstable();
    let exported = exported
        .iter()
        .map(|s| format!("{s}\n"))
        .collect::<String>();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("exported-symbols.txt");
    if std::env::var_os("SMSLINK_UPDATE_SYMBOLS").is_some() {
        std::fs::write(&path, &exported).expect("write ffi/exported-symbols.txt");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let missing: Vec<&str> = committed
        .lines()
        .filter(|s| !exported.lines().any(|e| e == *s))
        .collect();
    let added: Vec<&str> = exported
        .lines()
        .filter(|s| !committed.lines().any(|c| c == *s))
        .collect();
    assert!(
        missing.is_empty() && added.is_empty(),
        "exported symbols differ from ffi/exported-symbols.txt: added {added:?}, removed {missing:?}"
    );
    assert!(
        exported.lines().all(|s| s.starts_with("smslink_")),
        "only smslink_* may be exported"
    );
}

/// Programs record the soname, which names the ABI generation, not the crate version.
#[test]
fn shared_library_has_the_abi_soname() {
    let dynamic = inspect_shared_library("readelf", &["-d"]);
    assert!(
        dynamic.contains("Library soname: [libsmslink.so.0]"),
        "no soname libsmslink.so.0 in:\n{dynamic}"
    );
}

#[test]
fn toy_smsc_exchanges_mo_and_mt_with_the_im_side_through_both_libraries() {
    for kind in ["shared", "static"] {
        let out = run(kind, "toy_smsc", &["500"]);
        // Rings of 16 slots: the stack may meet SMSLINK_FULL (and dispatch meanwhile),
        // the IM side waits for room; every message still arrives once, in order.
        assert!(
            out.lines().any(|l| l.starts_with(
                "toy_smsc: mo sent 500, processed 500 (accepted 500, rejected 0), full answers "
            )),
            "{out}"
        );
        assert_has(
            &out,
            "toy_smsc: mt received 500 (delivered 450, unknown handset 50), in order yes",
        );
        assert_has(
            &out,
            "im: mo received 500, in order yes; mt processed 500 (accepted 450, rejected 50)",
        );
        assert_has(
            &out,
            "toy_smsc: link bs tx cursors retrieved 500 sent 500 confirmed 500 processed 500",
        );
    }
}

#[test]
fn toy_smsc_talks_to_a_rust_im_side_endpoint() {
    const COUNT: usize = 200;
    let mut link = LinkConfig::new("im", b"toy key, 16 bytes+");
    link.expected_peer = Some("bs".into());
    link.capacity = 1024;
    let spec =
        LinkSpec::new(link, Transport::Listen("127.0.0.1:0".parse().unwrap())).insecure_plaintext();
    let im = Node::start(NodeConfig::new(vec![spec])).expect("start the IM node");
    let addr = im.local_addr(0).expect("listening address").to_string();

    let build = build_dir().join("shared").join("toy_smsc");
    let mut child = Command::new(build)
        .args([&COUNT.to_string(), addr.as_str()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start toy_smsc");

    // The IM side: take every MO, acknowledge it, answer it with an MT.
    let mut mo = Vec::new();
    let mut outcomes = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while outcomes.len() < COUNT && Instant::now() < deadline {
        match im.wait_event(Some(Duration::from_millis(100))) {
            Some(NodeEvent::Received { link, seq, message }) => {
                im.ack(link, seq, Outcome::Accepted).expect("ack");
                let text = message.text_str().expect("text MO").to_owned();
                let reply = Message::text(
                    message.to.as_str(),
                    message.from.as_str(),
                    &format!("re: {text}"),
                )
                .expect("reply");
                mo.push((message.from.to_string(), text));
                im.send(&reply).expect("send MT");
            }
            Some(NodeEvent::Status {
                state: SlotState::Processed,
                outcome: Some(outcome),
                ..
            }) => outcomes.push(outcome),
            _ => {}
        }
    }
    let status = child.wait().expect("toy_smsc exit");
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout)
        .expect("read stdout");
    assert!(status.success(), "toy_smsc failed:\n{stdout}");

    // Exactly the messages the C stack handed over, in order, from the right handsets.
    let expected: Vec<(String, String)> = (0..COUNT)
        .map(|i| (format!("4670{i:06}"), format!("mo {i}")))
        .collect();
    assert_eq!(mo, expected);
    // The C stack rejected MT to handsets ending in 9 with code 13, accepted the rest.
    let rejected = outcomes
        .iter()
        .filter(|o| **o == Outcome::Rejected { code: 13 })
        .count();
    let accepted = outcomes.iter().filter(|o| **o == Outcome::Accepted).count();
    assert_eq!((accepted, rejected), (COUNT - COUNT / 10, COUNT / 10));
    assert_has(
        &stdout,
        "toy_smsc: mt received 200 (delivered 180, unknown handset 20), in order yes",
    );
    im.shutdown(Duration::ZERO);
}

#[test]
fn cimd2_codec_example_encodes_and_decodes_a_cut_stream() {
    for kind in ["shared", "static"] {
        let out = run(kind, "cimd2_codec", &[]);
        assert_has(&out, "encode: buffer of 8 bytes too small, 53 needed");
        assert_has(
            &out,
            "packet 03:001 with 3 parameters: 021=4670123456 023=12345 033=hello from C",
        );
        assert_has(
            &out,
            "message from Shop to 4670999888: Prix: 10\u{20ac} {promo}",
        );
        assert_has(
            &out,
            "decoded 3 packets, 1 malformed, skipped 2 bytes, text round trip ok",
        );
    }
}

#[test]
fn poll_loop_example_carries_every_message_through_its_own_loop() {
    for kind in ["shared", "static"] {
        let out = run(kind, "poll_loop", &["400"]);
        let line = out
            .lines()
            .find(|l| l.starts_with("poll_loop: sent"))
            .expect("summary line");
        assert!(
            line.starts_with("poll_loop: sent 400, im received 400, processed 400,"),
            "{line}"
        );
        assert_has(&out, "poll_loop: ok");
    }
}

#[test]
fn bad_calls_get_their_documented_codes() {
    for kind in ["shared", "static"] {
        let out = run(kind, "bad_calls", &[]);
        let line = out.lines().last().unwrap_or_default();
        assert!(
            line.starts_with("bad_calls: ") && line.ends_with(" checks, 0 failed"),
            "{out}"
        );
    }
}

/// Build the `smslink` command for this profile, next to the library.
fn smslink_binary() -> PathBuf {
    let lib = lib_dir();
    let target_dir = lib.parent().expect("target directory");
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .args(["build", "-p", "smslink", "--bin", "smslink", "--target-dir"])
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if lib.file_name().is_some_and(|n| n == "release") {
        cargo.arg("--release");
    }
    let out = cargo.output().expect("run cargo build");
    assert!(
        out.status.success(),
        "cargo build -p smslink failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    lib.join("smslink")
}

#[test]
fn toy_smsc_talks_to_the_smslink_im_endpoint_command() {
    use std::io::{BufRead, BufReader, Write};
    const COUNT: usize = 200;
    let build = build_dir().to_path_buf();
    let mut im = Command::new(smslink_binary())
        .args([
            "im-endpoint",
            "--listen",
            "127.0.0.1:0",
            "--psk",
            "toy key, 16 bytes+",
        ])
        .arg("--insecure-plaintext")
        .args(["--peer", "bs", "--log-level", "warn"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start smslink im-endpoint");
    let mut stdin = im.stdin.take().expect("stdin");
    let mut lines = BufReader::new(im.stdout.take().expect("stdout")).lines();
    let started: serde_json::Value =
        serde_json::from_str(&lines.next().expect("started line").expect("read")).expect("json");
    let addr = started["listen"]
        .as_str()
        .expect("listen address")
        .to_owned();
    // The IM side's application: answer every MO with one MT, count the outcomes.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut mo, mut accepted, mut rejected) = (0, 0, 0);
        for line in lines.map_while(Result::ok) {
            let v: serde_json::Value = serde_json::from_str(&line).expect("json");
            match v["event"].as_str() {
                Some("mo") => {
                    mo += 1;
                    let (from, to, text) = (&v["from"], &v["to"], &v["text"]);
                    let (from, to, text) = (from.as_str(), to.as_str(), text.as_str());
                    writeln!(
                        stdin,
                        "{} {} re: {}",
                        to.unwrap(),
                        from.unwrap(),
                        text.unwrap()
                    )
                    .expect("write MT");
                }
                Some("mt_status") if v["outcome"] == "accepted" => accepted += 1,
                Some("mt_status") => rejected += 1,
                _ => {}
            }
            // Keep reading after the count is complete: the command's stdout stays
            // open until it stops (its final line is written then).
            if mo == COUNT && accepted + rejected == COUNT {
                let _ = done_tx.send((mo, accepted, rejected));
            }
        }
    });
    let out = Command::new(build.join("shared").join("toy_smsc"))
        .args([&COUNT.to_string(), addr.as_str()])
        .output()
        .expect("run toy_smsc");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "toy_smsc failed:\n{stdout}");
    assert_has(
        &stdout,
        "toy_smsc: mt received 200 (delivered 180, unknown handset 20), in order yes",
    );
    let counts = done_rx.recv_timeout(Duration::from_secs(30));
    // SAFETY: kill(2) on the pid of our own child, which has not been reaped.
    unsafe { libc::kill(im.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(counts, Ok((COUNT, 180, 20)));
    assert!(im.wait().expect("im-endpoint exit").success());
}
