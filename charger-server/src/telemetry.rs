//! Logging through `tracing`, filtered by `RUST_LOG` (default `info`), to stderr.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; a second call is a no-op (tests call it per test).
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Longest log field taken from input, in characters (a client id, a topic): longer ones
/// are cut, so a client cannot make the log grow by what it sends.
pub const MAX_LOG_FIELD_CHARS: usize = 80;

/// Input made safe for a log line: escaped and cut to [`MAX_LOG_FIELD_CHARS`].
pub fn field(input: &str) -> String {
    let cut = crate::error::bounded(input, MAX_LOG_FIELD_CHARS);
    cut.escape_debug().to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn log_fields_are_cut_and_escaped() {
        let long = "a".repeat(65_000);
        assert_eq!(super::field(&long).chars().count(), 81);
        assert_eq!(super::field("a\nb"), "a\\nb");
    }
}
