use std::process::ExitCode;

fn main() -> ExitCode {
    jobqueue_operator::cli::main()
}
