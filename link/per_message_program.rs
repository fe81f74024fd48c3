// Included by the build scripts of the per-message programs (`lda`,
// `bsfilter`): links `bin` for a cheap start-up — GCC's static unwinder
// through `link/libgcc_s.so` (see link/README.md), and its relative
// relocations packed (DT_RELR; glibc 2.36, binutils 2.38 or later): 2 KiB
// for the loader to read at every start instead of 128 KiB.

/// Asks cargo to link the binary `bin` of the calling package so.
fn link_per_message_program(bin: &str) {
    println!("cargo:rerun-if-changed=../link/libgcc_s.so");
    println!("cargo:rerun-if-changed=../link/per_message_program.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu")
    {
        let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
        println!("cargo:rustc-link-arg-bin={bin}=-L{manifest}/../link");
        println!("cargo:rustc-link-arg-bin={bin}=-Wl,-z,pack-relative-relocs");
    }
}
