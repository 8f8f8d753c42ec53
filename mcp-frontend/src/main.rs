//! `nexus-mcp`: the MCP frontend alone (no database code linked), the same server as
//! `nexus mcp serve`. All logic lives in the library.

fn main() -> std::process::ExitCode {
    mcp_frontend::process::main_entry()
}
