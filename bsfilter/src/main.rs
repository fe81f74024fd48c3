// the per-message programs' own `log`/`exp` (link/libm_symbols.rs)
#[path = "../../link/libm_symbols.rs"]
mod libm_symbols;

mod cli;

fn main() {
    std::process::exit(cli::run(std::env::args_os().collect()));
}
