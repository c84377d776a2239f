//! Lease objects and prune announcements as another process left them in
//! storage: names and JSON bodies, never trusted, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use strata_repo::lease::{object_name, parse_name, LeaseInfo, Pending};

fuzz_target!(|data: &[u8]| {
    if let Ok(name) = std::str::from_utf8(data) {
        let (id, seq) = parse_name(name);
        // a parsed name with a renewal number renders back to itself
        if name.contains('-') && id != name {
            assert_eq!(parse_name(&object_name(id, seq)), (id, seq));
        }
    }
    if let Ok(info) = serde_json::from_slice::<LeaseInfo>(data) {
        let again: LeaseInfo = serde_json::from_slice(&serde_json::to_vec(&info).unwrap()).unwrap();
        assert_eq!(again, info);
    }
    let _ = serde_json::from_slice::<Pending>(data);
});
