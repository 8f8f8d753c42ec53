//! CLI failures and their exit codes: 1 for a failed or refused operation (including "no
//! token matches" and a denied `rebac check`), 2 for a malformed argument, an ambiguous
//! token identifier or, for `status`, a database that is down. Messages are one line; no
//! backtraces.

use rpc_server::control::ControlError;

#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub code: u8,
}

impl CliError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: 1,
        }
    }

    pub fn with_code(message: impl Into<String>, code: u8) -> Self {
        Self {
            message: message.into(),
            code,
        }
    }

    /// A failure already reported on stdout (a denied check): only the exit code says it.
    pub fn silent(code: u8) -> Self {
        Self {
            message: String::new(),
            code,
        }
    }

    pub fn exit_code(&self) -> u8 {
        self.code
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

impl From<ControlError> for CliError {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::Ambiguous { message, matches } => {
                let ids: Vec<String> = matches
                    .iter()
                    .map(|m| format!("{} ({})", m.key_id, m.name))
                    .collect();
                Self::with_code(format!("{message}: {}", ids.join(", ")), 2)
            }
            ControlError::Unavailable => Self::new("the database is unavailable"),
            ControlError::PermissionDenied(m) => Self::new(m),
            e => Self::new(e.to_string()),
        }
    }
}

impl From<anyhow::Error> for CliError {
    fn from(e: anyhow::Error) -> Self {
        Self::new(format!("{e:#}"))
    }
}
