//! Start-up linking for the `lda` binary, which runs once per delivered
//! message (BENCHMARKS.md, "lda"; `link/per_message_program.rs`).

include!("../link/per_message_program.rs");

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    link_per_message_program("lda");
}
