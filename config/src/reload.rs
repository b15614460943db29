//! What a running cluster may change in its services without a restart,
//! and the digest both processes use to agree on which service table is
//! meant. Shared by `shoal-control` (`shoalctl reload`) and the dataplane
//! (which re-reads its config file when control or SIGHUP says so), so the
//! two enforce the same rule.
//!
//! The rule protects the exactly-one invariant: members reload one after
//! another, so for a while some run the old table and some the new. A
//! change that never makes two members inspect the same connection is
//! allowed: a service's mode, state, dispatch policy, `max_load` and
//! `load_choice` (who *serves* a connection, decided by its one inspector),
//! and adding or removing a whole service (a member without it claims none
//! of its connections). Changing how an existing service picks its
//! inspector (`selection`'s algorithm, vnodes, table size, hashing) is
//! refused: half-reloaded members would disagree on the inspector. Remove
//! the service, reload every member, then add it back with the new
//! selection (or restart the cluster).

use crate::schema::{Selection, Service};

/// Checks that `new` may replace `old` at run time; every refusal names the
/// service and says what to do.
pub fn services_reloadable(old: &[Service], new: &[Service]) -> Result<(), Vec<String>> {
    let inspector_part = |s: &Selection| Selection {
        max_load: None,
        load_choice: crate::schema::LoadChoice::default(),
        ..s.clone()
    };
    let mut errors = Vec::new();
    for (i, n) in new.iter().enumerate() {
        if let Some(o) = old.iter().find(|o| o.name == n.name) {
            if inspector_part(&o.selection) != inspector_part(&n.selection) {
                errors.push(format!(
                    "services[{i}].selection (service '{}'): changed how the service picks \
                     each connection's inspector; members reloading one after another would \
                     disagree, so nothing was applied. Remove the service, reload every \
                     member, then add it back with the new selection (or restart the \
                     cluster). Only max_load and load_choice change at run time",
                    n.name
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// A 64-bit digest of a service table (FNV-1a over its canonical TOML):
/// control sends it with a reload so the dataplane applies exactly the
/// table control checked, not a file edited in between.
pub fn services_digest(services: &[Service]) -> u64 {
    #[derive(serde::Serialize)]
    struct Table<'a> {
        services: &'a [Service],
    }
    let text = toml::to_string(&Table { services }).unwrap_or_default();
    let digest = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    // 0 means "no digest" on the command ring.
    digest.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> crate::Config {
        crate::load_str(
            r#"
[cluster]
name = "t"
vips = ["198.18.0.100"]
mac = "02:00:c6:12:00:64"
local_member = "a"
[[cluster.members]]
id = 1
name = "a"
address = "198.18.0.11"
mac = "02:00:c6:12:00:0b"
[[services]]
name = "http"
vip = "198.18.0.100"
port = 80
mode = "local"
[dataplane]
backend = "memory"
"#,
            std::path::Path::new("test.toml"),
        )
        .unwrap()
    }

    #[test]
    fn modes_and_whole_services_change_but_not_an_inspector_choice() {
        let old = cfg().services;
        let mut new = old.clone();
        assert!(services_reloadable(&old, &new).is_ok());
        assert_eq!(services_digest(&old), services_digest(&new));
        new[0].mode = crate::Mode::DprMac;
        new[0].selection.max_load = Some(0.7);
        assert!(services_reloadable(&old, &new).is_ok());
        assert_ne!(services_digest(&old), services_digest(&new));
        let mut added = new.clone();
        added.push(Service {
            name: "alt".into(),
            port: 8080,
            ..new[0].clone()
        });
        assert!(services_reloadable(&old, &added).is_ok());
        assert!(services_reloadable(&added, &old).is_ok());
        let mut resel = old.clone();
        resel[0].selection.vnodes += 1;
        let errs = services_reloadable(&old, &resel).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].starts_with("services[0].selection (service 'http'): changed how"),
            "{errs:?}"
        );
        // Renamed = removed + added: allowed.
        resel[0].name = "http2".into();
        assert!(services_reloadable(&old, &resel).is_ok());
    }
}
