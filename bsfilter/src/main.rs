fn main() {
    std::process::exit(bsfilter::cli::run(std::env::args_os().collect()));
}
