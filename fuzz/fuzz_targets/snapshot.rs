//! Snapshot files from storage: the keyless peek and the sealed decode.
#![no_main]
use libfuzzer_sys::fuzz_target;
use strata_format::snapshot::{peek_tree, Snapshot};
use strata_format::MasterKey;

fuzz_target!(|data: &[u8]| {
    let keys = MasterKey([7u8; 32]).keys();
    let _ = peek_tree(data);
    let _ = Snapshot::decode(data, &keys);
    // a well-sealed body with fuzzed JSON inside
    let mut sealed = b"STSN\x01".to_vec();
    sealed.extend_from_slice(&[0u8; 32]);
    let aad = sealed.clone();
    keys.seal_into(&mut sealed, &aad, data);
    if let Ok(s) = Snapshot::decode(&sealed, &keys) {
        let _ = s.root_node();
    }
});
