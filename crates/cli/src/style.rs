//! Colour on a terminal: error lines are red when both output streams are terminals and
//! `NO_COLOR` is unset or empty (<https://no-color.org>).

use std::ffi::OsStr;

/// Whether to colour error lines.
pub(crate) fn wants_color(stdout_tty: bool, stderr_tty: bool, no_color: Option<&OsStr>) -> bool {
    stdout_tty && stderr_tty && no_color.is_none_or(OsStr::is_empty)
}

/// The prefix of an error line.
pub(crate) fn error_prefix(color: bool) -> &'static str {
    if color {
        "\x1b[1;31mdockplug:\x1b[0m "
    } else {
        "dockplug: "
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_terminals_without_no_color() {
        assert!(wants_color(true, true, None));
        assert!(wants_color(true, true, Some(OsStr::new(""))));
        assert!(!wants_color(true, true, Some(OsStr::new("1"))));
        assert!(!wants_color(false, true, None));
        assert!(!wants_color(true, false, None));
        assert_eq!(error_prefix(false), "dockplug: ");
        assert!(error_prefix(true).starts_with("\x1b[1;31m"));
    }
}
