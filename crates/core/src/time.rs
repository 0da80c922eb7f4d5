//! Timestamps: stored as integer milliseconds since the Unix epoch (portable across SQLite and
//! PostgreSQL), rendered the way GitLab's API does (`2016-01-07T09:53:58.235Z`).

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

/// Milliseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn now() -> Self {
        Timestamp(Utc::now().timestamp_millis())
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    pub fn to_datetime(self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.0).unwrap_or_default()
    }

    /// GitLab's API format: ISO 8601, UTC, milliseconds, `Z`.
    pub fn to_gitlab(self) -> String {
        self.to_datetime()
            .to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    /// Parses what GitLab accepts for datetime parameters: RFC 3339, or a bare date (midnight UTC).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
            return Some(Timestamp(dt.timestamp_millis()));
        }
        let date = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
        let dt = date.and_hms_opt(0, 0, 0)?.and_utc();
        Some(Timestamp(dt.timestamp_millis()))
    }

    /// The calendar date (UTC), as GitLab shows token expiry dates.
    pub fn to_date_string(self) -> String {
        self.to_datetime().format("%Y-%m-%d").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_gitlab() {
        let t = Timestamp::parse("2016-01-07T09:53:58.235Z").expect("valid");
        assert_eq!(t.to_gitlab(), "2016-01-07T09:53:58.235Z");
        assert_eq!(
            Timestamp::parse("2030-02-03").map(|t| t.to_gitlab()),
            Some("2030-02-03T00:00:00.000Z".to_string())
        );
        assert_eq!(Timestamp::parse("01/01/2050"), None);
    }
}
