//! Link settings of the C library that Cargo has no key for.

fn main() {
    // The soname names the ABI generation (the major of c-examples/README.md's ABI
    // policy), not the crate version: programs linked against libsmslink.so.0 keep
    // loading every 0.x library installed under that name.
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libsmslink.so.{SONAME_MAJOR}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}

/// Bumped only with an incompatible ABI change (see c-examples/README.md).
const SONAME_MAJOR: u32 = 0;
