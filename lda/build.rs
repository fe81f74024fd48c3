//! Start-up linking for the `lda` binary, which runs once per delivered
//! message (BENCHMARKS.md, "lda"):
//!
//! - GCC's static unwinder instead of the shared libgcc_s: the linker
//!   script `link/libgcc_s.so` (see `link/README.md`) is found first;
//! - its 5,400 relative relocations packed (DT_RELR, glibc 2.36 and
//!   binutils 2.38 or later): 2 KiB for the loader to read at every start
//!   instead of 128 KiB, four page faults less per delivery.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu")
    {
        let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
        println!("cargo:rustc-link-arg-bin=lda=-L{manifest}/../link");
        println!("cargo:rustc-link-arg-bin=lda=-Wl,-z,pack-relative-relocs");
    }
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../link/libgcc_s.so");
}
