//! The committed C header is exactly what cbindgen makes of the code.
//!
//! To regenerate it after changing the API:
//! `SMSLINK_UPDATE_HEADER=1 cargo test -p smslink-ffi --test header`.

use std::path::Path;

fn generate() -> String {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("ffi/cbindgen.toml parses");
    // The version macro comes from Cargo.toml, so the two cannot drift apart.
    config.after_includes = Some(format!(
        "\n/** The version of this header; compare with smslink_version() at run time. */\n#define SMSLINK_VERSION \"{}\"",
        env!("CARGO_PKG_VERSION")
    ));
    let mut out = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut out);
    String::from_utf8(out).expect("header is UTF-8")
}

#[test]
fn committed_header_matches_the_code() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../include/smslink.h");
    let generated = generate();
    if std::env::var_os("SMSLINK_UPDATE_HEADER").is_some() {
        std::fs::write(&path, &generated).expect("write include/smslink.h");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .map_or_else(|| "the end".to_owned(), |i| format!("line {}", i + 1));
        panic!(
            "include/smslink.h is stale (first difference at {line}); regenerate with \
             SMSLINK_UPDATE_HEADER=1 cargo test -p smslink-ffi --test header"
        );
    }
}
