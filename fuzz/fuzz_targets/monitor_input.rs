#![no_main]
//! What a monitor receives from the network: job reports (JSON), query
//! strings, parseFloat, cron expressions and maintenance windows — any input
//! gives a value or an error, never a panic.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<strata_format::report::JobReport>(data)
        .map(|r| r.effective_status());
    let Ok(text) = std::str::from_utf8(data) else { return };
    let q = strata_monitor::http::parse_query(text);
    let _ = q.len();
    let _ = strata_monitor::http::js_parse_float(text);
    let _ = strata_monitor::http::is_uuid(text);
    if let Ok(c) = strata_monitor::schedule::Cron::parse(text) {
        let _ = c.next_after(1_800_000_000.0, "UTC");
    }
    let _ = strata_monitor::engine::parse_window(text);
    let _ = strata_monitor::parse_duration(text);
});
