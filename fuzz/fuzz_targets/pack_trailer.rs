//! Pack trailers from storage: parse the tail, split the pack, decode the
//! header with and without a key. Must never panic; a decoded header must
//! re-encode to a header that decodes to the same value.
#![no_main]
use libfuzzer_sys::fuzz_target;
use strata_format::pack::{split_pack, PackHeader};
use strata_format::MasterKey;

fuzz_target!(|data: &[u8]| {
    let keys = MasterKey([7u8; 32]).keys();
    let _ = split_pack(data, Some(&keys));
    if let Ok((_, h)) = split_pack(data, None) {
        let enc = h.encode(&keys);
        assert_eq!(PackHeader::decode(&enc, Some(&keys)).unwrap(), h);
    }
    let _ = PackHeader::decode(data, None);
});
