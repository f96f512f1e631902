use clap::Parser;

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
