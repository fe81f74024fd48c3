//! Builds lindera's IPADIC dictionary from Debian's mecab-ipadic sources
//! (`/usr/share/mecab/dic/ipadic`, EUC-JP; `BSFILTER_IPADIC_SOURCE`
//! overrides) into OUT_DIR, once per build directory, and tells the crate
//! where it is. Lindera's own dictionary crates download their sources at
//! build time, which fails offline. Without the sources bsfilter still
//! builds; `--jtokenizer lindera` then explains what to install.
//!
//! It also links the `bsfilter` binary — run once per message by procmail
//! — as `lda` is linked (`link/per_message_program.rs`): GCC's static
//! unwinder instead of libgcc_s, and packed relative relocations.

use std::path::{Path, PathBuf};

include!("../link/per_message_program.rs");

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    link_per_message_program("bsfilter");
    println!("cargo:rerun-if-changed=ipadic-metadata.json");
    println!("cargo:rerun-if-env-changed=BSFILTER_IPADIC_SOURCE");
    let source = std::env::var_os("BSFILTER_IPADIC_SOURCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/mecab/dic/ipadic"));
    if !source.join("matrix.def").is_file() {
        println!(
            "cargo:warning=no IPADIC sources in {} (apt-get install mecab-ipadic): bsfilter is built without the lindera tokenizer",
            source.display()
        );
        return;
    }
    println!("cargo:rerun-if-changed={}", source.display());
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("ipadic");
    if let Err(e) = build(&source, &out) {
        panic!("building the IPADIC dictionary from {}: {e}", source.display());
    }
    println!("cargo:rustc-env=BSFILTER_IPADIC_DIR={}", out.display());
}

fn build(source: &Path, out: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let metadata = std::fs::read("ipadic-metadata.json")?;
    let metadata = lindera_dictionary::dictionary::metadata::Metadata::load(&metadata)?;
    lindera_dictionary::builder::DictionaryBuilder::new(metadata).build_dictionary(source, out)?;
    Ok(())
}
