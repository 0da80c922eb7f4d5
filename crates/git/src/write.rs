//! Writing to a repository without a push: the first commit of a new project ("Initialize
//! repository with a README"), made with git2 objects directly — no working tree, no shell.

use crate::{Error, Repositories, Result};

/// Who made a commit.
#[derive(Debug, Clone)]
pub struct Author {
    pub name: String,
    pub email: String,
}

impl Repositories {
    /// Commits `files` (path at the root, content) as the first commit of `branch`, which must
    /// not exist yet; returns the commit's sha.
    pub fn initial_commit(
        &self,
        project_id: i64,
        branch: &str,
        files: &[(String, Vec<u8>)],
        author: &Author,
        message: &str,
    ) -> Result<String> {
        if !crate::is_valid_branch_name(branch) {
            return Err(Error::Process(format!("invalid branch name {branch:?}")));
        }
        let repo = self.open(project_id)?;
        let mut tree = repo.treebuilder(None)?;
        for (path, content) in files {
            let blob = repo.blob(content)?;
            tree.insert(path, blob, 0o100_644)?;
        }
        let tree = repo.find_tree(tree.write()?)?;
        let signature = git2::Signature::now(&author.name, &author.email)?;
        let refname = format!("refs/heads/{branch}");
        // `update_ref` with no parents fails if the branch exists (the reflog-less
        // compare-and-swap git2 does for a first commit), so nothing is overwritten.
        let commit = repo.commit(Some(&refname), &signature, &signature, message, &tree, &[])?;
        Ok(commit.to_string())
    }

    pub async fn initial_commit_async(
        &self,
        project_id: i64,
        branch: &str,
        files: Vec<(String, Vec<u8>)>,
        author: Author,
        message: &str,
    ) -> Result<String> {
        let branch = branch.to_string();
        let message = message.to_string();
        self.blocking(move |r| r.initial_commit(project_id, &branch, &files, &author, &message))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_commit_makes_the_branch_cloneable() {
        let dir = tempfile::tempdir().unwrap();
        let repos = Repositories::new(dir.path());
        repos.create(7, "main").unwrap();
        let author = Author {
            name: "Alice".into(),
            email: "alice@example.com".into(),
        };
        let files = vec![("README.md".to_string(), b"# Demo\n".to_vec())];
        let sha = repos
            .initial_commit(7, "main", &files, &author, "Initial commit")
            .unwrap();
        let resolved = repos.resolve_ref(7, "main").unwrap();
        assert_eq!(resolved.sha, sha);
        let blob = repos.read_file(7, &sha, "README.md", 1024).unwrap();
        assert!(blob.is_some(), "the README is in the commit");
        // A second "first" commit of the same branch is refused: nothing is overwritten.
        assert!(
            repos
                .initial_commit(7, "main", &files, &author, "again")
                .is_err()
        );
    }
}
