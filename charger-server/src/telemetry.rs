//! Logging through `tracing` to stderr, filtered by `RUST_LOG` (default: our own lines at
//! `info`, the libraries' at `warn`), as text or, with `CHARGER_LOG_FORMAT=json`, one JSON
//! object per line for log shippers.

use tracing_subscriber::EnvFilter;

/// The filter when `RUST_LOG` is unset: our start-up and request lines, and only the
/// warnings of the libraries (rumqttd's router logs every link at `info`).
pub const DEFAULT_FILTER: &str = "warn,charger_server=info,tower_http=info";

/// Installs the global subscriber (text lines); a second call is a no-op (tests call it
/// per test).
pub fn init() {
    init_with(crate::config::LogFormat::Text);
}

/// Installs the global subscriber with the given line format.
pub fn init_with(format: crate::config::LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let json = format == crate::config::LogFormat::Json;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
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
