fn main() -> std::process::ExitCode {
    match layercake::cli::main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The error, then each cause its message does not already say
            // (an error that wraps another usually prints it too).
            let mut message = e.to_string();
            for cause in e.chain().skip(1) {
                let cause = cause.to_string();
                if !message.contains(&cause) {
                    message = format!("{message}: {cause}");
                }
            }
            eprintln!("layercake: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}
