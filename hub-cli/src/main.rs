//! `nexus`: the operator CLI. All logic lives in the library.

fn main() -> std::process::ExitCode {
    hub_cli::main_entry()
}
