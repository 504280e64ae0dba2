//! The domain error: one enum every service returns, mapped once on each edge (an HTTP
//! status in `api/`, a `code` in the RES envelope in `mqtt/`).

/// Longest error message (and field name) sent or kept, in characters. Messages that
/// quote input (serde names the offending value) are cut, so an answer, a kept answer or a
/// log line never carries unbounded input.
pub const MAX_MESSAGE_CHARS: usize = 200;

/// `text` cut to `max` characters, with "…" where it was cut.
pub fn bounded(text: impl Into<String>, max: usize) -> String {
    let text = text.into();
    match text.char_indices().nth(max) {
        None => text,
        Some((cut, _)) => format!("{}…", &text[..cut]),
    }
}

/// Result of a service call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a service call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input is well formed but not acceptable (422); `field` names the culprit.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// The thing does not exist, or is not visible to the caller (404).
    #[error("{what} not found")]
    NotFound { what: &'static str },
    /// The change conflicts with the current state (409).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// The caller is known but not allowed to do this (403).
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// The caller could not be authenticated (401).
    #[error("authentication required")]
    Unauthorized,
    /// A charger did not answer a command in time (504).
    #[error("the charger did not answer in time")]
    Timeout,
    /// A charger answered a command with something the API does not define (502).
    #[error("{0}")]
    BadAnswer(String),
    /// A dependency is temporarily unavailable (503).
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an infrastructure failure (500); details are logged, never returned.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            field: bounded(field, 100),
            message: bounded(message, MAX_MESSAGE_CHARS),
        }
    }

    /// A refusal of the request as asked (4xx), as opposed to a failure to serve it.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Error::Invalid { .. }
                | Error::NotFound { .. }
                | Error::Conflict { .. }
                | Error::Forbidden { .. }
                | Error::Unauthorized
        )
    }

    pub fn not_found(what: &'static str) -> Self {
        Error::NotFound { what }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Error::Conflict {
            code,
            message: bounded(message, MAX_MESSAGE_CHARS),
        }
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Error::Forbidden {
            code,
            message: bounded(message, MAX_MESSAGE_CHARS),
        }
    }

    /// The machine code of the error body: `{"error": "<code>", ...}`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Invalid { .. } => "invalid_input",
            Error::NotFound { .. } => "not_found",
            Error::Conflict { code, .. } | Error::Forbidden { code, .. } => code,
            Error::Unauthorized => "unauthorized",
            Error::Timeout => "device_timeout",
            Error::BadAnswer(_) => "bad_device_answer",
            Error::Unavailable(_) => "unavailable",
            Error::Internal(_) => "internal",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_that_quote_input_are_cut() {
        let huge = "x".repeat(60_000);
        let e = Error::invalid("state", format!("unknown variant `{huge}`"));
        assert!(
            e.to_string().chars().count() < 320,
            "{}",
            e.to_string().len()
        );
        assert_eq!(bounded("short", 10), "short");
        assert_eq!(bounded("ééééé", 2), "éé…");
    }

    /// The codes of `Error::forbidden("…")` and `Error::conflict("…")` in a source text.
    fn codes_in(text: &str) -> Vec<String> {
        // Code, not tests (this very test names the calls it looks for).
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        let mut out = Vec::new();
        for call in ["Error::forbidden(", "Error::conflict("] {
            for (at, _) in text.match_indices(call) {
                let rest = text[at + call.len()..].trim_start();
                if let Some(quoted) = rest.strip_prefix('"') {
                    if let Some(end) = quoted.find('"') {
                        out.push(quoted[..end].to_owned());
                    }
                }
            }
        }
        out
    }

    #[test]
    fn every_error_code_is_in_the_documented_table() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let doc = std::fs::read_to_string(root.join("../docs/mqtt-api.md")).expect("doc");
        let table = &doc[doc.find("## Error codes").expect("the section")..];
        let mut codes: Vec<String> = [
            Error::invalid("f", "m"),
            Error::not_found("x"),
            Error::Unauthorized,
            Error::Timeout,
            Error::BadAnswer(String::new()),
            Error::Unavailable(String::new()),
            Error::Internal(String::new()),
        ]
        .iter()
        .map(|e| e.code().to_owned())
        .collect();
        codes.extend(
            [
                "unknown_endpoint",
                "malformed_json",
                "payload_too_large",
                "unsupported_media_type",
            ]
            .map(String::from),
        );
        let mut dirs = vec![root.join("src")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("src").flatten() {
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    codes.extend(codes_in(&std::fs::read_to_string(&path).expect("source")));
                }
            }
        }
        codes.sort();
        codes.dedup();
        assert!(codes.len() > 20, "{codes:?}");
        for code in codes {
            assert!(
                table.contains(&format!("| `{code}` |")),
                "error code {code} is not in docs/mqtt-api.md's table"
            );
        }
    }
}
