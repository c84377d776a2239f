//! Key files from storage. Opening is attempted only with cheap KDF costs
//! (the decoder bounds hostile costs; a 4 GiB argon2 run is not a finding).
#![no_main]
use libfuzzer_sys::fuzz_target;
use strata_format::keyfile::KeyFile;

fuzz_target!(|data: &[u8]| {
    if let Ok(k) = KeyFile::decode(data) {
        let _ = KeyFile::decode(&k.encode()).unwrap();
        if k.kdf.memory_kib <= 64 && k.kdf.iterations <= 2 && k.kdf.parallelism <= 2 {
            let _ = k.open(b"password");
        }
    }
});
