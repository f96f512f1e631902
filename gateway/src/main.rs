use clap::Parser;

/// mimalloc: measured against glibc malloc in bench/README.md (the proxy path allocates small buffers per
/// request; glibc spent ~19% of the CPU in malloc/free under load).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = gateway::cli::Cli::parse();
    gateway::telemetry::init(&cli.log);
    match gateway::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
