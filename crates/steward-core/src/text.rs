//! Rules for text that people read in lists and pages: display names and descriptions.
//!
//! Such text must not carry invisible characters that change what a reader sees: bidirectional
//! controls (`prod`, U+202E RIGHT-TO-LEFT OVERRIDE, `lanretni` displays as `prodinternal`)
//! and zero-width characters (two names that look identical but differ). They are refused with
//! an error naming the field, the code point and the fix, never silently stripped, so what is
//! stored is exactly what was sent. Slugs are ASCII and need no such check.
//!
//! The cost: right-to-left text that relies on explicit marks, and emoji joined by U+200D
//! (as in the woman-technologist emoji), cannot be used in names and descriptions. Plain Arabic or Hebrew text displays
//! correctly without marks.

use crate::ValidationError;

/// The refused code points, with their Unicode names.
const INVISIBLE: &[(char, &str)] = &[
    ('\u{061C}', "ARABIC LETTER MARK"),
    ('\u{200B}', "ZERO WIDTH SPACE"),
    ('\u{200C}', "ZERO WIDTH NON-JOINER"),
    ('\u{200D}', "ZERO WIDTH JOINER"),
    ('\u{200E}', "LEFT-TO-RIGHT MARK"),
    ('\u{200F}', "RIGHT-TO-LEFT MARK"),
    ('\u{202A}', "LEFT-TO-RIGHT EMBEDDING"),
    ('\u{202B}', "RIGHT-TO-LEFT EMBEDDING"),
    ('\u{202C}', "POP DIRECTIONAL FORMATTING"),
    ('\u{202D}', "LEFT-TO-RIGHT OVERRIDE"),
    ('\u{202E}', "RIGHT-TO-LEFT OVERRIDE"),
    ('\u{2060}', "WORD JOINER"),
    ('\u{2066}', "LEFT-TO-RIGHT ISOLATE"),
    ('\u{2067}', "RIGHT-TO-LEFT ISOLATE"),
    ('\u{2068}', "FIRST STRONG ISOLATE"),
    ('\u{2069}', "POP DIRECTIONAL ISOLATE"),
    ('\u{FEFF}', "ZERO WIDTH NO-BREAK SPACE (byte order mark)"),
];

/// Refuses display text (a name, a description) holding a bidirectional control or a
/// zero-width character. `param` names the field in the error.
pub fn check_display_text(v: &str, param: &str) -> Result<(), ValidationError> {
    for (position, c) in v.chars().enumerate() {
        if let Some((_, name)) = INVISIBLE.iter().find(|(x, _)| *x == c) {
            return Err(ValidationError::new(
                param,
                format!(
                    "contains U+{:04X} {name} (character {}), an invisible character that changes how the text is displayed; \
                     remove it: bidirectional controls and zero-width characters are not allowed in names and descriptions",
                    c as u32,
                    position + 1
                ),
            ));
        }
    }
    Ok(())
}

/// A description: at most `max` characters, no NUL, and display text (above).
pub fn check_description(v: &str, param: &str, max: usize) -> Result<(), ValidationError> {
    crate::agent::check_len(v, param, max)?;
    check_display_text(v, param)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_code_point_is_refused_and_named() {
        for (c, name) in INVISIBLE {
            let e = check_display_text(&format!("ab{c}cd"), "name").unwrap_err();
            assert_eq!(e.param, "name");
            assert!(e.message.contains(&format!("U+{:04X} {name}", *c as u32)), "{}", e.message);
            assert!(e.message.contains("character 3"), "{}", e.message);
        }
    }

    #[test]
    fn ordinary_text_in_any_script_passes() {
        for ok in ["Support team", "Équipe support", "فريق الدعم", "צוות תמיכה", "サポート", "a — b", "🚀 launch", ""]
        {
            check_display_text(ok, "name").unwrap();
        }
        let e = check_display_text("prod\u{202E}lanretni", "description").unwrap_err();
        assert!(e.message.contains("U+202E RIGHT-TO-LEFT OVERRIDE"), "{}", e.message);
    }
}
