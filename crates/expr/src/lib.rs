//! GitLab's CI/CD expression language, as used by `rules:if`, `workflow:rules:if` and
//! `only/except:variables`. (Being written: see the crate's issue.)
