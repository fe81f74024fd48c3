//! Links the `lda` binary with GCC's static unwinder (libgcc_eh) instead of
//! the shared libgcc_s.
//!
//! Why: lda is started once per delivered message, so its start-up is a
//! cost per message. Rust's std on x86_64-linux-gnu asks for `-lgcc_s`,
//! and loading libgcc_s.so.1 costs a fresh process an extra library to map
//! and relocate plus its constructor `__cpu_indicator_init`, eleven CPUID
//! instructions — each a VM exit, ~3.5 µs on the virtual machines mail
//! servers mostly run on: ~50 µs per delivery in all (BENCHMARKS.md).
//! Static libgcc_eh is what Rust itself links for `crt-static` targets, and
//! panics unwind the same way. Only the `lda` binary is affected: a linker
//! script named libgcc_s.so in this build's own directory, searched before
//! the system's, stands for `-lgcc_eh`.
//!
//! It also packs the binary's 5,400 relative relocations (DT_RELR, glibc
//! 2.36 and binutils 2.38 or later): 2 KiB for the loader to read at every
//! start instead of 128 KiB, four page faults less per delivery.

use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let dir = out.join("static-libgcc");
    std::fs::create_dir_all(&dir).expect("create OUT_DIR/static-libgcc");
    std::fs::write(dir.join("libgcc_s.so"), "INPUT ( -lgcc_eh )\n").expect("write the libgcc_s.so linker script");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu")
    {
        println!("cargo:rustc-link-arg-bin=lda=-L{}", dir.display());
        println!("cargo:rustc-link-arg-bin=lda=-Wl,-z,pack-relative-relocs");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
