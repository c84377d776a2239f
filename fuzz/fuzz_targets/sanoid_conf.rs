#![no_main]
//! sanoid.conf / strata.toml policy text and snapshot listing lines: any
//! input gives a config, a clear error, or nothing — never a panic. Also
//! the replication parsers (zfs listings, option letters, rates).
use libfuzzer_sys::fuzz_target;
use strata_zfs::config::{ini_from_toml, resolve, EMBEDDED_DEFAULTS};
use strata_zfs::ini::Ini;
use strata_zfs::policy::Snaps;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let defaults = Ini::parse(EMBEDDED_DEFAULTS, "d").unwrap();
    let mut lister = |p: &str| Ok(vec![format!("{p}/child")]);
    if let Ok(ini) = Ini::parse(text, "f") {
        let _ = resolve(&defaults, "d", &ini, "f", &mut lister);
    }
    if let Ok(ini) = ini_from_toml(text, "f") {
        let _ = resolve(&defaults, "d", &ini, "f", &mut lister);
    }
    let _ = Snaps::parse(text);
    // syncoid-side inputs: snapshot listings and option letters.
    let _ = strata_zfs::replicate::parse_snaps("pool/ds", text);
    let _ = strata_zfs::replicate::parse_letters(text, strata_zfs::replicate::RECV_LETTERS, "recvoptions");
    let _ = strata_zfs::replicate::parse_rate(text);
});
