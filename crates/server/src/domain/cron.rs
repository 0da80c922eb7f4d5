//! Pipeline schedules' cron patterns and time zones, and when a schedule runs next. Pure: no
//! clock, no I/O — callers pass "now" — so the scheduler, the API and the tests agree.
//!
//! GitLab parses `cron` with Fugit in `cron_timezone` (GitLab: lib/gitlab/ci/cron_parser.rb):
//! five fields (or six with seconds first), names (`MON`, `JAN`), ranges, steps, `L`, `#`,
//! the `@daily`-style aliases. Pipewright parses with croner, which reads the same syntax;
//! both treat a restricted day-of-month and day-of-week as "either" (Vixie cron). Years (a
//! seventh field) are refused, as Fugit refuses them. The time zone is an IANA name
//! (`Europe/Berlin`) or one of Rails' friendly names (`Pacific Time (US & Canada)`), which
//! GitLab maps to IANA through `ActiveSupport::TimeZone::MAPPING` before asking Fugit.
//!
//! Validation follows GitLab's validators: the pattern is checked in UTC and the zone with
//! `* * * * *` (app/validators/cron_validator.rb, app/validators/cron_timezone_validator.rb),
//! so each field gets its own `syntax is invalid`.

use chrono::{DateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use pipewright_core::Timestamp;

/// The longest `cron` and `cron_timezone` accepted (GitLab's columns are `varchar(255)`).
pub const MAX_LENGTH: usize = 255;

/// A schedule's pattern in its time zone, ready to say when it runs next.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    cron: Cron,
    zone: Tz,
}

/// Which of the two fields is invalid (both may be).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Invalid {
    pub cron: bool,
    pub cron_timezone: bool,
}

impl CronSchedule {
    /// Parses a pattern in a time zone; [`Invalid`] names the fields GitLab would refuse.
    pub fn parse(cron: &str, timezone: &str) -> Result<CronSchedule, Invalid> {
        let parsed = parse_pattern(cron);
        let zone = time_zone(timezone);
        match (parsed, zone) {
            (Some(cron), Some(zone)) => Ok(CronSchedule { cron, zone }),
            (cron, zone) => Err(Invalid {
                cron: cron.is_none(),
                cron_timezone: zone.is_none(),
            }),
        }
    }

    /// When a schedule whose last run was claimed at `now` runs next: the pattern's first
    /// time strictly after `now`, in its zone (daylight-saving gaps and repeats as croner
    /// resolves them: a time skipped runs at the first instant after the gap, a repeated one
    /// once). `None` if the pattern never matches again (`0 0 30 2 *`).
    ///
    /// GitLab rounds this up to its schedule worker's next run (every few minutes,
    /// app/models/concerns/cron_schedulable.rb) so a schedule never runs more often than the
    /// worker; Pipewright's scheduler looks every few seconds, so it rounds up to the next
    /// whole minute only: a six-field pattern with seconds still runs at most once a minute.
    pub fn next_after(&self, now: Timestamp) -> Option<Timestamp> {
        let start = Utc
            .timestamp_millis_opt(now.millis())
            .single()?
            .with_timezone(&self.zone);
        let next = self.cron.find_next_occurrence(&start, false).ok()?;
        Some(round_up_to_minute(next.with_timezone(&Utc)))
    }
}

/// The pattern, if croner reads it as Fugit would: five or six fields, no year.
fn parse_pattern(cron: &str) -> Option<Cron> {
    let cron = cron.trim();
    if cron.is_empty() || cron.len() > MAX_LENGTH {
        return None;
    }
    let parsed = CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(cron)
        .ok()?;
    // A pattern that can never match (February 30th) is refused here rather than failing
    // every time the scheduler asks: Fugit's `next_time` gives up on it too.
    let probe = Utc.timestamp_millis_opt(0).single()?;
    parsed.find_next_occurrence(&probe, false).ok()?;
    Some(parsed)
}

/// An IANA zone name, or a Rails name GitLab maps to one (`Tokyo` → `Asia/Tokyo`).
pub fn time_zone(name: &str) -> Option<Tz> {
    if name.is_empty() || name.len() > MAX_LENGTH {
        return None;
    }
    let iana = RAILS_ZONES
        .iter()
        .find(|(rails, _)| *rails == name)
        .map_or(name, |(_, iana)| iana);
    iana.parse().ok()
}

fn round_up_to_minute(at: DateTime<Utc>) -> Timestamp {
    let whole = at.with_second(0).and_then(|t| t.with_nanosecond(0));
    match whole {
        Some(minute) if minute != at => Timestamp(minute.timestamp_millis() + 60_000),
        _ => Timestamp(at.timestamp_millis()),
    }
}

/// Rails' friendly zone names and the IANA zones they stand for
/// (activesupport/lib/active_support/values/time_zone.rb, `MAPPING`), which GitLab accepts
/// in `cron_timezone` (GitLab: lib/gitlab/ci/cron_parser.rb, `timezone_name`).
const RAILS_ZONES: &[(&str, &str)] = &[
    ("International Date Line West", "Etc/GMT+12"),
    ("Midway Island", "Pacific/Midway"),
    ("American Samoa", "Pacific/Pago_Pago"),
    ("Hawaii", "Pacific/Honolulu"),
    ("Alaska", "America/Juneau"),
    ("Pacific Time (US & Canada)", "America/Los_Angeles"),
    ("Tijuana", "America/Tijuana"),
    ("Mountain Time (US & Canada)", "America/Denver"),
    ("Arizona", "America/Phoenix"),
    ("Chihuahua", "America/Chihuahua"),
    ("Mazatlan", "America/Mazatlan"),
    ("Central Time (US & Canada)", "America/Chicago"),
    ("Saskatchewan", "America/Regina"),
    ("Guadalajara", "America/Mexico_City"),
    ("Mexico City", "America/Mexico_City"),
    ("Monterrey", "America/Monterrey"),
    ("Central America", "America/Guatemala"),
    ("Eastern Time (US & Canada)", "America/New_York"),
    ("Indiana (East)", "America/Indiana/Indianapolis"),
    ("Bogota", "America/Bogota"),
    ("Lima", "America/Lima"),
    ("Quito", "America/Lima"),
    ("Atlantic Time (Canada)", "America/Halifax"),
    ("Caracas", "America/Caracas"),
    ("La Paz", "America/La_Paz"),
    ("Santiago", "America/Santiago"),
    ("Newfoundland", "America/St_Johns"),
    ("Brasilia", "America/Sao_Paulo"),
    ("Buenos Aires", "America/Argentina/Buenos_Aires"),
    ("Montevideo", "America/Montevideo"),
    ("Georgetown", "America/Guyana"),
    ("Puerto Rico", "America/Puerto_Rico"),
    ("Greenland", "America/Godthab"),
    ("Mid-Atlantic", "Atlantic/South_Georgia"),
    ("Azores", "Atlantic/Azores"),
    ("Cape Verde Is.", "Atlantic/Cape_Verde"),
    ("Dublin", "Europe/Dublin"),
    ("Edinburgh", "Europe/London"),
    ("Lisbon", "Europe/Lisbon"),
    ("London", "Europe/London"),
    ("Casablanca", "Africa/Casablanca"),
    ("Monrovia", "Africa/Monrovia"),
    ("UTC", "Etc/UTC"),
    ("Belgrade", "Europe/Belgrade"),
    ("Bratislava", "Europe/Bratislava"),
    ("Budapest", "Europe/Budapest"),
    ("Ljubljana", "Europe/Ljubljana"),
    ("Prague", "Europe/Prague"),
    ("Sarajevo", "Europe/Sarajevo"),
    ("Skopje", "Europe/Skopje"),
    ("Warsaw", "Europe/Warsaw"),
    ("Zagreb", "Europe/Zagreb"),
    ("Brussels", "Europe/Brussels"),
    ("Copenhagen", "Europe/Copenhagen"),
    ("Madrid", "Europe/Madrid"),
    ("Paris", "Europe/Paris"),
    ("Amsterdam", "Europe/Amsterdam"),
    ("Berlin", "Europe/Berlin"),
    ("Bern", "Europe/Zurich"),
    ("Zurich", "Europe/Zurich"),
    ("Rome", "Europe/Rome"),
    ("Stockholm", "Europe/Stockholm"),
    ("Vienna", "Europe/Vienna"),
    ("West Central Africa", "Africa/Algiers"),
    ("Bucharest", "Europe/Bucharest"),
    ("Cairo", "Africa/Cairo"),
    ("Helsinki", "Europe/Helsinki"),
    ("Kyiv", "Europe/Kiev"),
    ("Riga", "Europe/Riga"),
    ("Sofia", "Europe/Sofia"),
    ("Tallinn", "Europe/Tallinn"),
    ("Vilnius", "Europe/Vilnius"),
    ("Athens", "Europe/Athens"),
    ("Istanbul", "Europe/Istanbul"),
    ("Minsk", "Europe/Minsk"),
    ("Jerusalem", "Asia/Jerusalem"),
    ("Harare", "Africa/Harare"),
    ("Pretoria", "Africa/Johannesburg"),
    ("Kaliningrad", "Europe/Kaliningrad"),
    ("Moscow", "Europe/Moscow"),
    ("St. Petersburg", "Europe/Moscow"),
    ("Volgograd", "Europe/Volgograd"),
    ("Samara", "Europe/Samara"),
    ("Kuwait", "Asia/Kuwait"),
    ("Riyadh", "Asia/Riyadh"),
    ("Nairobi", "Africa/Nairobi"),
    ("Baghdad", "Asia/Baghdad"),
    ("Tehran", "Asia/Tehran"),
    ("Abu Dhabi", "Asia/Muscat"),
    ("Muscat", "Asia/Muscat"),
    ("Baku", "Asia/Baku"),
    ("Tbilisi", "Asia/Tbilisi"),
    ("Yerevan", "Asia/Yerevan"),
    ("Kabul", "Asia/Kabul"),
    ("Ekaterinburg", "Asia/Yekaterinburg"),
    ("Islamabad", "Asia/Karachi"),
    ("Karachi", "Asia/Karachi"),
    ("Tashkent", "Asia/Tashkent"),
    ("Chennai", "Asia/Kolkata"),
    ("Kolkata", "Asia/Kolkata"),
    ("Mumbai", "Asia/Kolkata"),
    ("New Delhi", "Asia/Kolkata"),
    ("Kathmandu", "Asia/Kathmandu"),
    ("Astana", "Asia/Dhaka"),
    ("Dhaka", "Asia/Dhaka"),
    ("Sri Jayawardenepura", "Asia/Colombo"),
    ("Almaty", "Asia/Almaty"),
    ("Novosibirsk", "Asia/Novosibirsk"),
    ("Rangoon", "Asia/Rangoon"),
    ("Bangkok", "Asia/Bangkok"),
    ("Hanoi", "Asia/Bangkok"),
    ("Jakarta", "Asia/Jakarta"),
    ("Krasnoyarsk", "Asia/Krasnoyarsk"),
    ("Beijing", "Asia/Shanghai"),
    ("Chongqing", "Asia/Chongqing"),
    ("Hong Kong", "Asia/Hong_Kong"),
    ("Urumqi", "Asia/Urumqi"),
    ("Kuala Lumpur", "Asia/Kuala_Lumpur"),
    ("Singapore", "Asia/Singapore"),
    ("Taipei", "Asia/Taipei"),
    ("Perth", "Australia/Perth"),
    ("Irkutsk", "Asia/Irkutsk"),
    ("Ulaanbaatar", "Asia/Ulaanbaatar"),
    ("Seoul", "Asia/Seoul"),
    ("Osaka", "Asia/Tokyo"),
    ("Sapporo", "Asia/Tokyo"),
    ("Tokyo", "Asia/Tokyo"),
    ("Yakutsk", "Asia/Yakutsk"),
    ("Darwin", "Australia/Darwin"),
    ("Adelaide", "Australia/Adelaide"),
    ("Canberra", "Australia/Melbourne"),
    ("Melbourne", "Australia/Melbourne"),
    ("Sydney", "Australia/Sydney"),
    ("Brisbane", "Australia/Brisbane"),
    ("Hobart", "Australia/Hobart"),
    ("Vladivostok", "Asia/Vladivostok"),
    ("Guam", "Pacific/Guam"),
    ("Port Moresby", "Pacific/Port_Moresby"),
    ("Magadan", "Asia/Magadan"),
    ("Srednekolymsk", "Asia/Srednekolymsk"),
    ("Solomon Is.", "Pacific/Guadalcanal"),
    ("New Caledonia", "Pacific/Noumea"),
    ("Fiji", "Pacific/Fiji"),
    ("Kamchatka", "Asia/Kamchatka"),
    ("Marshall Is.", "Pacific/Majuro"),
    ("Auckland", "Pacific/Auckland"),
    ("Wellington", "Pacific/Auckland"),
    ("Nuku'alofa", "Pacific/Tongatapu"),
    ("Tokelau Is.", "Pacific/Fakaofo"),
    ("Chatham Is.", "Pacific/Chatham"),
    ("Samoa", "Pacific/Apia"),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse(text).expect("a time")
    }

    fn next(cron: &str, zone: &str, now: &str) -> Option<String> {
        let schedule = CronSchedule::parse(cron, zone).expect("valid");
        schedule.next_after(at(now)).map(|t| t.to_gitlab())
    }

    #[test]
    fn the_next_run_is_the_first_match_strictly_after_now() {
        assert_eq!(
            next("* * * * *", "UTC", "2026-03-01T10:00:00Z").as_deref(),
            Some("2026-03-01T10:01:00.000Z")
        );
        assert_eq!(
            next("0 4 * * *", "UTC", "2026-03-01T04:00:30Z").as_deref(),
            Some("2026-03-02T04:00:00.000Z")
        );
    }

    #[test]
    fn time_zones_are_iana_or_rails_names() {
        // 09:00 in Tokyo is 00:00 UTC.
        for zone in ["Asia/Tokyo", "Tokyo", "Osaka"] {
            assert_eq!(
                next("0 9 * * *", zone, "2026-03-01T01:00:00Z").as_deref(),
                Some("2026-03-02T00:00:00.000Z"),
                "{zone}"
            );
        }
        assert_eq!(
            next(
                "0 9 * * *",
                "Pacific Time (US & Canada)",
                "2026-07-01T00:00:00Z"
            )
            .as_deref(),
            Some("2026-07-01T16:00:00.000Z"),
            "PDT is UTC-7"
        );
    }

    #[test]
    fn a_time_skipped_by_daylight_saving_runs_after_the_gap() {
        // Europe/Berlin skips 02:00–03:00 on 2026-03-29.
        assert_eq!(
            next("30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z").as_deref(),
            Some("2026-03-29T01:00:00.000Z")
        );
    }

    #[test]
    fn seconds_never_make_a_schedule_run_more_than_once_a_minute() {
        assert_eq!(
            next("*/10 * * * * *", "UTC", "2026-03-01T10:00:00Z").as_deref(),
            Some("2026-03-01T10:01:00.000Z")
        );
    }

    #[test]
    fn invalid_fields_are_named_as_gitlab_names_them() {
        let invalid = |cron, zone| CronSchedule::parse(cron, zone).err();
        let cron_only = Some(Invalid {
            cron: true,
            cron_timezone: false,
        });
        assert_eq!(invalid("not a cron", "UTC"), cron_only);
        assert_eq!(invalid("* * * *", "UTC"), cron_only);
        assert_eq!(invalid("61 * * * *", "UTC"), cron_only);
        assert_eq!(invalid("0 0 30 2 *", "UTC"), cron_only, "never matches");
        assert_eq!(invalid("0 0 1 1 * 2030", "UTC"), cron_only, "no years");
        assert_eq!(invalid("", "UTC"), cron_only);
        assert_eq!(
            invalid("* * * * *", "Mars/Olympus"),
            Some(Invalid {
                cron: false,
                cron_timezone: true,
            })
        );
        assert_eq!(
            invalid("nope", "nowhere"),
            Some(Invalid {
                cron: true,
                cron_timezone: true,
            })
        );
        for ok in [
            "@daily",
            "0 */2 * * MON-FRI",
            "0 0 L * *",
            "0 0 * * 5#2",
            "0 0 1 JAN *",
        ] {
            assert!(CronSchedule::parse(ok, "UTC").is_ok(), "{ok}");
        }
    }
}
