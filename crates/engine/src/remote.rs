//! Names of pulls and upgrades: the local name a pulled plugin gets (Moby's
//! `api/server/router/plugin/plugin_routes.go` `parseRemoteRef` and `getName`), which the
//! reply announces in `Docker-Plugin-Name` before any byte is pulled.

use dockplug_manager::reference::normalize;

use crate::error::ApiError;

fn invalid(e: impl std::fmt::Display) -> ApiError {
    ApiError::invalid_parameter(e.to_string())
}

/// The local name for pulling `remote` as `name` (`""`: named after the remote).
///
/// * no `name`: the familiar remote with its tag (`latest` when none); a remote with a digest
///   keeps its tag if it has one;
/// * a `name`: normalised with `latest` when it has no tag; a digest is refused.
///
/// # Errors
/// 400 for a remote or name that is not a valid reference (Moby answers 500 for these), and
/// Moby's `cannot use digest in plugin tag` for a name with a digest.
pub(crate) fn local_name(remote: &str, name: &str) -> Result<String, ApiError> {
    let base = remote.split_once('@').map_or(remote, |(b, _)| b);
    let remote_name = normalize(base).map_err(invalid)?;
    if name.is_empty() {
        return Ok(remote_name);
    }
    if name.contains('@') {
        return Err(ApiError::invalid_parameter("cannot use digest in plugin tag"));
    }
    normalize(name).map_err(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_like_moby() {
        assert_eq!(local_name("docker.io/vieux/sshfs", "").unwrap(), "vieux/sshfs:latest");
        assert_eq!(local_name("docker.io/vieux/sshfs:next", "").unwrap(), "vieux/sshfs:next");
        assert_eq!(local_name("127.0.0.1:5000/p", "").unwrap(), "127.0.0.1:5000/p:latest");
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(local_name(&format!("vieux/sshfs@{digest}"), "").unwrap(), "vieux/sshfs:latest");
        assert_eq!(local_name(&format!("vieux/sshfs:1@{digest}"), "").unwrap(), "vieux/sshfs:1");
        assert_eq!(local_name("docker.io/vieux/sshfs", "sshfs").unwrap(), "sshfs:latest");
        assert_eq!(local_name("docker.io/vieux/sshfs", "sshfs:2").unwrap(), "sshfs:2");
        let e = local_name("vieux/sshfs", &format!("x@{digest}")).unwrap_err();
        assert_eq!(e.message(), "cannot use digest in plugin tag");
        assert_eq!(e.status(), 400);
        assert_eq!(local_name("Bad Name", "").unwrap_err().status(), 400);
        assert_eq!(local_name("", "").unwrap_err().status(), 400);
    }
}
