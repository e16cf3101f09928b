fn main() -> std::process::ExitCode {
    match layercake::cli::main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("layercake: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
