//! Index files from storage.
#![no_main]
use libfuzzer_sys::fuzz_target;
use strata_format::{index, MasterKey};

fuzz_target!(|data: &[u8]| {
    let keys = MasterKey([7u8; 32]).keys();
    let _ = index::decode(data, Some(&keys));
    if let Ok(packs) = index::decode(data, None) {
        let enc = index::encode(&packs, &keys);
        assert_eq!(index::decode(&enc, Some(&keys)).unwrap(), packs);
    }
});
