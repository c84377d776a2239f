//! Tree blob plaintext (after decryption; a buggy or hostile writer holding
//! the key could still produce any bytes).
#![no_main]
use libfuzzer_sys::fuzz_target;
use strata_format::tree;

fuzz_target!(|data: &[u8]| {
    if let Ok(nodes) = tree::decode(data) {
        assert_eq!(tree::decode(&tree::encode(&nodes)).unwrap(), nodes);
        let _ = tree::children(&nodes);
    }
});
