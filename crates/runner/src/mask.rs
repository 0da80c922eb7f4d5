//! Replacing masked values (and the job token) with `[MASKED]` before a log leaves the runner.
//! Output is masked a line at a time, so a value is caught even when the process wrote it in
//! pieces; a masked value containing a newline is masked line by line.

#[derive(Debug, Clone, Default)]
pub struct Masker {
    secrets: Vec<String>,
}

impl Masker {
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> = secrets.into_iter().filter(|s| s.len() >= 4).collect();
        // Longest first, so a secret that contains another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Masker { secrets }
    }

    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "[MASKED]");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::Masker;

    #[test]
    fn masks_every_occurrence_longest_first() {
        let m = Masker::new([
            "glcbt-abcdef".to_string(),
            "abcd".to_string(),
            "x".to_string(),
        ]);
        assert_eq!(
            m.mask("token glcbt-abcdef and abcd, x stays"),
            "token [MASKED] and [MASKED], x stays"
        );
    }
}
