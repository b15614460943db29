//! Runs fuzz inputs through their target on stable Rust, without libFuzzer:
//! `shoal-fuzz-replay TARGET FILE...` (a crash file from `fuzz/run.sh`, a
//! seed). `SHOAL_FUZZ_TRACE=1` makes the pipeline target print each
//! operation and each member's verdict. Exits non-zero on the first input
//! that fails its target (the panic message says which invariant).

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((name, files)) = args.split_first() else {
        eprintln!("usage: shoal-fuzz-replay TARGET FILE...");
        return ExitCode::from(2);
    };
    let Some(run) = shoal_fuzz::target(name) else {
        let names: Vec<&str> = shoal_fuzz::TARGETS.iter().map(|(n, _)| *n).collect();
        eprintln!("no target {name:?}; targets: {}", names.join(", "));
        return ExitCode::from(2);
    };
    for file in files {
        let bytes = match std::fs::read(file) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{file}: {e}");
                return ExitCode::from(2);
            }
        };
        run(&bytes);
        println!("{file}: ok");
    }
    ExitCode::SUCCESS
}
