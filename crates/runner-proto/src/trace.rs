//! `PATCH /api/v4/jobs/:id/trace`: appending to a job's log. The runner sends a chunk with
//! `Content-Range: start-end` (inclusive byte offsets, no `bytes ` unit); the server answers
//! `Range: 0-size` (its log's length), `Job-Status` (so a canceled job stops) and
//! `X-GitLab-Trace-Update-Interval` (seconds until the next chunk). GitLab: `patch '/:id/trace'`
//! in `lib/api/ci/runner.rb` and `app/services/ci/append_build_trace_service.rb`.

// Header names are case-insensitive; they are written in lowercase, as HTTP/2 writes them and
// as `http::HeaderName::from_static` requires (GitLab writes `Job-Status`, `Content-Range`).

/// The job token header of trace and artifact requests (`JOB-TOKEN`).
pub const JOB_TOKEN: &str = "job-token";
/// Where a log chunk goes: `start-end`, see [`ContentRange`].
pub const CONTENT_RANGE: &str = "content-range";
/// The server's log length after a chunk (`0-size`), also on a 416; see [`range_size`].
pub const RANGE: &str = "range";
/// The job's status, on trace and update answers (`canceled` tells a runner to stop).
pub const JOB_STATUS: &str = "job-status";
/// Seconds the runner should wait before sending the next chunk
/// (`X-GitLab-Trace-Update-Interval`).
pub const TRACE_UPDATE_INTERVAL: &str = "x-gitlab-trace-update-interval";
/// On a 204 from `POST /jobs/request`: the runner's queue version, sent back as `last_update`
/// (`X-GitLab-Last-Update`).
pub const LAST_UPDATE: &str = "x-gitlab-last-update";

/// A log chunk's place: bytes `start..=end` of the job's log.
///
/// GitLab reads only `start` and takes the length from the body, because older runners sent an
/// `end` one past the last byte (`append_build_trace_service.rb`, gitlab-runner#3275); so
/// `end` is carried, never trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentRange {
    pub start: u64,
    pub end: u64,
}

/// A `Content-Range` value that is not `start-end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentRangeError;

impl std::fmt::Display for ContentRangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Content-Range is not start-end")
    }
}

impl std::error::Error for ContentRangeError {}

impl ContentRange {
    /// The range of `len` bytes written at `offset`; `None` for an empty chunk (which has no
    /// inclusive range, and which runners never send).
    pub fn of_chunk(offset: u64, len: u64) -> Option<ContentRange> {
        let end = offset.checked_add(len)?.checked_sub(1)?;
        (len > 0).then_some(ContentRange { start: offset, end })
    }

    /// Reads `start-end`. Also accepts what HTTP clients write for a range (`bytes 0-9`,
    /// `0-9/10`) and surrounding spaces, as the server always has.
    pub fn parse(value: &str) -> Result<ContentRange, ContentRangeError> {
        let value = value.trim();
        let value = value.strip_prefix("bytes ").unwrap_or(value);
        let (start, end) = value.split_once('-').ok_or(ContentRangeError)?;
        let end = end.trim().split('/').next().unwrap_or_default();
        Ok(ContentRange {
            start: start.trim().parse().map_err(|_| ContentRangeError)?,
            end: end.parse().map_err(|_| ContentRangeError)?,
        })
    }
}

impl std::fmt::Display for ContentRange {
    /// `start-end`, as GitLab Runner writes it (no unit).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

impl std::str::FromStr for ContentRange {
    type Err = ContentRangeError;

    fn from_str(value: &str) -> Result<ContentRange, ContentRangeError> {
        ContentRange::parse(value)
    }
}

/// The log length in a server's `Range: 0-size` answer.
pub fn range_size(value: &str) -> Option<u64> {
    let (_, size) = value.trim().split_once('-')?;
    size.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_is_written_as_its_inclusive_range() {
        let range = ContentRange::of_chunk(0, 271).expect("a chunk");
        assert_eq!(range.to_string(), "0-270");
        assert_eq!(
            ContentRange::of_chunk(271, 1).map(|r| r.to_string()),
            Some("271-271".into())
        );
        assert_eq!(ContentRange::of_chunk(5, 0), None);
    }

    #[test]
    fn ranges_read_back_as_written_and_as_http_clients_write_them() {
        for (text, start, end) in [
            ("0-270", 0, 270),
            ("bytes 10-19", 10, 19),
            (" 5-9/10 ", 5, 9),
        ] {
            assert_eq!(
                ContentRange::parse(text),
                Ok(ContentRange { start, end }),
                "{text}"
            );
        }
        for bad in ["", "12", "-3", "a-b", "1-", "1--2"] {
            assert_eq!(ContentRange::parse(bad), Err(ContentRangeError), "{bad:?}");
        }
    }

    #[test]
    fn header_names_are_lowercase_so_every_http_library_takes_them_as_they_are() {
        for name in [
            JOB_TOKEN,
            CONTENT_RANGE,
            RANGE,
            JOB_STATUS,
            TRACE_UPDATE_INTERVAL,
            LAST_UPDATE,
        ] {
            assert_eq!(name, name.to_ascii_lowercase());
        }
    }

    #[test]
    fn the_servers_range_answer_gives_its_log_length() {
        assert_eq!(range_size("0-1024"), Some(1024));
        assert_eq!(range_size("garbage"), None);
    }
}
