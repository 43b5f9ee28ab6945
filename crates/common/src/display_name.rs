//! Names people see on one line: meeting titles, user display names, organization names.
//!
//! A name is shown in participant lists, lobbies and headers of other people's screens, so it
//! must not be able to break or disguise that line. [`DisplayName::parse`] trims it and
//! refuses:
//! - control characters (`Cc`: NUL, newline, escape; PostgreSQL refuses NUL outright);
//! - format characters (`Cf`: bidirectional overrides such as U+202E that reverse the text
//!   around them, zero-width spaces, the byte-order mark), except a zero-width joiner or
//!   non-joiner between two other characters, where emoji sequences (👩‍💻) and Indic scripts
//!   need them;
//! - line and paragraph separators (U+2028, U+2029), which end a line like a newline;
//! - private-use and unassigned-surrogate code points (`Co`, `Cs`);
//! - names with nothing visible: only spaces, combining marks, or letters that render blank
//!   (U+3164 HANGUL FILLER and its kin, U+2800 BRAILLE PATTERN BLANK).

use std::fmt;

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Longest name, in characters (Unicode scalar values, as PostgreSQL's `char_length`).
pub const MAX_DISPLAY_NAME_CHARS: usize = 255;

/// Letters (`Lo`) and symbols that render as blank space although they are not whitespace.
const BLANK_LOOKING: [char; 5] = [
    '\u{115F}', // HANGUL CHOSEONG FILLER
    '\u{1160}', // HANGUL JUNGSEONG FILLER
    '\u{3164}', // HANGUL FILLER
    '\u{FFA0}', // HALFWIDTH HANGUL FILLER
    '\u{2800}', // BRAILLE PATTERN BLANK
];

/// Why a name is refused. Messages name no field: the caller says which field it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DisplayNameError {
    #[error("must not be blank")]
    Blank,
    #[error("must be at most {MAX_DISPLAY_NAME_CHARS} characters")]
    TooLong,
    #[error("must not contain control, format or line-separator characters")]
    ForbiddenCharacter,
    #[error("must contain a visible character")]
    Invisible,
}

/// A trimmed, single-line name of 1–255 characters with at least one visible character.
#[derive(Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(raw: &str) -> Result<Self, DisplayNameError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(DisplayNameError::Blank);
        }
        if trimmed.chars().count() > MAX_DISPLAY_NAME_CHARS {
            return Err(DisplayNameError::TooLong);
        }
        if has_forbidden_character(trimmed) {
            return Err(DisplayNameError::ForbiddenCharacter);
        }
        if !trimmed.chars().any(is_visible) {
            return Err(DisplayNameError::Invisible);
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// Names are personal data: `Debug` shows their length only, so a stray `{:?}` in a log line
/// cannot leak one.
impl fmt::Debug for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DisplayName({} chars)", self.0.chars().count())
    }
}

/// Zero-width joiner and non-joiner: allowed only between two permitted characters.
const JOINERS: [char; 2] = ['\u{200C}', '\u{200D}'];

fn has_forbidden_character(name: &str) -> bool {
    let chars: Vec<char> = name.chars().collect();
    chars.iter().enumerate().any(|(i, &c)| {
        if JOINERS.contains(&c) {
            let before = i.checked_sub(1).and_then(|j| chars.get(j));
            let after = chars.get(i + 1);
            let joins =
                |n: Option<&char>| n.is_some_and(|&n| !is_forbidden(n) && !JOINERS.contains(&n));
            return !(joins(before) && joins(after));
        }
        is_forbidden(c)
    })
}

fn is_forbidden(c: char) -> bool {
    matches!(
        c.general_category(),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
            | GeneralCategory::PrivateUse
            | GeneralCategory::Surrogate
    )
}

fn is_visible(c: char) -> bool {
    !c.is_whitespace()
        && !BLANK_LOOKING.contains(&c)
        && !matches!(
            c.general_category(),
            GeneralCategory::NonspacingMark
                | GeneralCategory::EnclosingMark
                | GeneralCategory::SpacingMark
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed() {
        let name = DisplayName::parse("  Weekly sync \t\n").unwrap();
        assert_eq!(name.as_str(), "Weekly sync");
    }

    #[test]
    fn blank_names_are_refused() {
        for raw in ["", " ", "\t\n  ", "\u{3000}"] {
            assert_eq!(
                DisplayName::parse(raw),
                Err(DisplayNameError::Blank),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn names_may_have_255_characters_but_not_256_counting_characters_not_bytes() {
        assert!(DisplayName::parse(&"a".repeat(255)).is_ok());
        assert!(DisplayName::parse(&"€".repeat(255)).is_ok());
        assert_eq!(
            DisplayName::parse(&"a".repeat(256)),
            Err(DisplayNameError::TooLong)
        );
        assert!(DisplayName::parse(&format!("  {}  ", "a".repeat(255))).is_ok());
    }

    #[test]
    fn control_format_and_separator_characters_are_refused() {
        for raw in [
            "a\0b",
            "line\nbreak",
            "tab\there",
            "bell\u{7}",
            "c1\u{85}x",
            "esc\u{1b}[31m",
            "line\u{2028}sep",
            "para\u{2029}sep",
            "evil\u{202E}gpj.exe",
            "isolate\u{2066}x",
            "zero\u{200B}width",
            "\u{200D}leading joiner",
            "double\u{200D}\u{200D}joiner",
            "\u{FEFF}bom",
            "soft\u{AD}hyphen",
            "tag\u{E0041}",
            "private\u{E000}",
        ] {
            assert_eq!(
                DisplayName::parse(raw),
                Err(DisplayNameError::ForbiddenCharacter),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn names_of_only_invisible_characters_are_refused() {
        for raw in [
            "\u{3164}",
            "\u{3164}\u{3164}",
            "\u{115F}\u{1160}",
            "\u{FFA0}",
            "\u{2800}",
            "\u{301}\u{302}",
        ] {
            assert_eq!(
                DisplayName::parse(raw),
                Err(DisplayNameError::Invisible),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn ordinary_names_in_many_scripts_are_accepted() {
        for raw in [
            "Standup",
            "Zoë's 1:1",
            "会议室",
            "Встреча",
            "اجتماع",
            "회의",
            "🎉 Launch",
            "e\u{301}te\u{301}",
            "a\u{3164}b",
            "\u{1F469}\u{200D}\u{1F4BB} dev sync",
            "\u{915}\u{94D}\u{200D}\u{937}",
        ] {
            assert!(DisplayName::parse(raw).is_ok(), "{raw:?}");
        }
    }

    #[test]
    fn debug_output_does_not_show_the_name() {
        let name = DisplayName::parse("Secret project").unwrap();
        assert!(!format!("{name:?}").contains("Secret"));
    }
}
