//! Schedules (§11): a cron expression in an IANA time zone that starts a run of its agent at
//! each due time, with the run's input rendered from a template (by the runtime). This module
//! owns the configuration, its validation, and the one answer to "when does it fire next?"; it
//! never reads a clock — callers pass the instant to count from.
//!
//! # Expressions
//!
//! Five fields (`minute hour day-of-month month day-of-week`) or six (a `second` field first),
//! with `*`, lists, ranges, `*/n` and `a-b/n` steps, month names `JAN`–`DEC`, day names
//! `SUN`–`SAT` (0 and 7 are Sunday), `L`/`W` in the day of month, `L`/`#n` in the day of week,
//! and the nicknames `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly` (`@annually`). As in
//! Vixie cron, a restricted day of month and a restricted day of week fire when either matches.
//! An expression that matches no date at all (`0 0 30 2 *`) is rejected.
//!
//! # Daylight saving time
//!
//! Cron times are wall-clock times in the schedule's zone, with Vixie cron/cronie's rule for the
//! days the clocks change. An expression is a *wildcard* expression when its minute or hour field
//! starts with `*` (`*/15 * * * *`, `0 * * * *`, `* 9 * * *`), and a *wall-clock* expression
//! otherwise (`30 2 * * *`, `0 9,17 * * MON-FRI`):
//!
//! 1. Spring forward: a wall-clock time that does not exist that day (02:30 when the clocks jump
//!    from 02:00 to 03:00) fires once, at the first instant after the gap (03:00), even if that
//!    instant is on the next day. Several times in one gap fire once together; so does a time
//!    in the gap with one at the gap's end.
//! 2. Fall back: a wall-clock time that happens twice (02:30 when the clocks go back from 03:00 to
//!    02:00) fires once, at its first occurrence.
//! 3. A wildcard expression fires at every instant whose local time matches, each once: it keeps
//!    to elapsed time, so `30 * * * *` fires at 02:30 before and at 02:30 after the clocks go
//!    back, and skips the hour that does not exist. A wildcard expression that fixes the hour
//!    (`*/10 2 * * *`) therefore fires twice as often on the fall-back day and not at all on the
//!    spring-forward day (in Europe's zones), as in cronie.
//!
//! croner classifies an expression as fixed-time only when second, minute and hour are each a
//! single value, and applies rules 1 and 2 only then: lists like `30 2,14 * * *` would lose the
//! 02:30 fire in spring and fire twice in autumn. Wall-clock expressions are therefore searched
//! here on the local calendar (croner over naive date-times) and mapped to instants by rules 1
//! and 2; wildcard expressions use croner's own zone-aware search, which is rule 3.

use chrono::{DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, TimeDelta, TimeZone};
use chrono_tz::{GapInfo, TZ_VARIANTS, Tz};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use serde::{Deserialize, Serialize};

use crate::ValidationError;
use crate::agent::{check_len, check_slug};
use crate::source::from_value;
use crate::trigger::MAX_TEMPLATE_CHARS;

/// The input template when none is given.
pub const DEFAULT_TEMPLATE: &str = "Scheduled run ({{ scheduled_at }}).";
const MAX_CRON_CHARS: usize = 200;
const MAX_DESCRIPTION_CHARS: usize = 2_000;

/// What to do about due times that passed while no server was running.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissedPolicy {
    /// Forget them; fire at the next due time.
    #[default]
    Skip,
    /// Fire once for all of them, then carry on with the next due time.
    FireOnce,
}

impl MissedPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            MissedPolicy::Skip => "skip",
            MissedPolicy::FireOnce => "fire_once",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "skip" => Some(MissedPolicy::Skip),
            "fire_once" => Some(MissedPolicy::FireOnce),
            _ => None,
        }
    }
}

/// The user-editable configuration of a schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// A slug unique among the agent's schedules.
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// A cron expression (see the module documentation).
    pub cron: String,
    /// The IANA zone the expression's wall-clock times are in.
    #[serde(default = "utc")]
    pub timezone: String,
    /// A minijinja template producing the run's input from `scheduled_at`, `fired_at` (RFC 3339)
    /// and `schedule` (name, description, cron, timezone).
    #[serde(default = "default_template")]
    pub input_template: String,
    #[serde(default)]
    pub missed: MissedPolicy,
}

fn utc() -> String {
    "UTC".to_string()
}

fn default_template() -> String {
    DEFAULT_TEMPLATE.to_string()
}

impl ScheduleConfig {
    pub fn from_json(value: serde_json::Value) -> Result<Self, ValidationError> {
        let config: ScheduleConfig = from_value(value)?;
        config.validate()?;
        Ok(config)
    }

    /// Top-level keys replace the current ones; `null` resets a field to its default.
    pub fn patched(&self, patch: &serde_json::Map<String, serde_json::Value>) -> Result<Self, ValidationError> {
        let mut current = serde_json::to_value(self).expect("a schedule config serializes");
        let obj = current.as_object_mut().expect("a schedule config is an object");
        for (k, v) in patch {
            if v.is_null() {
                obj.remove(k);
            } else {
                obj.insert(k.clone(), v.clone());
            }
        }
        Self::from_json(current)
    }

    /// Shape checks; the runtime checks that the template parses.
    pub fn validate(&self) -> Result<(), ValidationError> {
        check_slug(&self.name, "name")?;
        crate::text::check_description(&self.description, "description", MAX_DESCRIPTION_CHARS)?;
        check_cron(&self.cron)?;
        check_timezone(&self.timezone)?;
        check_len(&self.input_template, "input_template", MAX_TEMPLATE_CHARS)?;
        if self.input_template.trim().is_empty() {
            return Err(ValidationError::new("input_template", "is empty; leave it out to get the default input"));
        }
        Ok(())
    }

    /// The first fire time strictly after `after_ms` (epoch ms, UTC), or None if the expression
    /// never fires again. Fire times are whole seconds. A configuration that does not validate
    /// never fires.
    pub fn next_fire_after(&self, after_ms: i64) -> Option<i64> {
        let tz = check_timezone(&self.timezone).ok()?;
        parse_cron(&self.cron).ok()?.next_after(tz, after_ms.div_euclid(1000))?.checked_mul(1000)
    }
}

/// Parses and checks a cron expression; the error names the field that is wrong. An expression
/// that matches no date at all (`0 0 30 2 *`) is an error too.
pub fn check_cron(expr: &str) -> Result<(), ValidationError> {
    let parsed = parse_cron(expr)?;
    if never_matches(&parsed.cron) {
        let message = format!("`{}` matches no date (like 30 February); check the day-of-month and month fields", expr.trim());
        return Err(ValidationError::new("cron", message));
    }
    Ok(())
}

/// Looks up an IANA time zone name (case matters, as in the tz database).
pub fn check_timezone(tz: &str) -> Result<Tz, ValidationError> {
    if let Ok(zone) = tz.parse::<Tz>() {
        return Ok(zone);
    }
    let message = match TZ_VARIANTS.iter().find(|z| z.name().eq_ignore_ascii_case(tz.trim())) {
        Some(z) => format!("`{tz}` is not an IANA time zone name; did you mean `{}`?", z.name()),
        None => format!("`{tz}` is not an IANA time zone name; use one like `Europe/Berlin`, `America/New_York` or `UTC`"),
    };
    Err(ValidationError::new("timezone", message))
}

/// A checked expression and how daylight-saving changes apply to it.
struct CronExpr {
    cron: Cron,
    /// Minute and hour fields both without `*`: a wall-clock expression (rules 1 and 2).
    wall_clock: bool,
}

/// One field of an expression: its name in messages, its range and the words it accepts.
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    /// Names standing for `base`, `base + 1`, …
    names: &'static [&'static str],
    base: u32,
    /// Letters croner gives a meaning in this field, besides a trailing `L` on a weekday.
    letters: &'static [&'static str],
    /// Characters the field may hold besides digits, letters and `,-/*`.
    extra: &'static str,
    hint: &'static str,
}

const MONTHS: [&str; 12] = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

const fn numeric(name: &'static str, min: u32, max: u32, hint: &'static str) -> Field {
    Field { name, min, max, names: &[], base: 0, letters: &[], extra: "", hint }
}

/// Second, minute, hour, day of month, month, day of week — croner's order without the year.
const FIELDS: [Field; 6] = [
    numeric("second", 0, 59, "use 0–59"),
    numeric("minute", 0, 59, "use 0–59"),
    numeric("hour", 0, 23, "use 0–23"),
    Field { letters: &["L", "W", "LW"], extra: "?", ..numeric("day of month", 1, 31, "use 1–31, `L` (the last day) or `15W`") },
    Field { names: &MONTHS, base: 1, ..numeric("month", 1, 12, "use 1–12 or JAN–DEC") },
    Field {
        names: &DAYS,
        extra: "?#",
        ..numeric(
            "day of week",
            0,
            7,
            "use 0–7 (0 and 7 are Sunday) or SUN, MON, TUE, WED, THU, FRI, SAT; `FRI#2` is the second Friday, `FRIL` the last",
        )
    },
];

const FIELD_COUNT_HELP: &str =
    "use 5 fields (minute hour day-of-month month day-of-week, e.g. `0 9 * * MON-FRI`) or 6 with seconds first (e.g. `30 0 9 * * *`)";

fn parse_cron(expr: &str) -> Result<CronExpr, ValidationError> {
    let err = |message: String| ValidationError::new("cron", message);
    let expr = expr.trim();
    if expr.chars().count() > MAX_CRON_CHARS {
        return Err(err(format!("is longer than {MAX_CRON_CHARS} characters; {FIELD_COUNT_HELP}")));
    }
    let expr = match expr.to_ascii_lowercase().as_str() {
        "" => return Err(err(format!("is empty; {FIELD_COUNT_HELP}"))),
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * SUN",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        s if s.starts_with('@') => {
            return Err(err(format!("`{expr}` is not supported; use @hourly, @daily, @weekly, @monthly, @yearly or a 5-field expression")));
        }
        _ => expr,
    };
    let given: Vec<&str> = expr.split_whitespace().collect();
    // Field k as the user counts it is `FIELDS[k - 1 + skip]`; a missing second is 0.
    let skip = match given.len() {
        5 => 1,
        6 => 0,
        n => return Err(err(format!("has {n} field{}; {FIELD_COUNT_HELP}", if n == 1 { "" } else { "s" }))),
    };
    let mut fields = vec!["0".to_string(); skip];
    for (i, raw) in given.iter().enumerate() {
        let field = &FIELDS[i + skip];
        let at = |detail: String| err(format!("field {} ({}): {detail}", i + 1, field.name));
        let normal = normalize(raw, field).map_err(at)?;
        // croner's errors name no field, so each field is parsed alone to find the culprit.
        let mut probe = ["*"; 6];
        probe[i + skip] = &normal;
        if let Err(e) = parser().parse(&probe.join(" ")) {
            let detail = e.to_string();
            let detail = detail.trim_start_matches("Component error: ").trim_end_matches('.');
            return Err(at(format!("`{raw}` is not valid ({detail}); {}", field.hint)));
        }
        fields.push(normal);
    }
    let cron = parser().parse(&fields.join(" ")).map_err(|e| err(format!("`{expr}` is not valid: {e}")))?;
    Ok(CronExpr { wall_clock: !fields[1].starts_with('*') && !fields[2].starts_with('*'), cron })
}

/// Six fields (seconds first) and no year field; no leniency beyond the classic syntax.
fn parser() -> CronParser {
    CronParser::builder().seconds(Seconds::Required).year(Year::Disallowed).build()
}

/// Checks the numbers and words of one field and spells the words as numbers, so croner's
/// whole-expression name replacement never sees them (it would read `MON` in the month field).
/// The structure (`a-b/n`, `5#2`) is left to croner.
fn normalize(raw: &str, field: &Field) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = raw;
    let mut prev = ' ';
    while let Some(c) = rest.chars().next() {
        let run = rest.find(|d: char| d.is_ascii_digit() != c.is_ascii_digit() || d.is_ascii_alphabetic() != c.is_ascii_alphabetic());
        let len = if c.is_ascii_alphanumeric() { run.unwrap_or(rest.len()) } else { c.len_utf8() };
        let (token, tail) = rest.split_at(len);
        if c.is_ascii_digit() {
            check_number(token, prev, field)?;
            out.push_str(token);
        } else if c.is_ascii_alphabetic() {
            out.push_str(&spell(token, prev, field)?);
        } else if ",-/*".contains(c) || field.extra.contains(c) {
            out.push(c);
        } else {
            return Err(format!("`{c}` is not allowed here; {}", field.hint));
        }
        prev = c;
        rest = tail;
    }
    // croner only says "Range out of bounds" for these; cron ranges never wrap around.
    for (given, part) in raw.split(',').zip(out.split(',')) {
        let range = part.split('/').next().unwrap_or_default();
        if let Some((a, b)) = range.split_once('-')
            && let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>())
            && a > b
        {
            return Err(format!("the range `{given}` runs backwards; write the smaller value first (ranges do not wrap around)"));
        }
    }
    Ok(out)
}

fn check_number(token: &str, prev: char, field: &Field) -> Result<(), String> {
    let (lo, hi, what) = match prev {
        '/' => (1, field.max - field.min + 1, " for a step"),
        '#' => (1, 5, " for the occurrence after `#`"),
        _ => (field.min, field.max, ""),
    };
    match token.parse::<u32>() {
        Ok(v) if (lo..=hi).contains(&v) => Ok(()),
        _ => Err(format!("`{token}` is out of range {lo}–{hi}{what}")),
    }
}

/// A month or day name as its number; `SUN` ending a range is 7, so `FRI-SUN` works.
fn spell(token: &str, prev: char, field: &Field) -> Result<String, String> {
    let upper = token.to_ascii_uppercase();
    let weekdays = field.names == DAYS;
    if field.letters.contains(&upper.as_str()) || (weekdays && upper == "L" && prev.is_ascii_digit()) {
        return Ok(upper);
    }
    let (name, suffix) = match upper.strip_suffix('L') {
        Some(day) if weekdays && DAYS.contains(&day) => (day, "L"),
        _ => (upper.as_str(), ""),
    };
    match field.names.iter().position(|n| *n == name) {
        Some(0) if weekdays && prev == '-' => Ok(format!("7{suffix}")),
        Some(i) => Ok(format!("{}{suffix}", field.base + i as u32)),
        None if weekdays => Err(format!("`{token}` is not a day name; {}", field.hint)),
        None if field.names == MONTHS => Err(format!("`{token}` is not a month name; {}", field.hint)),
        None => Err(format!("`{token}` is not a number; {}", field.hint)),
    }
}

/// Whether no day ever satisfies the date fields. The Gregorian calendar, weekdays included,
/// repeats every 400 years, so one cycle of days decides it; an expression that matches at
/// all matches within eight years, and only an impossible one walks the whole cycle.
fn never_matches(cron: &Cron) -> bool {
    let start = NaiveDate::from_ymd_opt(2000, 1, 1).expect("a valid date");
    !start.iter_days().take(146_097).any(|d| {
        let weekday = croner::Weekday::from_days_from_sunday(d.weekday().num_days_from_sunday());
        let p = &cron.pattern;
        p.month_match(d.month()).unwrap_or(false) && p.day_match(d.year(), d.month(), d.day(), weekday).unwrap_or(false)
    })
}

impl CronExpr {
    /// The first fire time (epoch seconds) strictly after `after` (epoch seconds).
    fn next_after(&self, tz: Tz, after: i64) -> Option<i64> {
        let after = tz.timestamp_opt(after, 0).single()?;
        if !self.wall_clock {
            // croner's interval search visits every instant whose local time matches (rule 3).
            return self.cron.find_next_occurrence(&after, false).ok().map(|t| t.timestamp());
        }
        let mut wall = after.naive_local();
        if let LocalResult::Ambiguous(first, _) = tz.from_local_datetime(&wall)
            && first != after
        {
            // `after` is in the repeat of an overlap: the times left in it fired on the first pass.
            wall = end_of_repeat(tz, wall) - TimeDelta::seconds(1);
        }
        // A wall-clock time's first instant (or its gap's end) never decreases as the wall clock
        // advances, and every time after `wall` first happens after `after`, so the first step
        // already answers; the bound only makes "cannot loop forever" evident. croner's own
        // search gives up at the year 5000.
        for _ in 0..16 {
            wall = self.cron.find_next_occurrence(&wall, false).ok()?;
            let at = first_instant(tz, wall)?;
            if at > after {
                return Some(at.timestamp());
            }
        }
        None
    }
}

/// Rules 1 and 2: the first instant a wall-clock time happens, or the first after its gap.
fn first_instant(tz: Tz, wall: NaiveDateTime) -> Option<DateTime<Tz>> {
    match tz.from_local_datetime(&wall) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Some(t),
        LocalResult::None => GapInfo::new(&wall, &tz)?.end,
    }
}

/// The first wall-clock second after `wall` (which happens twice) that happens once.
fn end_of_repeat(tz: Tz, wall: NaiveDateTime) -> NaiveDateTime {
    let repeated = |s: i64| matches!(tz.from_local_datetime(&(wall + TimeDelta::seconds(s))), LocalResult::Ambiguous(..));
    // Gallop to a second past the overlap (overlaps last hours, a day at the very most), then bisect.
    let (mut lo, mut hi) = (0, 1);
    while repeated(hi) && hi < 1 << 22 {
        (lo, hi) = (hi, hi * 2);
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if repeated(mid) { lo = mid } else { hi = mid }
    }
    wall + TimeDelta::seconds(hi)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Epoch ms of an RFC 3339 time.
    fn ms(rfc3339: &str) -> i64 {
        DateTime::parse_from_rfc3339(rfc3339).expect("a valid test time").timestamp_millis()
    }

    fn rfc(ms: i64) -> String {
        DateTime::from_timestamp_millis(ms).expect("in range").to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }

    fn sched(cron: &str, timezone: &str) -> ScheduleConfig {
        ScheduleConfig::from_json(json!({"name": "s", "cron": cron, "timezone": timezone})).unwrap()
    }

    /// The first `n` fire times after `after`, as UTC RFC 3339.
    fn fires(cron: &str, timezone: &str, after: &str, n: usize) -> Vec<String> {
        let s = sched(cron, timezone);
        let mut at = ms(after);
        (0..n)
            .map(|_| {
                at = s.next_fire_after(at).expect("fires");
                rfc(at)
            })
            .collect()
    }

    #[test]
    fn defaults_patch_and_errors() {
        let c = ScheduleConfig::from_json(json!({"name": "daily-report", "cron": "0 9 * * MON-FRI"})).unwrap();
        assert_eq!((c.timezone.as_str(), c.input_template.as_str(), c.missed), ("UTC", DEFAULT_TEMPLATE, MissedPolicy::Skip));
        let p = c.patched(json!({"timezone": "Europe/Berlin", "missed": "fire_once"}).as_object().unwrap()).unwrap();
        assert_eq!((p.timezone.as_str(), p.missed, p.cron.as_str()), ("Europe/Berlin", MissedPolicy::FireOnce, "0 9 * * MON-FRI"));
        let r = p.patched(json!({"timezone": null, "missed": null}).as_object().unwrap()).unwrap();
        assert_eq!((r.timezone.as_str(), r.missed), ("UTC", MissedPolicy::Skip));
        assert_eq!(serde_json::to_value(MissedPolicy::FireOnce).unwrap(), json!("fire_once"));
        assert_eq!(MissedPolicy::parse(MissedPolicy::FireOnce.as_str()), Some(MissedPolicy::FireOnce));
        let e = |v| ScheduleConfig::from_json(v).unwrap_err();
        assert_eq!(e(json!({"name": "Bad Name", "cron": "* * * * *"})).param, "name");
        assert_eq!(e(json!({"name": "x"})).message, "missing field `cron`");
        assert_eq!(e(json!({"name": "x", "cron": "* * * * *", "missed": "catch_up"})).param, "missed");
        assert_eq!(e(json!({"name": "x", "cron": "* * * * *", "every": "day"})).param, "every");
        assert_eq!(e(json!({"name": "x", "cron": "* * * * *", "timezone": "Mars/Olympus"})).param, "timezone");
        let empty = e(json!({"name": "x", "cron": "* * * * *", "input_template": "  "}));
        assert_eq!((empty.param.as_str(), empty.message.as_str()), ("input_template", "is empty; leave it out to get the default input"));
        let long = e(json!({"name": "x", "cron": "* * * * *", "input_template": "x".repeat(MAX_TEMPLATE_CHARS + 1)}));
        assert_eq!(long.param, "input_template");
        assert_eq!(c.patched(json!({"cron": "* 25 * * *"}).as_object().unwrap()).unwrap_err().param, "cron");
    }

    fn cron_err(expr: &str) -> String {
        let e = check_cron(expr).expect_err(expr);
        assert_eq!(e.param, "cron");
        e.message
    }

    #[test]
    fn bad_expressions_name_the_field() {
        assert!(cron_err("* * * *").starts_with("has 4 fields; use 5 fields"), "{}", cron_err("* * * *"));
        assert!(cron_err("0 0 0 1 1 * 2030").starts_with("has 7 fields;"));
        assert!(cron_err("  ").starts_with("is empty;"));
        assert_eq!(cron_err("61 * * * *"), "field 1 (minute): `61` is out of range 0–59");
        assert_eq!(cron_err("* 25 * * *"), "field 2 (hour): `25` is out of range 0–23");
        assert_eq!(cron_err("60 * * * * *"), "field 1 (second): `60` is out of range 0–59");
        assert_eq!(cron_err("0 0 0 * 13 *"), "field 5 (month): `13` is out of range 1–12");
        assert_eq!(cron_err("* * 0 * *"), "field 3 (day of month): `0` is out of range 1–31");
        assert_eq!(cron_err("* * * * 8"), "field 5 (day of week): `8` is out of range 0–7");
        assert_eq!(cron_err("*/0 * * * *"), "field 1 (minute): `0` is out of range 1–60 for a step");
        assert_eq!(cron_err("0 9 * * FRI#6"), "field 5 (day of week): `6` is out of range 1–5 for the occurrence after `#`");
        let funday = cron_err("* * * * FUNDAY");
        assert!(funday.starts_with("field 5 (day of week): `FUNDAY` is not a day name; use 0–7"), "{funday}");
        assert!(cron_err("0 9 * MON *").starts_with("field 4 (month): `MON` is not a month name; use 1–12 or JAN–DEC"));
        assert!(cron_err("0 x * * *").starts_with("field 2 (hour): `x` is not a number; use 0–23"));
        assert!(cron_err("0 ? * * *").starts_with("field 2 (hour): `?` is not allowed here"));
        // Structure errors come from croner, still pinned to their field.
        let step = cron_err("5/10 * * * *");
        assert!(step.starts_with("field 1 (minute): `5/10` is not valid (Invalid step syntax"), "{step}");
        assert!(cron_err("0 9 * * FRI-MON").starts_with("field 5 (day of week): the range `FRI-MON` runs backwards"));
        assert!(cron_err("@reboot").starts_with("`@reboot` is not supported; use @hourly"));
        assert_eq!(cron_err("0 0 30 2 *"), "`0 0 30 2 *` matches no date (like 30 February); check the day-of-month and month fields");
        assert!(cron_err("0 0 31 4,6,9,11 *").contains("matches no date"));
    }

    #[test]
    fn accepted_expressions() {
        for e in [
            "*/15 * * * *",
            "0 9 * * MON-FRI",
            "0 9 * * mon-fri",
            "0 0 1 JAN,jul *",
            "0 22 * * FRI-SUN",
            "30 0 9 * * *",
            "0 0 L * *",
            "0 0 15W * *",
            "0 0 LW * *",
            "0 9 * * FRI#2",
            "0 9 * * 5L",
            "0 9 * * FRIL",
            "0 9 ? * MON",
            "0 0 29 2 *",
            "0 9-17/2 * * *",
            "@hourly",
            "@daily",
            "@weekly",
            "@monthly",
            "@yearly",
            "@ANNUALLY",
        ] {
            assert_eq!(check_cron(e), Ok(()), "{e}");
        }
    }

    #[test]
    fn timezones() {
        assert_eq!(check_timezone("Europe/Berlin").unwrap(), chrono_tz::Europe::Berlin);
        assert_eq!(check_timezone("UTC").unwrap(), chrono_tz::UTC);
        let e = check_timezone("Europe/Berln").unwrap_err();
        assert_eq!(e.param, "timezone");
        assert!(e.message.contains("`Europe/Berlin`"), "{}", e.message);
        assert_eq!(
            check_timezone("europe/berlin").unwrap_err().message,
            "`europe/berlin` is not an IANA time zone name; did you mean `Europe/Berlin`?"
        );
        assert!(check_timezone("").is_err());
    }

    #[test]
    fn every_fifteen_minutes() {
        let want = ["2026-05-04T10:15:00Z", "2026-05-04T10:30:00Z", "2026-05-04T10:45:00Z", "2026-05-04T11:00:00Z"];
        assert_eq!(fires("*/15 * * * *", "UTC", "2026-05-04T10:07:31Z", 4), want);
        // Strictly after, at millisecond precision.
        let s = sched("*/15 * * * *", "UTC");
        assert_eq!(s.next_fire_after(ms("2026-05-04T10:15:00Z")), Some(ms("2026-05-04T10:30:00Z")));
        assert_eq!(s.next_fire_after(ms("2026-05-04T10:14:59.999Z")), Some(ms("2026-05-04T10:15:00Z")));
        assert_eq!(s.next_fire_after(ms("2026-05-04T10:15:00Z") - 1), Some(ms("2026-05-04T10:15:00Z")));
    }

    #[test]
    fn weekdays_in_berlin_skip_the_weekend() {
        // Friday 6 March 2026, 10:00 CET; then Monday to Wednesday at 09:00 CET (08:00 UTC).
        let want = ["2026-03-09T08:00:00Z", "2026-03-10T08:00:00Z", "2026-03-11T08:00:00Z"];
        assert_eq!(fires("0 9 * * MON-FRI", "Europe/Berlin", "2026-03-06T09:00:00Z", 3), want);
        // In summer time 09:00 is 07:00 UTC: Friday 3 April, then Monday 6 April.
        assert_eq!(fires("0 9 * * MON-FRI", "Europe/Berlin", "2026-04-02T07:00:00Z", 2), ["2026-04-03T07:00:00Z", "2026-04-06T07:00:00Z"]);
    }

    #[test]
    fn six_fields_with_seconds() {
        assert_eq!(
            fires("*/20 * * * * *", "UTC", "2026-05-04T10:00:05Z", 3),
            ["2026-05-04T10:00:20Z", "2026-05-04T10:00:40Z", "2026-05-04T10:01:00Z"]
        );
        assert_eq!(fires("30 0 9 * * *", "Europe/Berlin", "2026-05-04T08:00:00Z", 2), ["2026-05-05T07:00:30Z", "2026-05-06T07:00:30Z"]);
    }

    #[test]
    fn year_boundary() {
        assert_eq!(fires("59 23 31 12 *", "UTC", "2026-12-31T23:59:00Z", 1), ["2027-12-31T23:59:00Z"]);
        // Midnight of New Year in Berlin is 23:00 UTC on 31 December.
        assert_eq!(fires("@yearly", "Europe/Berlin", "2026-06-01T00:00:00Z", 2), ["2026-12-31T23:00:00Z", "2027-12-31T23:00:00Z"]);
        assert_eq!(fires("0 0 29 2 *", "UTC", "2026-01-01T00:00:00Z", 2), ["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"]);
        // The same through croner's zone-aware search (a wildcard expression).
        assert_eq!(fires("*/30 * 29 2 *", "Europe/Berlin", "2026-03-01T00:00:00Z", 2), ["2028-02-28T23:00:00Z", "2028-02-28T23:30:00Z"]);
    }

    #[test]
    fn never_fires_is_none_and_terminates() {
        // Validation refuses these, so build them by hand as a stored row could be.
        for (cron, timezone) in [("0 0 30 2 *", "UTC"), ("0 0 30 2 *", "Europe/Berlin"), ("*/5 * 31 4 *", "America/New_York")] {
            let s = ScheduleConfig { cron: cron.into(), timezone: timezone.into(), ..sched("* * * * *", "UTC") };
            assert_eq!(s.next_fire_after(ms("2026-01-01T00:00:00Z")), None, "{cron} in {timezone}");
        }
        // Out-of-range instants and invalid rows do not panic.
        assert_eq!(sched("* * * * *", "UTC").next_fire_after(i64::MAX), None);
        let bad = ScheduleConfig { timezone: "Nowhere".into(), ..sched("* * * * *", "UTC") };
        assert_eq!(bad.next_fire_after(0), None);
    }

    // Europe/Berlin 2026: clocks jump 02:00 CET → 03:00 CEST on 29 March (01:00 UTC) and go back
    // 03:00 CEST → 02:00 CET on 25 October (01:00 UTC).

    #[test]
    fn berlin_spring_forward_fires_a_missing_time_after_the_gap() {
        let want = ["2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"];
        assert_eq!(fires("30 2 * * *", "Europe/Berlin", "2026-03-27T12:00:00Z", 3), want);
        // A list is a wall-clock expression too (croner alone would skip this 02:30).
        let want = ["2026-03-29T01:00:00Z", "2026-03-29T12:30:00Z", "2026-03-30T00:30:00Z"];
        assert_eq!(fires("30 2,14 * * *", "Europe/Berlin", "2026-03-28T14:00:00Z", 3), want);
        // 02:00, 02:30 and 03:00 all come due at 03:00 CEST and fire once; 03:30 as usual.
        let want = ["2026-03-29T00:00:00Z", "2026-03-29T00:30:00Z", "2026-03-29T01:00:00Z", "2026-03-29T01:30:00Z", "2026-03-29T23:00:00Z"];
        assert_eq!(fires("0,30 1-3 * * *", "Europe/Berlin", "2026-03-28T23:45:00Z", 5), want);
        assert_eq!(fires("0,30 1-3 * * *", "Europe/Berlin", "2026-03-29T00:31:00Z", 3), want[2..]);
    }

    #[test]
    fn berlin_fall_back_fires_a_repeated_time_once() {
        let want = ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"];
        assert_eq!(fires("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", 2), want);
        // Counting from inside the repeat (02:15 CET, the second pass) does not fire 02:30 again.
        assert_eq!(fires("30 2 * * *", "Europe/Berlin", "2026-10-25T01:15:00Z", 1), ["2026-10-26T01:30:00Z"]);
        assert_eq!(
            fires("30 2,14 * * *", "Europe/Berlin", "2026-10-25T00:00:00Z", 3),
            ["2026-10-25T00:30:00Z", "2026-10-25T13:30:00Z", "2026-10-26T01:30:00Z"]
        );
        // From the repeat, the next wall-clock time after it (03:00 CET) is the next fire.
        assert_eq!(fires("0,30 2,3 * * *", "Europe/Berlin", "2026-10-25T01:45:00Z", 2), ["2026-10-25T02:00:00Z", "2026-10-25T02:30:00Z"]);
    }

    #[test]
    fn berlin_wildcards_follow_elapsed_time() {
        // Every hour at :30 — twice at 02:30 in October (CEST, then CET), skipped hour in March.
        let want = ["2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z", "2026-10-25T02:30:00Z"];
        assert_eq!(fires("30 * * * *", "Europe/Berlin", "2026-10-25T00:00:00Z", 3), want);
        assert_eq!(fires("30 * * * *", "Europe/Berlin", "2026-03-29T00:00:00Z", 2), ["2026-03-29T00:30:00Z", "2026-03-29T01:30:00Z"]);
        // Every 15 minutes: no gap, no duplicate, whichever side of the change we count from.
        let march = ["2026-03-29T00:45:00Z", "2026-03-29T01:00:00Z", "2026-03-29T01:15:00Z"];
        assert_eq!(fires("*/15 * * * *", "Europe/Berlin", "2026-03-29T00:35:00Z", 3), march);
        let october: Vec<String> = (0..9).map(|i| rfc(ms("2026-10-25T00:15:00Z") + i * 15 * 60_000)).collect();
        assert_eq!(fires("*/15 * * * *", "Europe/Berlin", "2026-10-25T00:05:00Z", 9), october);
        assert_eq!(fires("*/15 * * * *", "Europe/Berlin", "2026-10-25T01:20:00Z", 2), ["2026-10-25T01:30:00Z", "2026-10-25T01:45:00Z"]);
        // A wildcard minute with a fixed hour follows cronie: both passes of 02:xx in October.
        let want = ["2026-10-25T00:00:00Z", "2026-10-25T00:30:00Z", "2026-10-25T01:00:00Z", "2026-10-25T01:30:00Z", "2026-10-26T01:00:00Z"];
        assert_eq!(fires("*/30 2 * * *", "Europe/Berlin", "2026-10-24T23:00:00Z", 5), want);
    }

    // America/New_York 2026: 02:00 EST → 03:00 EDT on 8 March (07:00 UTC); 02:00 EDT → 01:00 EST
    // on 1 November (06:00 UTC).

    #[test]
    fn new_york_transitions() {
        let want = ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"];
        assert_eq!(fires("30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", 2), want);
        let want = ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"];
        assert_eq!(fires("30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z", 2), want);
        assert_eq!(fires("30 1 * * *", "America/New_York", "2026-11-01T06:10:00Z", 1), ["2026-11-02T06:30:00Z"]);
        let want = ["2026-11-01T05:00:00Z", "2026-11-01T06:00:00Z", "2026-11-01T07:00:00Z"];
        assert_eq!(fires("0 * * * *", "America/New_York", "2026-11-01T04:30:00Z", 3), want);
        assert_eq!(fires("0 * * * *", "America/New_York", "2026-03-08T06:30:00Z", 2), ["2026-03-08T07:00:00Z", "2026-03-08T08:00:00Z"]);
    }

    #[test]
    fn single_fixed_times_agree_with_croner() {
        // Where croner itself treats an expression as fixed-time, our wall-clock search and its
        // zone-aware one must agree, minute by minute across both changes.
        for (expr, tz, from) in [
            ("30 2 * * *", chrono_tz::Europe::Berlin, "2026-03-28T22:00:00Z"),
            ("30 2 * * *", chrono_tz::Europe::Berlin, "2026-10-24T22:00:00Z"),
            ("0 2 * * *", chrono_tz::America::New_York, "2026-03-07T22:00:00Z"),
            ("45 1 * * *", chrono_tz::America::New_York, "2026-10-31T22:00:00Z"),
        ] {
            let ours = parse_cron(expr).unwrap();
            assert!(ours.wall_clock);
            for minute in (0..6 * 60).step_by(5) {
                let after = ms(from) / 1000 + minute * 60;
                let croner = ours.cron.find_next_occurrence(&tz.timestamp_opt(after, 0).unwrap(), false).unwrap().timestamp();
                assert_eq!(ours.next_after(tz, after), Some(croner), "{expr} in {tz} after {}", rfc(after * 1000));
            }
        }
    }
}

/// Why a wall-clock time the user typed cannot be resolved; the messages say how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WallTimeError {
    /// The time zone is not an IANA zone.
    #[error("{0}")]
    TimeZone(String),
    /// The text is not a time in any accepted form.
    #[error("{0}")]
    Time(String),
}

/// A wall-clock time the user typed, as epoch ms: RFC 3339 as is; else a local time in
/// `time_zone` (IANA; default UTC): `HH:MM[:SS]` is its next occurrence after `now_ms`,
/// `YYYY-MM-DD[T ]HH:MM[:SS]` that date and time. A local time that does not exist (a DST gap)
/// is moved to the first instant after the gap; an ambiguous one takes the earlier instant.
pub fn resolve_wall_time(raw: &str, time_zone: Option<&str>, now_ms: i64) -> Result<i64, WallTimeError> {
    let raw = raw.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(t.timestamp_millis());
    }
    let tz: Tz = match time_zone {
        None => Tz::UTC,
        Some(z) => check_timezone(z).map_err(|e| WallTimeError::TimeZone(e.message))?,
    };
    let to_instant = |naive: NaiveDateTime| -> i64 {
        match tz.from_local_datetime(&naive) {
            LocalResult::Single(t) => t.timestamp_millis(),
            LocalResult::Ambiguous(a, _) => a.timestamp_millis(),
            // In a gap: the first instant after it (one hour later is past every real gap's end
            // when stepped minute by minute).
            LocalResult::None => (1..=180)
                .find_map(|m| tz.from_local_datetime(&(naive + TimeDelta::minutes(m))).earliest())
                .map(|t| t.timestamp_millis())
                .unwrap_or(now_ms),
        }
    };
    for fmt in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(raw, fmt) {
            return Ok(to_instant(naive));
        }
    }
    for fmt in ["%H:%M:%S", "%H:%M"] {
        if let Ok(time) = chrono::NaiveTime::parse_from_str(raw, fmt) {
            let now = tz.timestamp_millis_opt(now_ms).single().ok_or_else(|| WallTimeError::Time("the clock is out of range".into()))?;
            let today = now.date_naive();
            for day in 0..3 {
                let at = to_instant((today + TimeDelta::days(day)).and_time(time));
                if at > now_ms {
                    return Ok(at);
                }
            }
        }
    }
    Err(WallTimeError::Time(format!(
        "`{}` is not a time: use RFC 3339 (2026-11-24T09:00:00+01:00), or a local `09:00` / `2026-11-24T09:00` with `time_zone`",
        crate::ids::shorten(raw)
    )))
}

#[cfg(test)]
mod wall_time_tests {
    use super::*;

    #[test]
    fn local_times_resolve_in_their_zone() {
        // 2026-11-23T16:00:00Z; Paris is UTC+1 in winter.
        let now = DateTime::parse_from_rfc3339("2026-11-23T16:00:00Z").unwrap().timestamp_millis();
        let at =
            |raw: &str, tz: Option<&str>| DateTime::from_timestamp_millis(resolve_wall_time(raw, tz, now).unwrap()).unwrap().to_rfc3339();
        assert_eq!(at("09:00", Some("Europe/Paris")), "2026-11-24T08:00:00+00:00", "09:00 has passed today in Paris: tomorrow");
        assert_eq!(at("18:30", Some("Europe/Paris")), "2026-11-23T17:30:00+00:00", "still ahead today");
        assert_eq!(at("09:00", None), "2026-11-24T09:00:00+00:00", "UTC by default");
        assert_eq!(at("2026-12-01T07:15", Some("America/New_York")), "2026-12-01T12:15:00+00:00");
        assert_eq!(at("2026-12-01T07:15:00+02:00", Some("America/New_York")), "2026-12-01T05:15:00+00:00", "RFC 3339 wins");
        // A spring-forward gap: 02:30 does not exist in Paris on 2027-03-28.
        assert_eq!(at("2027-03-28T02:30", Some("Europe/Paris")), "2027-03-28T01:00:00+00:00");
        assert!(matches!(resolve_wall_time("tomorrow-ish", None, now), Err(WallTimeError::Time(m)) if m.contains("is not a time")));
        assert!(matches!(resolve_wall_time("09:00", Some("Mars/Olympus"), now), Err(WallTimeError::TimeZone(_))));
    }
}
